//! Live tests against this host's kernel: `lo`, `eth0` (read-only queries),
//! and a veth pair between network namespaces the test creates. Values are
//! compared with sysfs and, where the `ethtool` binary is installed, with it.

use std::path::Path;
use std::process::Command;

use stoq_testbed::{NetnsPair, skip_unless_ci};

use super::*;

fn unknown_reason<T: std::fmt::Debug>(k: &Known<T>) -> &str {
    match k {
        Known::Unknown(why) => why,
        Known::Known(v) => panic!("expected Unknown, got {v:?}"),
    }
}

/// `ethtool ARGS` (inside namespace 0 of `net` when given); `None` when the binary is not installed.
fn ethtool_binary(net: Option<&NetnsPair>, args: &[&str]) -> Option<String> {
    let mut cmd = match net {
        Some(net) => net.command(0, "ethtool"),
        None => Command::new("ethtool"),
    };
    if Command::new("ethtool").arg("--version").output().is_err() {
        eprintln!("ethtool binary not installed: comparison with `ethtool {}` not run", args.join(" "));
        return None;
    }
    let out = cmd.args(args).output().expect("run ethtool");
    assert!(out.status.success(), "ethtool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).expect("ethtool prints UTF-8"))
}

/// The value of `key: value` in ethtool's output.
fn ethtool_field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

/// Compares every feature `ethtool -k` prints under its kernel name; returns how many matched.
fn compare_with_ethtool_k(out: &str, ours: &BTreeMap<String, Feature>) -> usize {
    let mut compared = 0;
    for line in out.lines().skip(1) {
        let Some((name, state)) = line.trim().split_once(": ") else { continue };
        let Some(feature) = ours.get(name) else { continue };
        let active = state.starts_with("on");
        let fixed = state.contains("[fixed]");
        assert_eq!((feature.active, feature.fixed), (active, fixed), "{name}: ethtool -k says {state:?}");
        compared += 1;
    }
    compared
}

#[test]
fn lo_features_and_software_timestamping() {
    let info = query("lo");
    let offloads = info.offloads.get().expect("lo answers ETHTOOL_GFEATURES");
    // Kernel names from GSTRINGS, with lo's real state (loopback.c and the
    // core's NETIF_F_SOFT_FEATURES): GSO and GRO are on and changeable, the
    // loopback flag is on and not changeable, vlan-challenged never changes.
    assert_eq!(offloads["tx-generic-segmentation"], Feature { active: true, fixed: false });
    assert_eq!(offloads["rx-gro"], Feature { active: true, fixed: false });
    assert_eq!(offloads["tx-udp-segmentation"], Feature { active: true, fixed: false });
    assert_eq!(offloads["loopback"], Feature { active: true, fixed: true });
    assert_eq!(offloads["vlan-challenged"], Feature { active: true, fixed: true });
    assert_eq!(offloads["rx-udp-gro-forwarding"], Feature { active: false, fixed: false });
    assert_eq!(offloads["rx-vlan-filter"], Feature { active: false, fixed: true });
    assert!(offloads.len() > 40, "only {} features", offloads.len());

    assert_eq!(info.timestamping, Known::Known(Timestamping { hw_tx: false, hw_rx: false, phc_index: None }));

    let why = unknown_reason(&info.driver);
    assert!(why.starts_with("ETHTOOL_GDRVINFO on lo: Operation not supported"), "{why}");
    let why = unknown_reason(&info.queues);
    assert!(why.starts_with("ETHTOOL_GCHANNELS on lo: Operation not supported"), "{why}");
    assert!(unknown_reason(&info.rings).starts_with("ETHTOOL_GRINGPARAM on lo: "));
    assert!(unknown_reason(&info.speed_mbps).starts_with("ETHTOOL_GLINKSETTINGS on lo: "));
    assert!(unknown_reason(&info.duplex).starts_with("ETHTOOL_GLINKSETTINGS on lo: "));

    if let Some(out) = ethtool_binary(None, &["-k", "lo"]) {
        assert!(compare_with_ethtool_k(&out, offloads) > 40, "too few features compared:\n{out}");
    }
}

#[test]
fn missing_and_invalid_interfaces_name_the_ioctl_and_errno() {
    let info = query("hwdet-none0");
    assert!(unknown_reason(&info.driver).starts_with("ETHTOOL_GDRVINFO on hwdet-none0: No such device"));
    assert!(unknown_reason(&info.offloads).contains("hwdet-none0: No such device"));
    assert!(unknown_reason(&info.timestamping).starts_with("ETHTOOL_GET_TS_INFO on hwdet-none0: No such device"));

    let info = query("a-name-too-long-for-linux");
    let why = unknown_reason(&info.queues);
    assert!(why.contains("\"a-name-too-long-for-linux\"") && why.contains("longer than 15 bytes"), "{why}");
    assert_eq!(unknown_reason(&info.queues), unknown_reason(&info.timestamping));
}

fn sysfs(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn queue_counts(queues_dir: &str) -> (u32, u32) {
    let entries: Vec<String> = std::fs::read_dir(queues_dir)
        .expect("queues dir")
        .map(|e| e.expect("dir entry").file_name().into_string().expect("UTF-8 name"))
        .collect();
    let count = |p: &str| u32::try_from(entries.iter().filter(|e| e.starts_with(p)).count()).unwrap();
    (count("rx-"), count("tx-"))
}

#[test]
fn eth0_matches_sysfs_read_only() {
    let dev = Path::new("/sys/class/net/eth0");
    if !dev.join("device").exists() {
        return skip_unless_ci("no eth0 backed by a device on this host");
    }
    let info = query("eth0");
    let driver = info.driver.get().expect("eth0 answers ETHTOOL_GDRVINFO");
    let bound = std::fs::read_link(dev.join("device/driver")).expect("device/driver link");
    assert_eq!(driver.name, bound.file_name().unwrap().to_str().unwrap());

    // bus_info is the bus device's name: the device itself, or its parent
    // for a virtio device sitting on a PCI function.
    let device = std::fs::canonicalize(dev.join("device")).expect("device path");
    let bus = driver.bus_info.as_deref().expect("eth0 has a bus address");
    let names = [device.file_name(), device.parent().and_then(Path::file_name)].map(|n| n.unwrap().to_str().unwrap());
    assert!(names.contains(&bus), "bus_info {bus} is none of {names:?}");

    let queues = info.queues.get().expect("eth0 answers ETHTOOL_GCHANNELS");
    assert_eq!((queues.rx, queues.tx), queue_counts("/sys/class/net/eth0/queues"));

    match sysfs(&dev.join("speed")).as_deref() {
        Some("-1") => {
            let why = unknown_reason(&info.speed_mbps);
            assert!(why.starts_with(&format!("link speed not reported by driver {} on eth0", driver.name)), "{why}");
        }
        Some(speed) => assert_eq!(info.speed_mbps, Known::Known(speed.parse().expect("numeric speed"))),
        None => eprintln!("sysfs speed of eth0 unreadable (link down?): not compared"),
    }
    match sysfs(&dev.join("duplex")).as_deref() {
        Some("unknown") => assert!(unknown_reason(&info.duplex).contains("duplex not reported")),
        Some(duplex) => assert_eq!(info.duplex, Known::Known(duplex.to_owned())),
        None => eprintln!("sysfs duplex of eth0 unreadable: not compared"),
    }
    if driver.name == "virtio_net" {
        let rings = info.rings.get().expect("virtio_net answers ETHTOOL_GRINGPARAM");
        assert!(rings.rx > 0 && rings.rx <= rings.rx_max && rings.tx > 0 && rings.tx <= rings.tx_max, "{rings:?}");
    }
    let offloads = info.offloads.get().expect("eth0 answers ETHTOOL_GFEATURES");
    assert!(offloads.contains_key("rx-gro") && offloads.contains_key("tx-checksum-ip-generic"));

    if let Some(out) = ethtool_binary(None, &["-i", "eth0"]) {
        assert_eq!(ethtool_field(&out, "driver"), Some(driver.name.as_str()));
        assert_eq!(ethtool_field(&out, "version").filter(|v| !v.is_empty()), driver.version.as_deref());
        assert_eq!(ethtool_field(&out, "bus-info"), Some(bus));
    }
    if let Some(out) = ethtool_binary(None, &["-k", "eth0"]) {
        assert!(compare_with_ethtool_k(&out, offloads) > 20, "too few features compared:\n{out}");
    }
}

/// Runs `cmd args` inside namespace 0 of `net` (whose sysfs `ip netns exec`
/// remounts), and returns its trimmed stdout.
fn exec(net: &NetnsPair, cmd: &str, args: &[&str]) -> String {
    net.output(0, cmd, args).unwrap_or_else(|e| panic!("{e}")).trim().to_owned()
}

#[test]
fn veth_in_own_namespace() {
    let Some(net) = NetnsPair::create_with_queues(4, 3) else { return };
    let a = net.links[0].as_str();

    // From a thread in the namespace, so that the ioctl socket opens there.
    let info = net.run_scoped(0, || query(a));
    let driver = info.driver.get().expect("veth answers ETHTOOL_GDRVINFO");
    assert_eq!(driver.name, "veth");
    assert_eq!(driver.bus_info, None);
    assert_eq!(driver.firmware, None);
    // veth_get_link_ksettings: 10000 Mb/s full duplex; sysfs asks the same driver op.
    assert_eq!(info.speed_mbps, Known::Known(10_000));
    assert_eq!(exec(&net, "cat", &[&format!("/sys/class/net/{a}/speed")]), "10000");
    assert_eq!(info.duplex, Known::Known("full".to_owned()));
    assert_eq!(exec(&net, "cat", &[&format!("/sys/class/net/{a}/duplex")]), "full");
    // veth reports dedicated RX/TX channels and no combined ones.
    assert_eq!(info.queues, Known::Known(Queues { rx: 4, tx: 3, combined: None, max_combined: None }));
    let sysfs_queues = exec(&net, "ls", &[&format!("/sys/class/net/{a}/queues")]);
    let count = |p: &str| u32::try_from(sysfs_queues.split_whitespace().filter(|q| q.starts_with(p)).count()).unwrap();
    assert_eq!((count("rx-"), count("tx-")), (4, 3), "sysfs queues: {sysfs_queues}");
    let rings = unknown_reason(&info.rings);
    assert!(rings.starts_with(&format!("ETHTOOL_GRINGPARAM on {a}: Operation not supported")), "{rings}");
    assert_eq!(info.timestamping, Known::Known(Timestamping { hw_tx: false, hw_rx: false, phc_index: None }));
    let offloads = info.offloads.get().expect("veth answers ETHTOOL_GFEATURES");
    assert!(offloads["tx-udp-segmentation"].active);

    if let Some(out) = ethtool_binary(Some(&net), &["-i", a]) {
        assert_eq!(ethtool_field(&out, "version").filter(|v| !v.is_empty()), driver.version.as_deref());
    }
    if let Some(out) = ethtool_binary(Some(&net), &["-k", a]) {
        assert!(compare_with_ethtool_k(&out, offloads) > 20, "too few features compared:\n{out}");
    }

    // The namespace's interface is invisible from the test's own namespace.
    let outside = query(a);
    assert!(unknown_reason(&outside.driver).contains("No such device"));
}
