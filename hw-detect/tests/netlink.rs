//! The netlink probes against the running kernel, on a veth pair between
//! two network namespaces of their own: root `tbf` and `htb` qdiscs set with
//! `tc` must read back at the rates `tc` configured, and the veth's XDP
//! features must be what drivers/net/veth.c advertises.
//!
//! Needs root (network namespaces, tc). When it cannot set up, a test
//! panics if `CI` is set and otherwise prints a skip notice and passes.
//! Nothing here touches the host's interfaces except the read-only probe in
//! `host_namespace_answers_decode`.

#![cfg(target_os = "linux")]

use std::os::fd::AsFd;

use hw_detect::linux::netlink::{self, NetlinkError, Rtnetlink, XdpProgs};
use hw_detect::{Known, RootQdisc, XdpFeatures};
use stoq_testbed::NetnsPair;

// `XDP_FLAGS_*` (include/uapi/linux/if_link.h).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `tc args...` inside namespace `i`; panics with tc's message on failure.
fn tc(net: &NetnsPair, i: usize, args: &[&str]) -> String {
    net.output(i, "tc", args).unwrap_or_else(|e| panic!("{e}"))
}

/// The kernel's ifindex of `dev` in namespace `i`.
fn ifindex(net: &NetnsPair, i: usize, dev: &str) -> u32 {
    let out = net.output(i, "ip", &["-o", "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{e}"));
    out.split(':').next().and_then(|i| i.trim().parse().ok()).unwrap_or_else(|| panic!("no ifindex in {out:?}"))
}

/// The root qdisc of `dev` as the probe reads it from inside namespace `i`.
fn root_qdisc(net: &NetnsPair, i: usize, dev: &str) -> RootQdisc {
    let index = ifindex(net, i, dev);
    let mut all = net.run_scoped(i, netlink::root_qdiscs).expect("root_qdiscs");
    match all.remove(&index) {
        Some(Known::Known(q)) => q,
        Some(Known::Unknown(why)) => panic!("root qdisc of {dev} (ifindex {index}) unknown: {why}"),
        None => panic!("no root qdisc for {dev} (ifindex {index}) in {all:?}"),
    }
}

/// A rate as tc configures it: iproute2's `get_rate64` (tc/tc_util.c) parses
/// the number as a double, scales by the SI suffix (`mbit` = 10^6 bit/s,
/// `gbit` = 10^9), divides by 8 and truncates to whole bytes/s, which is what
/// the kernel stores and dumps. The probe multiplies by 8 again, so a rate
/// that is not a whole number of bytes/s reads back rounded down to one.
fn tc_rate_bps(bits_per_s: f64) -> u64 {
    ((bits_per_s / 8.0) as u64) * 8
}

/// The tbf rate `tc -j qdisc show` prints (bytes/s, from the same dump),
/// times 8: an independent decoder to compare ours with.
fn tc_json_tbf_bps(net: &NetnsPair, i: usize, dev: &str) -> u64 {
    let json = tc(net, i, &["-j", "qdisc", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("tc -j output {json:?}: {e}"));
    let q = v.as_array().and_then(|a| a.iter().find(|q| q["root"] == true)).expect("a root qdisc in tc -j output");
    assert_eq!(q["kind"], "tbf", "{json}");
    q["options"]["rate"].as_u64().expect("options.rate") * 8
}

#[test]
fn tbf_root_rates_read_back_as_tc_set_them() {
    let Some(net) = NetnsPair::create() else { return };
    let a = net.links[0].as_str();
    // (tc argument, bit/s it stands for). 90.3333mbit is 11_291_662.5 bytes/s,
    // which tc truncates; 40gbit is 5e9 bytes/s, past 2^32, so the kernel
    // reports it in TCA_TBF_RATE64 and puts ~0 in tc_tbf_qopt.rate.rate.
    let rates: [(&str, f64); 6] = [
        ("90mbit", 90e6),
        ("500mbit", 500e6),
        ("2gbit", 2e9),
        ("5gbit", 5e9),
        ("90.3333mbit", 90.3333e6),
        ("40gbit", 40e9),
    ];
    for (i, (arg, bps)) in rates.into_iter().enumerate() {
        let verb = if i == 0 { "add" } else { "change" };
        tc(&net, 0, &["qdisc", verb, "dev", a, "root", "tbf", "rate", arg, "burst", "32kb", "latency", "50ms"]);
        let q = root_qdisc(&net, 0, a);
        assert_eq!(q.kind, "tbf");
        assert_eq!(q.rate_bps, Some(tc_rate_bps(bps)), "tbf rate {arg}");
        assert_eq!(q.rate_bps, Some(tc_json_tbf_bps(&net, 0, a)), "tbf rate {arg}: tc -j disagrees");
    }
    // The exact figures the issue names, spelled out.
    assert_eq!(tc_rate_bps(90e6), 90_000_000);
    assert_eq!(tc_rate_bps(500e6), 500_000_000);
    assert_eq!(tc_rate_bps(2e9), 2_000_000_000);
    assert_eq!(tc_rate_bps(5e9), 5_000_000_000);
    assert_eq!(tc_rate_bps(90.3333e6), 90_333_296);

    // The peer kept its default qdisc.
    assert_eq!(root_qdisc(&net, 1, &net.links[1]), RootQdisc { kind: "noqueue".into(), rate_bps: None });
}

/// A class directly under the htb root has no parent to borrow from, so its
/// `ceil` never takes effect: its `rate` is what it sends at (`rate 10mbit
/// ceil 100mbit` measured 9.7 Mbit/s). Every class here has a ceiling above
/// its rate, so reading the ceiling would give other numbers.
#[test]
fn htb_root_rate_is_the_sum_of_top_level_rates() {
    let Some(net) = NetnsPair::create() else { return };
    let a = net.links[0].as_str();
    let tc = |args: &[&str]| tc(&net, 0, args);
    tc(&["qdisc", "add", "dev", a, "root", "handle", "1:", "htb", "default", "10"]);
    // No class yet: HTB sends unshaped, so no rate.
    assert_eq!(root_qdisc(&net, 0, a), RootQdisc { kind: "htb".into(), rate_bps: None });

    tc(&["class", "add", "dev", a, "parent", "1:", "classid", "1:1", "htb", "rate", "100mbit", "ceil", "300mbit"]);
    assert_eq!(root_qdisc(&net, 0, a).rate_bps, Some(100_000_000));
    // tc's own reading of the same class (a leaf prints "prio 0" before "rate").
    let shown = tc(&["class", "show", "dev", a]);
    let line = shown.lines().find(|l| l.starts_with("class htb 1:1 root ")).unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains(" rate 100Mbit ceil 300Mbit "), "{line}");

    // A child class does not add to its parent's rate.
    tc(&["class", "add", "dev", a, "parent", "1:1", "classid", "1:10", "htb", "rate", "50mbit", "ceil", "300mbit"]);
    assert_eq!(root_qdisc(&net, 0, a).rate_bps, Some(100_000_000));

    // A second top-level class does.
    tc(&["class", "add", "dev", a, "parent", "1:", "classid", "1:2", "htb", "rate", "10mbit", "ceil", "200mbit"]);
    assert_eq!(root_qdisc(&net, 0, a).rate_bps, Some(110_000_000));

    // A ceiling past 2^32 bytes/s comes in TCA_HTB_CEIL64; the rate below it
    // is still what counts.
    tc(&["class", "change", "dev", a, "parent", "1:", "classid", "1:2", "htb", "rate", "20mbit", "ceil", "40gbit"]);
    assert_eq!(root_qdisc(&net, 0, a).rate_bps, Some(120_000_000));

    // A rate past 2^32 bytes/s comes in TCA_HTB_RATE64.
    tc(&["class", "change", "dev", a, "parent", "1:", "classid", "1:2", "htb", "rate", "40gbit", "ceil", "80gbit"]);
    assert_eq!(root_qdisc(&net, 0, a).rate_bps, Some(40_100_000_000));
}

#[test]
fn veth_without_qdisc_is_noqueue_and_unshaped() {
    let Some(net) = NetnsPair::create() else { return };
    let a = net.links[0].as_str();
    for (i, dev) in [(0, a), (1, &net.links[1]), (0, "lo"), (1, "lo")] {
        assert_eq!(
            root_qdisc(&net, i, dev),
            RootQdisc { kind: "noqueue".into(), rate_bps: None },
            "{dev} in namespace {i}"
        );
        let shown = tc(&net, i, &["qdisc", "show", "dev", dev]);
        assert!(shown.starts_with("qdisc noqueue 0: root"), "{dev} in namespace {i}: {shown}");
    }
    // After deleting a tbf the default comes back.
    tc(&net, 0, &["qdisc", "add", "dev", a, "root", "tbf", "rate", "90mbit", "burst", "32kb", "latency", "50ms"]);
    tc(&net, 0, &["qdisc", "del", "dev", a, "root"]);
    assert_eq!(root_qdisc(&net, 0, a), RootQdisc { kind: "noqueue".into(), rate_bps: None });
}

/// What drivers/net/veth.c (`veth_set_xdp_features`, Linux 6.4+) advertises:
/// BASIC | REDIRECT | RX_SG always, plus NDO_XMIT | NDO_XMIT_SG when the
/// *peer* runs an XDP program or has GRO on. Never XSK_ZEROCOPY. (Linux 6.3
/// set all five unconditionally.)
#[test]
fn veth_xdp_features_match_the_driver() {
    let Some(net) = NetnsPair::create() else { return };
    // End i and loopback in namespace i.
    let ends = [0, 1].map(|i| (ifindex(&net, i, &net.links[i]), ifindex(&net, i, "lo")));
    let probe = |i| net.run_scoped(i, netlink::xdp_features);
    let all = match probe(0) {
        Err(NetlinkError::NoNetdevFamily) => {
            // Only acceptable on kernels before 6.3, which the CI machine is not.
            stoq_testbed::skip_unless_ci("kernel has no netdev netlink family");
            return;
        }
        r => [r.expect("xdp_features"), probe(1).expect("xdp_features")],
    };
    let base = XdpFeatures {
        native: true,
        redirect: true,
        zero_copy: false,
        zc_max_segs: None,
        flags: vec!["basic".into(), "redirect".into(), "rx-sg".into()],
    };
    for (i, (veth, lo)) in ends.into_iter().enumerate() {
        let all = &all[i];
        assert_eq!(all.get(&veth), Some(&base), "namespace {i}: {all:?}");
        // Loopback has no XDP (xdp_features 0), and is still listed.
        let none = XdpFeatures { native: false, redirect: false, zero_copy: false, zc_max_segs: None, flags: vec![] };
        assert_eq!(all.get(&lo), Some(&none), "namespace {i}: {all:?}");
        assert_eq!(all.len(), 2, "namespace {i}: {all:?}");
    }

    // GRO on b lets a transmit XDP frames into it (ndo_xdp_xmit).
    net.output(1, "ethtool", &["-K", &net.links[1], "gro", "on"]).unwrap_or_else(|e| panic!("{e}"));
    let all = [0, 1].map(|i| probe(i).expect("xdp_features"));
    let with_xmit = XdpFeatures {
        flags: ["basic", "redirect", "ndo-xmit", "rx-sg", "ndo-xmit-sg"].map(String::from).to_vec(),
        ..base.clone()
    };
    assert_eq!(all[0].get(&ends[0].0), Some(&with_xmit), "{all:?}");
    assert_eq!(all[1].get(&ends[1].0), Some(&base), "{all:?}");
}

/// A read-only probe of the host's own namespace: whatever qdiscs and
/// drivers it has must decode. Loopback (ifindex 1) is always there.
#[test]
fn host_namespace_answers_decode() {
    let qdiscs = netlink::root_qdiscs().expect("root_qdiscs in the host namespace");
    for (index, q) in &qdiscs {
        assert!(matches!(q, Known::Known(_)), "ifindex {index}: {q:?}");
    }
    let lo = qdiscs.get(&1).expect("loopback's root qdisc");
    assert_eq!(lo, &Known::Known(RootQdisc { kind: "noqueue".into(), rate_bps: None }));
    match netlink::xdp_features() {
        Ok(x) => assert_eq!(x.get(&1).map(|f| f.flags.len()), Some(0), "loopback has no XDP: {x:?}"),
        Err(NetlinkError::NoNetdevFamily) => eprintln!("kernel has no netdev netlink family"),
        Err(e) => panic!("xdp_features in the host namespace: {e}"),
    }
}

/// An interface's XDP programs (`RTM_GETLINK`) and setting them
/// (`RTM_SETLINK` with `IFLA_XDP`), inside the pair. Attaching real
/// programs is stoq-xdp's test (hw-detect loads none); here: none on a fresh
/// veth, taking off none succeeds, and refusals carry the errno.
#[test]
fn xdp_programs_of_a_veth() {
    let Some(net) = NetnsPair::create() else { return };
    let veth = ifindex(&net, 0, &net.links[0]);
    net.run_scoped(0, || {
        let mut nl = Rtnetlink::open().expect("rtnetlink socket");
        assert_eq!(nl.link_xdp_progs(veth).expect("link_xdp_progs"), XdpProgs::default());
        for mode in [XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE] {
            nl.link_set_xdp(veth, None, mode, None).unwrap_or_else(|e| panic!("taking off no program: {e}"));
        }
        let e = nl.link_xdp_progs(999_999).unwrap_err();
        assert!(matches!(e, NetlinkError::Kernel { errno: libc::ENODEV, .. }), "{e:?}");
        let e = nl.link_set_xdp(999_999, None, XDP_FLAGS_SKB_MODE, None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV), "{e:?}");
        // A descriptor that is not a BPF program.
        let not_bpf = std::fs::File::open("/dev/null").unwrap();
        let e = nl.link_set_xdp(veth, Some(not_bpf.as_fd()), XDP_FLAGS_SKB_MODE, None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL), "{e:?}");
        assert_eq!(nl.link_xdp_progs(veth).expect("link_xdp_progs"), XdpProgs::default());
    });
}

/// Routes and neighbours (`route_get`, `neighbour_get`) inside the pair,
/// cross-checked with what `ip` and sysfs say in the same namespaces.
mod next_hops {
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};

    use hw_detect::linux::netlink::{self, Neighbour, NeighbourState, NetlinkError, RouteHop, RouteKind, Rtnetlink};
    use stoq_testbed::NetnsPair;

    use super::ifindex;

    fn ip(net: &NetnsPair, i: usize, args: &[&str]) -> String {
        net.output(i, "ip", args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Gives both ends an IPv6 address (without duplicate address
    /// detection, so it is usable at once) and returns them.
    fn add_ipv6(net: &NetnsPair) -> [IpAddr; 2] {
        let addrs: [IpAddr; 2] = ["fd00:5e7::1".parse().unwrap(), "fd00:5e7::2".parse().unwrap()];
        for (i, addr) in addrs.iter().enumerate() {
            ip(net, i, &["-6", "addr", "add", &format!("{addr}/64"), "dev", &net.links[i], "nodad"]);
        }
        addrs
    }

    /// The MAC of end `i` as its own namespace's sysfs shows it.
    fn sysfs_mac(net: &NetnsPair, i: usize) -> [u8; 6] {
        let text = net.output(i, "cat", &[&format!("/sys/class/net/{}/address", net.links[i])]).unwrap();
        let bytes: Vec<u8> = text.trim().split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
        bytes.try_into().unwrap_or_else(|b| panic!("not a MAC: {text:?} ({b:?})"))
    }

    /// `ip -j route get DST` in namespace `i`: (dev, gateway, prefsrc).
    fn ip_route_get(net: &NetnsPair, i: usize, dst: IpAddr) -> (String, Option<IpAddr>, Option<IpAddr>) {
        let json = ip(net, i, &["-j", "route", "get", &dst.to_string()]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json:?}: {e}"));
        let r = &v[0];
        let addr = |k: &str| r[k].as_str().map(|s| s.parse().unwrap());
        (r["dev"].as_str().unwrap_or_else(|| panic!("no dev in {json}")).to_owned(), addr("gateway"), addr("prefsrc"))
    }

    /// Polls the neighbour entry of `dst` on `ifindex` until it is usable.
    fn wait_usable(nl: &mut Rtnetlink, ifindex: u32, dst: IpAddr) -> Neighbour {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = nl.neighbour_get(ifindex, dst).expect("neighbour_get");
            match n {
                Some(n) if n.usable() => return n,
                _ if Instant::now() > deadline => panic!("{dst} not resolved after 5 s: {n:?}"),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    #[test]
    fn routes_to_the_peer_to_ourselves_and_nowhere() {
        let Some(net) = NetnsPair::create() else { return };
        let [own6, peer6] = add_ipv6(&net);
        let (veth, lo) = (ifindex(&net, 0, &net.links[0]), ifindex(&net, 0, "lo"));
        let [own, peer] = net.addrs;
        let IpAddr::V4(peer4) = peer else { panic!("the testbed's addresses are IPv4") };
        ip(&net, 0, &["route", "add", "10.99.0.0/24", "via", &peer.to_string()]);
        ip(&net, 0, &["-6", "route", "add", "fd00:99::/64", "via", &peer6.to_string()]);
        for (kind, prefix) in
            [("unreachable", "10.98.1.0/24"), ("blackhole", "10.98.2.0/24"), ("prohibit", "10.98.3.0/24")]
        {
            ip(&net, 0, &["route", "add", kind, prefix]);
        }
        ip(&net, 0, &["-6", "route", "add", "unreachable", "fd00:98::/64"]);
        let gatewayed: IpAddr = Ipv4Addr::new(10, 99, 0, 7).into();
        let gatewayed6: IpAddr = "fd00:99::7".parse().unwrap();

        let unicast =
            |gateway, prefsrc| RouteHop { ifindex: veth, gateway, prefsrc: Some(prefsrc), kind: RouteKind::Unicast };
        let local = |a| RouteHop { ifindex: lo, gateway: None, prefsrc: Some(a), kind: RouteKind::Local };
        let loopback: IpAddr = Ipv4Addr::LOCALHOST.into();
        let cases: [(IpAddr, RouteHop); 8] = [
            (peer, unicast(None, own)),
            (IpAddr::V6(peer4.to_ipv6_mapped()), unicast(None, own)),
            (gatewayed, unicast(Some(peer), own)),
            (peer6, unicast(None, own6)),
            (gatewayed6, unicast(Some(peer6), own6)),
            (own, local(own)),
            (own6, local(own6)),
            (loopback, local(loopback)),
        ];
        let rejects: [(IpAddr, RouteKind); 4] = [
            ("10.98.1.9".parse().unwrap(), RouteKind::Unreachable),
            ("10.98.2.9".parse().unwrap(), RouteKind::Blackhole),
            ("10.98.3.9".parse().unwrap(), RouteKind::Prohibit),
            ("fd00:98::9".parse().unwrap(), RouteKind::Unreachable),
        ];
        let nowhere: [IpAddr; 2] = ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];

        net.run_scoped(0, || {
            for (dst, want) in cases {
                assert_eq!(netlink::route_get(dst).unwrap_or_else(|e| panic!("{dst}: {e}")), want, "route to {dst}");
            }
            for (dst, kind) in rejects {
                let hop = netlink::route_get(dst).unwrap_or_else(|e| panic!("{dst}: {e}"));
                assert_eq!(hop, RouteHop { ifindex: 0, gateway: None, prefsrc: None, kind }, "route to {dst}");
            }
            for dst in nowhere {
                match netlink::route_get(dst) {
                    Err(e @ NetlinkError::NoRoute { dst: d }) if d == dst => {
                        assert!(e.to_string().starts_with(&format!("no route to {dst} ")), "{e}");
                    }
                    other => panic!("route to {dst}: {other:?}"),
                }
            }
        });

        // iproute2 reads the same answers.
        let link = net.links[0].clone();
        assert_eq!(ip_route_get(&net, 0, peer), (link.clone(), None, Some(own)));
        assert_eq!(ip_route_get(&net, 0, gatewayed), (link.clone(), Some(peer), Some(own)));
        assert_eq!(ip_route_get(&net, 0, gatewayed6), (link, Some(peer6), Some(own6)));
    }

    #[test]
    fn neighbours_are_resolved_by_traffic_and_carry_the_peers_mac() {
        let Some(net) = NetnsPair::create() else { return };
        let [own6, peer6] = add_ipv6(&net);
        let veth = ifindex(&net, 0, &net.links[0]);
        let [own, peer] = net.addrs;
        let IpAddr::V4(peer4) = peer else { panic!("the testbed's addresses are IPv4") };
        // An address on the link that nobody has.
        let absent: IpAddr = [253, 252]
            .map(|last| Ipv4Addr::from(u32::from(peer4) & !0xff | last).into())
            .into_iter()
            .find(|a| *a != own && *a != peer)
            .unwrap();
        let peer_mac = sysfs_mac(&net, 1);

        let (n4, n6, mapped) = net.run_scoped(0, || {
            let mut nl = Rtnetlink::open().expect("rtnetlink socket");
            for dst in [peer, peer6, absent] {
                assert_eq!(nl.neighbour_get(veth, dst).unwrap(), None, "{dst} before any traffic");
            }
            let e = nl.neighbour_get(999_999, peer).unwrap_err();
            assert!(matches!(e, NetlinkError::Kernel { errno: libc::ENODEV, .. }), "{e:?}");
            // The kernel's reason (extended ACK; `neigh_get` in net/core/neighbour.c).
            assert_eq!(e.kernel_message(), Some("Unknown device ifindex"), "{e:?}");
            assert!(e.to_string().ends_with("No such device (os error 19): Unknown device ifindex"), "{e}");

            // A datagram makes the kernel resolve the next hop (ARP, NDP).
            for (src, dst) in [(own, peer), (own6, peer6), (own, absent)] {
                let sock = UdpSocket::bind((src, 0)).unwrap();
                sock.send_to(b"resolve me", (dst, 9)).unwrap();
            }
            let n4 = wait_usable(&mut nl, veth, peer);
            let n6 = wait_usable(&mut nl, veth, peer6);
            let mapped = nl.neighbour_get(veth, IpAddr::V6(peer4.to_ipv6_mapped())).unwrap();

            // Nobody answers for `absent`: incomplete while the kernel probes,
            // failed after; never usable, and no MAC.
            let n = nl.neighbour_get(veth, absent).unwrap().expect("an entry for the address just tried");
            assert!(matches!(n.state, NeighbourState::Incomplete | NeighbourState::Failed), "{n:?}");
            assert!(!n.usable() && n.mac.is_none(), "{n:?}");
            (n4, n6, mapped)
        });
        assert_eq!(n4.mac, Some(peer_mac), "IPv4 neighbour {n4:?}");
        assert_eq!(n6.mac, Some(peer_mac), "IPv6 neighbour {n6:?}");
        assert_eq!(mapped, Some(n4));

        // A permanent entry set by hand reads back as set.
        let (absent_s, link) = (absent.to_string(), &net.links[0]);
        ip(&net, 0, &["neigh", "replace", &absent_s, "lladdr", "02:00:5e:00:53:01", "dev", link, "nud", "permanent"]);
        let n = net.run_scoped(0, || netlink::neighbour_get(veth, absent)).unwrap();
        assert_eq!(n, Some(Neighbour { mac: Some([0x02, 0, 0x5e, 0, 0x53, 1]), state: NeighbourState::Permanent }));
    }
}
