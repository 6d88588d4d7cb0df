use std::collections::BTreeMap;

use super::*;
use crate::model::*;

fn host() -> Host {
    Host {
        kernel: Known::Known(KernelVersion { release: "6.18.0".into(), version: (6, 18, 0) }),
        cpu: Known::Known(CpuTopology { packages: 1, cores: 8, threads: 16, numa_nodes: vec![], caches: vec![] }),
        io_uring: Known::Known(IoUringSupport { opcodes: vec![], usable_by_stoq: true, missing: vec![] }),
        udp: UdpOffloads { gso: Known::Known(true), gro: Known::Known(true) },
        privileges: Known::Known(Privileges { net_admin: true, net_raw: true, bpf: true, sys_admin: true }),
        bpffs: Known::Known(true),
        routes: Known::Known(vec![route("eth0", "0.0.0.0", 0, 100), route("eth0", "192.0.2.0", 24, 100)]),
    }
}

fn route(iface: &str, dest: &str, prefix_len: u8, metric: u32) -> Route {
    Route { iface: iface.into(), dest: dest.parse().unwrap(), prefix_len, metric }
}

fn nic(name: &str, speed: Option<u32>, shaped: Option<u64>) -> Interface {
    Interface {
        name: name.into(),
        index: Known::Known(2),
        kind: InterfaceKind::Ethernet,
        operstate: Known::Known("up".into()),
        driver: Known::unknown("test"),
        speed_mbps: speed.map_or_else(|| Known::unknown("speed: Invalid argument"), Known::Known),
        duplex: Known::unknown("test"),
        mtu: Known::Known(1500),
        queues: Known::Known(Queues { rx: 4, tx: 4, combined: Some(4), max_combined: Some(8) }),
        rings: Known::unknown("test"),
        offloads: Known::Known(BTreeMap::new()),
        timestamping: Known::unknown("test"),
        numa_node: Known::unknown("test"),
        local_cpus: Known::unknown("test"),
        addresses: vec!["192.0.2.10".parse().unwrap()],
        xdp: xdp(true, true),
        qdisc: Known::Known(RootQdisc { kind: if shaped.is_some() { "tbf" } else { "mq" }.into(), rate_bps: shaped }),
    }
}

/// XDP features of a driver with (or without) native XDP and zero-copy.
fn xdp(native: bool, zero_copy: bool) -> Known<XdpFeatures> {
    Known::Known(XdpFeatures { native, redirect: native, zero_copy, zc_max_segs: None, flags: vec![] })
}

fn caps(ifaces: Vec<Interface>) -> Capabilities {
    Capabilities { host: host(), interfaces: ifaces }
}

fn pick(c: &Capabilities) -> Selection {
    select(c, &Overrides::default()).unwrap()
}

#[test]
fn tier_follows_the_smaller_of_link_speed_and_shaping_at_every_boundary() {
    // (link Mbit/s, shaping bit/s, tier)
    let cases: &[(Option<u32>, Option<u64>, Tier)] = &[
        (Some(10), None, Tier::Slow),
        (Some(100), None, Tier::Home),
        (Some(1000), None, Tier::Standard),
        (Some(2500), None, Tier::Performance),
        (Some(10_000), None, Tier::Enterprise),
        (Some(25_000), None, Tier::DataCenter),
        (Some(100_000), None, Tier::DataCenter),
        (Some(10_000), Some(99_999_999), Tier::Slow),
        (Some(10_000), Some(90_000_000), Tier::Slow),
        (Some(10_000), Some(100_000_000), Tier::Home),
        (Some(10_000), Some(500_000_000), Tier::Home),
        (Some(10_000), Some(999_999_999), Tier::Home),
        (Some(10_000), Some(1_000_000_000), Tier::Standard),
        (Some(10_000), Some(2_000_000_000), Tier::Standard),
        (Some(10_000), Some(2_499_999_999), Tier::Standard),
        (Some(10_000), Some(2_500_000_000), Tier::Performance),
        (Some(10_000), Some(5_000_000_000), Tier::Performance),
        (Some(10_000), Some(9_999_999_999), Tier::Performance),
        (Some(25_000), Some(24_999_999_999), Tier::Enterprise),
        (Some(1000), Some(5_000_000_000), Tier::Standard), // shaping above the link does not raise it
        (None, Some(500_000_000), Tier::Home),             // unknown link, known shaping
    ];
    for &(link, shaped, tier) in cases {
        let s = pick(&caps(vec![nic("eth0", link, shaped)]));
        assert_eq!(s.tier, tier, "link {link:?} Mbit/s, shaped {shaped:?}: {}", s.tier_reason);
        assert_eq!(s.profile.tier, tier);
        assert!(s.profile.rate_measured);
        assert_eq!(Some(s.profile.rate_bps), s.effective_rate_bps);
    }
}

#[test]
fn the_reason_names_the_shaper_below_the_link() {
    let s = pick(&caps(vec![nic("eth0", Some(10_000), Some(90_000_000))]));
    assert_eq!(s.tier_reason, "slow: effective rate 90 Mbit/s (tbf shaping to 90 Mbit/s below the 10 Gbit/s link)");
}

#[test]
fn unknown_link_speed_picks_a_safe_tier_and_says_why() {
    let s = pick(&caps(vec![nic("eth0", None, None)]));
    assert_eq!(s.tier, Tier::Standard);
    assert!(s.tier_reason.contains("link speed unknown (speed: Invalid argument)"), "{}", s.tier_reason);
    assert!(!s.profile.rate_measured);
    assert!(s.steps.is_empty(), "the MTU is known: {:?}", s.steps);

    // Nothing reports an MTU: QUIC's minimum payload, and the step says why.
    let mut n = nic("eth0", None, None);
    n.mtu = Known::unknown("sysfs mtu on eth0: Permission denied");
    let s = pick(&caps(vec![n]));
    assert_eq!(s.profile.max_udp_payload, 1200);
    assert_eq!(s.steps, ["MTU unknown: 1200-byte UDP payloads (QUIC's minimum, which every path carries)"]);

    let mut wifi = nic("wlp2s0", None, None);
    wifi.kind = InterfaceKind::Wireless;
    let mut c = caps(vec![wifi]);
    c.host.routes = Known::Known(vec![route("wlp2s0", "::", 0, 600)]);
    let s = pick(&c);
    assert_eq!(s.tier, Tier::Home);
    assert!(s.tier_reason.contains("Wi-Fi"), "{}", s.tier_reason);
}

#[test]
fn backends_step_down_with_every_reason() {
    // DataCenter wants zero-copy AF_XDP: no CAP_BPF, and this NIC lacks zero-copy.
    let mut n = nic("eth0", Some(100_000), None);
    n.xdp = xdp(true, false);
    let mut c = caps(vec![n]);
    c.host.privileges = Known::Known(Privileges { net_admin: true, net_raw: true, bpf: false, sys_admin: false });
    let s = pick(&c);
    assert_eq!(s.profile.backend, BackendKind::IoUring);
    assert_eq!(s.steps, ["AF_XDP: no CAP_BPF", "AF_XDP: driver has no zero-copy AF_XDP"]);

    // io_uring unusable: the next step is linux-batch, with io_uring's reason.
    c.host.io_uring = Known::Known(IoUringSupport {
        opcodes: vec![],
        usable_by_stoq: false,
        missing: vec!["io_uring_setup: Operation not permitted".into()],
    });
    let s = pick(&c);
    assert_eq!(s.profile.backend, BackendKind::LinuxBatch);
    assert_eq!(s.steps.last().unwrap(), "io_uring: io_uring_setup: Operation not permitted");

    // Driver without native XDP, XDP unknown.
    let mut n = nic("eth0", Some(10_000), None);
    n.xdp = Known::unknown("kernel has no netdev netlink family (needs Linux 6.3+)");
    let s = pick(&caps(vec![n]));
    assert_eq!(s.tier, Tier::Enterprise);
    assert!(s.steps.iter().any(|w| w.contains("XDP support unknown (kernel has no netdev")), "{:?}", s.steps);
    let mut n = nic("eth0", Some(10_000), None);
    n.xdp = xdp(false, false);
    assert!(pick(&caps(vec![n])).steps.contains(&"AF_XDP: driver has no native XDP".to_owned()));
}

#[test]
fn af_xdp_is_chosen_where_the_probe_says_it_can_run() {
    let root = Known::Known(Privileges { net_admin: true, net_raw: true, bpf: true, sys_admin: true });
    // Enterprise takes AF_XDP in copy mode on a native-XDP driver.
    let mut n = nic("eth0", Some(10_000), None);
    n.xdp = xdp(true, false);
    let mut c = caps(vec![n]);
    c.host.privileges = root.clone();
    let s = pick(&c);
    assert_eq!((s.tier, s.profile.backend), (Tier::Enterprise, BackendKind::AfXdp));
    assert!(s.steps.is_empty(), "{:?}", s.steps);
    // DataCenter needs zero-copy too.
    c.interfaces[0].speed_mbps = Known::Known(100_000);
    assert_eq!(pick(&c).profile.backend, BackendKind::IoUring);
    c.interfaces[0].xdp = xdp(true, true);
    assert_eq!(pick(&c).profile.backend, BackendKind::AfXdp);

    // Asked for by name, generic XDP will do, but never on loopback or
    // without the capabilities.
    let mut n = nic("eth0", Some(1000), None);
    n.xdp = xdp(false, false);
    let mut c = caps(vec![n]);
    c.host.privileges = root;
    let by_name = Overrides { backend: Some(BackendKind::AfXdp), ..Default::default() };
    assert_eq!(select(&c, &by_name).unwrap().profile.backend, BackendKind::AfXdp);
    c.interfaces[0].kind = InterfaceKind::Loopback;
    let e = select(&c, &by_name).unwrap_err().to_string();
    assert!(e.contains("eth0 is not an Ethernet interface"), "{e}");
    c.interfaces[0].kind = InterfaceKind::Ethernet;
    c.host.privileges = Known::Known(Privileges { net_admin: false, net_raw: false, bpf: false, sys_admin: false });
    let e = select(&c, &by_name).unwrap_err().to_string();
    assert!(e.contains("no CAP_NET_ADMIN; no CAP_BPF"), "{e}");
}

#[test]
fn tiers_below_enterprise_take_their_preferred_backend_without_steps() {
    for (mbit, backend) in
        [(50, BackendKind::Portable), (500, BackendKind::LinuxBatch), (2000, BackendKind::LinuxBatch)]
    {
        let s = pick(&caps(vec![nic("eth0", Some(10_000), Some(mbit * 1_000_000))]));
        assert_eq!(s.profile.backend, backend, "{mbit} Mbit/s");
        assert!(s.steps.is_empty(), "{:?}", s.steps);
    }
    let s = pick(&caps(vec![nic("eth0", Some(5000), None)]));
    assert_eq!((s.tier, s.profile.backend), (Tier::Performance, BackendKind::IoUring));
    assert_eq!(s.profile.shards, 4, "one shard per RX queue (4) on 16 threads");
}

#[test]
fn operator_overrides_win_or_fail_clearly() {
    let mut c = caps(vec![nic("eth0", Some(1000), None)]);
    let o = Overrides { backend: Some(BackendKind::Portable), tier: Some(Tier::DataCenter), ..Default::default() };
    let s = select(&c, &o).unwrap();
    assert_eq!((s.tier, s.profile.backend), (Tier::DataCenter, BackendKind::Portable));
    assert_eq!(
        s.tier_reason,
        "datacenter forced by --tier (the probe's choice: standard: effective rate 1 Gbit/s (link speed 1 Gbit/s))"
    );
    assert!(s.steps[0].contains("sized for datacenter's nominal 100 Gbit/s, not the measured 1 Gbit/s"));

    c.host.io_uring = Known::unknown("probe failed");
    let e = select(&c, &Overrides { backend: Some(BackendKind::IoUring), ..Default::default() }).unwrap_err();
    assert_eq!(
        e.to_string(),
        "backend io_uring cannot run here: io_uring support unknown; choose another with --backend, or leave it to \
         the probe"
    );

    let e = select(&c, &Overrides { interface: Some("eth9".into()), ..Default::default() }).unwrap_err();
    assert_eq!(e.to_string(), "no interface named \"eth9\"; this host has: eth0");
}

#[test]
fn the_interface_comes_from_the_bind_address_then_the_default_route() {
    let mut lo = nic("lo", None, None);
    lo.kind = InterfaceKind::Loopback;
    lo.addresses = vec!["127.0.0.1".parse().unwrap()];
    let mut eth1 = nic("eth1", Some(25_000), None);
    eth1.addresses = vec!["198.51.100.7".parse().unwrap()];
    let mut c = caps(vec![lo, nic("eth0", Some(1000), None), eth1]);
    let by_bind = |ip: &str| select(&c, &Overrides { bind: Some(ip.parse().unwrap()), ..Default::default() }).unwrap();
    assert_eq!(by_bind("127.0.0.1").interface.as_deref(), Some("lo"));
    assert_eq!(by_bind("198.51.100.7").interface.as_deref(), Some("eth1"));
    assert_eq!(by_bind("198.51.100.7").tier, Tier::DataCenter);
    let s = by_bind("0.0.0.0");
    assert_eq!((s.interface.as_deref(), s.interface_reason.as_str()), (Some("eth0"), "it carries the default route"));

    // A client: the route to its peer names the interface, longest prefix first.
    c.host.routes = Known::Known(vec![
        route("eth0", "0.0.0.0", 0, 100),
        route("eth1", "198.51.100.0", 24, 0),
        route("eth0", "198.51.100.128", 25, 50),
    ]);
    let to = |ip: &str| select(&c, &Overrides { peer: Some(ip.parse().unwrap()), ..Default::default() }).unwrap();
    assert_eq!(to("198.51.100.9").interface.as_deref(), Some("eth1"));
    assert_eq!(to("198.51.100.200").interface.as_deref(), Some("eth0"), "the /25 beats the /24");
    assert_eq!(to("203.0.113.1").interface_reason, "the route to the peer 203.0.113.1 leaves by it");
    assert_eq!(to("127.0.0.1").interface.as_deref(), Some("lo"));

    c.host.routes = Known::Known(vec![]);
    assert_eq!(pick(&c).interface, None, "two interfaces up, no route: no guess");
    c.interfaces.pop();
    assert_eq!(pick(&c).interface.as_deref(), Some("eth0"));
}

#[test]
fn fq_root_qdisc_enables_kernel_pacing() {
    let mut n = nic("eth0", Some(1000), None);
    assert!(!pick(&caps(vec![n.clone()])).profile.kernel_pacing);
    n.qdisc = Known::Known(RootQdisc { kind: "fq".into(), rate_bps: None });
    assert!(pick(&caps(vec![n])).profile.kernel_pacing);
}

#[test]
fn shards_use_the_nic_local_cpus_this_process_may_run_on() {
    let mut n = nic("eth0", Some(25_000), None);
    n.queues = Known::Known(Queues { rx: 32, tx: 32, combined: Some(32), max_combined: Some(63) });
    n.local_cpus = Known::Known((24..48).collect());
    let mut c = caps(vec![n]);
    // hwloc lists the allowed CPUs: a cgroup left this process 4 of node 1's.
    c.host.cpu = Known::Known(CpuTopology {
        packages: 2,
        cores: 48,
        threads: 96,
        numa_nodes: vec![
            NumaNode { os_index: 0, cpus: vec![0, 1] },
            NumaNode { os_index: 1, cpus: vec![24, 25, 26, 27] },
        ],
        caches: vec![],
    });
    assert_eq!(pick(&c).profile.shards, 4);
    // Without the topology, the NIC's local CPUs are all there is to go by.
    c.host.cpu = Known::unknown("hwloc: failed");
    assert_eq!(pick(&c).profile.shards, 24);
}
