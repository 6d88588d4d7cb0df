//! The netlink probes against the running kernel, in a network namespace of
//! their own with a veth pair: root `tbf` and `htb` qdiscs set with `tc`
//! must read back at the rates `tc` configured, and the veth's XDP features
//! must be what drivers/net/veth.c advertises.
//!
//! Needs root (network namespaces, tc). When it cannot set up, a test
//! panics if `CI` is set and otherwise prints a skip notice and passes.
//! Nothing here touches the host's interfaces except the read-only probe in
//! `host_namespace_answers_decode`.

#![cfg(target_os = "linux")]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use hw_detect::linux::netlink::{self, NetlinkError};
use hw_detect::{RootQdisc, XdpFeatures};

/// A network namespace holding a veth pair (`a`, `b`), both up. Deleting
/// the namespace on drop deletes the pair with it, even if a test fails.
struct Netns {
    name: String,
    a: String,
    b: String,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    /// Creates the namespace and veth pair, or returns `None` (after saying
    /// why) when that is impossible outside CI.
    fn create() -> Option<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let ns = Netns { name: format!("hwd-nl-{tag}"), a: format!("hn{tag}a"), b: format!("hn{tag}b") };
        let setup = || -> Result<(), String> {
            run("ip", &["netns", "add", &ns.name])?;
            run("ip", &["-n", &ns.name, "link", "add", &ns.a, "type", "veth", "peer", "name", &ns.b])?;
            for dev in [&ns.a, &ns.b, "lo"] {
                run("ip", &["-n", &ns.name, "link", "set", dev, "up"])?;
            }
            Ok(())
        };
        match setup() {
            Ok(()) => Some(ns),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED (needs root; CI runs it): cannot create a network namespace with a veth pair: {e}");
                None
            }
            Err(e) => panic!("cannot create a network namespace with a veth pair in CI: {e}"),
        }
    }

    /// Runs `f` on a new thread that has entered this namespace, so the
    /// netlink sockets it opens see only the namespace's interfaces.
    fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            })
            .join()
            .expect("the namespace thread panicked")
        })
    }

    /// `tc -n NS args...`; panics with tc's message on failure.
    fn tc(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("tc", &all).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The kernel's ifindex of `dev` in the namespace.
    fn ifindex(&self, dev: &str) -> u32 {
        let out = run("ip", &["-n", &self.name, "-o", "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{e}"));
        out.split(':').next().and_then(|i| i.trim().parse().ok()).unwrap_or_else(|| panic!("no ifindex in {out:?}"))
    }

    fn root_qdisc(&self, dev: &str) -> RootQdisc {
        let index = self.ifindex(dev);
        let mut all = self.run_in(netlink::root_qdiscs).expect("root_qdiscs");
        all.remove(&index).unwrap_or_else(|| panic!("no root qdisc for {dev} (ifindex {index}) in {all:?}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
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
fn tc_json_tbf_bps(ns: &Netns, dev: &str) -> u64 {
    let json = ns.tc(&["-j", "qdisc", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("tc -j output {json:?}: {e}"));
    let q = v.as_array().and_then(|a| a.iter().find(|q| q["root"] == true)).expect("a root qdisc in tc -j output");
    assert_eq!(q["kind"], "tbf", "{json}");
    q["options"]["rate"].as_u64().expect("options.rate") * 8
}

#[test]
fn tbf_root_rates_read_back_as_tc_set_them() {
    let Some(ns) = Netns::create() else { return };
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
        ns.tc(&["qdisc", verb, "dev", &ns.a, "root", "tbf", "rate", arg, "burst", "32kb", "latency", "50ms"]);
        let q = ns.root_qdisc(&ns.a);
        assert_eq!(q.kind, "tbf");
        assert_eq!(q.rate_bps, Some(tc_rate_bps(bps)), "tbf rate {arg}");
        assert_eq!(q.rate_bps, Some(tc_json_tbf_bps(&ns, &ns.a)), "tbf rate {arg}: tc -j disagrees");
    }
    // The exact figures the issue names, spelled out.
    assert_eq!(tc_rate_bps(90e6), 90_000_000);
    assert_eq!(tc_rate_bps(500e6), 500_000_000);
    assert_eq!(tc_rate_bps(2e9), 2_000_000_000);
    assert_eq!(tc_rate_bps(5e9), 5_000_000_000);
    assert_eq!(tc_rate_bps(90.3333e6), 90_333_296);

    // The peer kept its default qdisc.
    assert_eq!(ns.root_qdisc(&ns.b), RootQdisc { kind: "noqueue".into(), rate_bps: None });
}

#[test]
fn htb_root_rate_is_the_sum_of_top_level_ceilings() {
    let Some(ns) = Netns::create() else { return };
    let a = ns.a.as_str();
    ns.tc(&["qdisc", "add", "dev", a, "root", "handle", "1:", "htb", "default", "10"]);
    // No class yet: HTB sends unshaped, so no rate.
    assert_eq!(ns.root_qdisc(a), RootQdisc { kind: "htb".into(), rate_bps: None });

    ns.tc(&["class", "add", "dev", a, "parent", "1:", "classid", "1:1", "htb", "rate", "100mbit", "ceil", "300mbit"]);
    assert_eq!(ns.root_qdisc(a).rate_bps, Some(300_000_000));
    // tc's own reading of the same class (a leaf prints "prio 0" before "rate").
    let shown = ns.tc(&["class", "show", "dev", a]);
    let line = shown.lines().find(|l| l.starts_with("class htb 1:1 root ")).unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains(" ceil 300Mbit "), "{line}");

    // A child class does not add to its parent's ceiling.
    ns.tc(&["class", "add", "dev", a, "parent", "1:1", "classid", "1:10", "htb", "rate", "50mbit", "ceil", "300mbit"]);
    assert_eq!(ns.root_qdisc(a).rate_bps, Some(300_000_000));

    // A second top-level class does.
    ns.tc(&["class", "add", "dev", a, "parent", "1:", "classid", "1:2", "htb", "rate", "10mbit", "ceil", "200mbit"]);
    assert_eq!(ns.root_qdisc(a).rate_bps, Some(500_000_000));

    // A ceiling past 2^32 bytes/s comes in TCA_HTB_CEIL64.
    ns.tc(&["class", "change", "dev", a, "parent", "1:", "classid", "1:2", "htb", "rate", "10mbit", "ceil", "40gbit"]);
    assert_eq!(ns.root_qdisc(a).rate_bps, Some(40_300_000_000));
}

#[test]
fn veth_without_qdisc_is_noqueue_and_unshaped() {
    let Some(ns) = Netns::create() else { return };
    for dev in [&ns.a, &ns.b, "lo"] {
        assert_eq!(ns.root_qdisc(dev), RootQdisc { kind: "noqueue".into(), rate_bps: None }, "{dev}");
        assert!(ns.tc(&["qdisc", "show", "dev", dev]).starts_with("qdisc noqueue 0: root"), "{dev}");
    }
    // After deleting a tbf the default comes back.
    ns.tc(&["qdisc", "add", "dev", &ns.a, "root", "tbf", "rate", "90mbit", "burst", "32kb", "latency", "50ms"]);
    ns.tc(&["qdisc", "del", "dev", &ns.a, "root"]);
    assert_eq!(ns.root_qdisc(&ns.a), RootQdisc { kind: "noqueue".into(), rate_bps: None });
}

/// What drivers/net/veth.c (`veth_set_xdp_features`, Linux 6.4+) advertises:
/// BASIC | REDIRECT | RX_SG always, plus NDO_XMIT | NDO_XMIT_SG when the
/// *peer* runs an XDP program or has GRO on. Never XSK_ZEROCOPY. (Linux 6.3
/// set all five unconditionally.)
#[test]
fn veth_xdp_features_match_the_driver() {
    let Some(ns) = Netns::create() else { return };
    let (a, b, lo) = (ns.ifindex(&ns.a), ns.ifindex(&ns.b), ns.ifindex("lo"));
    let probe = || ns.run_in(netlink::xdp_features);
    let all = match probe() {
        Err(NetlinkError::NoNetdevFamily) => {
            // Only acceptable on kernels before 6.3, which the CI machine is not.
            assert!(std::env::var_os("CI").is_none(), "no netdev netlink family in CI");
            eprintln!("SKIPPED: kernel has no netdev netlink family");
            return;
        }
        r => r.expect("xdp_features"),
    };
    let base = XdpFeatures {
        native: true,
        redirect: true,
        zero_copy: false,
        flags: vec!["basic".into(), "redirect".into(), "rx-sg".into()],
    };
    assert_eq!(all.get(&a), Some(&base), "{all:?}");
    assert_eq!(all.get(&b), Some(&base), "{all:?}");
    // Loopback has no XDP (xdp_features 0), and is still listed.
    assert_eq!(all.get(&lo), Some(&XdpFeatures { native: false, redirect: false, zero_copy: false, flags: vec![] }));
    assert_eq!(all.len(), 3, "{all:?}");

    // GRO on b lets a transmit XDP frames into it (ndo_xdp_xmit).
    run("ip", &["netns", "exec", &ns.name, "ethtool", "-K", &ns.b, "gro", "on"]).unwrap_or_else(|e| panic!("{e}"));
    let all = probe().expect("xdp_features");
    let with_xmit = XdpFeatures {
        flags: ["basic", "redirect", "ndo-xmit", "rx-sg", "ndo-xmit-sg"].map(String::from).to_vec(),
        ..base.clone()
    };
    assert_eq!(all.get(&a), Some(&with_xmit), "{all:?}");
    assert_eq!(all.get(&b), Some(&base), "{all:?}");
}

/// A read-only probe of the host's own namespace: whatever qdiscs and
/// drivers it has must decode. Loopback (ifindex 1) is always there.
#[test]
fn host_namespace_answers_decode() {
    let qdiscs = netlink::root_qdiscs().expect("root_qdiscs in the host namespace");
    let lo = qdiscs.get(&1).expect("loopback's root qdisc");
    assert_eq!(lo, &RootQdisc { kind: "noqueue".into(), rate_bps: None });
    match netlink::xdp_features() {
        Ok(x) => assert_eq!(x.get(&1).map(|f| f.flags.len()), Some(0), "loopback has no XDP: {x:?}"),
        Err(NetlinkError::NoNetdevFamily) => eprintln!("kernel has no netdev netlink family"),
        Err(e) => panic!("xdp_features in the host namespace: {e}"),
    }
}
