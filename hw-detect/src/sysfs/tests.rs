//! Malformed and missing sysfs input: every case gives a reason, none panics.

use super::*;
use std::os::unix::fs::symlink;

/// A tree with one virtual interface directory `x0` holding `files`.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("sys/devices/virtual/net/x0");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(t.path().join("sys/class/net")).unwrap();
    symlink("../../devices/virtual/net/x0", t.path().join("sys/class/net/x0")).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    t
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(EINVAL)
}

#[test]
fn speed_values() {
    assert_eq!(parse_speed(Ok("25000".into())), Ok(25000));
    assert_eq!(
        parse_speed(Ok("-1".into())),
        Err("the driver reports an unknown speed (-1: no link, or not negotiated)".into())
    );
    assert_eq!(parse_speed(Ok("0\n".into())), Err("the driver reports speed 0 (link down?)".into()));
    assert_eq!(parse_speed(Ok("fast".into())), Err("not a speed in Mbit/s: \"fast\"".into()));
    assert_eq!(parse_speed(Ok("".into())), Err("not a speed in Mbit/s: \"\"".into()));
    assert_eq!(parse_speed(Ok("-7".into())), Err("not a speed in Mbit/s: \"-7\"".into()));
    assert_eq!(parse_speed(Ok("99999999999".into())), Err("not a speed in Mbit/s: \"99999999999\"".into()));
    let why = parse_speed(Err(einval())).unwrap_err();
    assert!(why.starts_with("Invalid argument (os error 22): the driver reports no link settings"), "{why}");
    let why = parse_speed(Err(io::Error::from_raw_os_error(2))).unwrap_err();
    assert_eq!(why, "No such file or directory (os error 2)");
}

#[test]
fn duplex_values() {
    assert_eq!(parse_duplex(Ok("full".into())), Ok("full".into()));
    assert_eq!(parse_duplex(Ok("half".into())), Ok("half".into()));
    assert_eq!(parse_duplex(Ok("unknown".into())), Err("the driver reports an unknown duplex".into()));
    assert_eq!(parse_duplex(Ok("FULL".into())), Err("unexpected value \"FULL\"".into()));
    assert!(parse_duplex(Err(einval())).unwrap_err().contains("no link settings"));
}

#[test]
fn operstate_values() {
    assert_eq!(parse_operstate("lowerlayerdown"), Ok("lowerlayerdown".into()));
    assert_eq!(parse_operstate("sideways"), Err("unexpected value \"sideways\"".into()));
    assert_eq!(parse_operstate(""), Err("unexpected value \"\"".into()));
}

#[test]
fn missing_files_give_reasons_naming_the_file() {
    let t = tree(&[]);
    let i = interface(t.path(), "x0");
    assert_eq!(i.name, "x0");
    assert_eq!(i.kind, InterfaceKind::Other, "no `type` file: not classifiable");
    for (field, value) in [
        ("ifindex", i.index.map(|v| v.to_string())),
        ("mtu", i.mtu.map(|v| v.to_string())),
        ("speed", i.speed_mbps.map(|v| v.to_string())),
        ("duplex", i.duplex),
        ("operstate", i.operstate),
    ] {
        assert_eq!(
            value,
            Known::Unknown(format!("sysfs {field} on x0: No such file or directory (os error 2)")),
            "{field}"
        );
    }
    let Known::Unknown(why) = i.queues else { panic!("queues known without a queues/ directory") };
    assert!(why.starts_with("sysfs queues on x0: No such file or directory"), "{why}");
    assert_eq!(i.driver, Known::Unknown("sysfs device/driver on x0: virtual device: no device link".into()));
    assert_eq!(i.numa_node, Known::Unknown("sysfs device/numa_node on x0: virtual device: no NUMA node".into()));
    assert_eq!(i.local_cpus, Known::Unknown("sysfs device/local_cpulist on x0: virtual device: no local CPUs".into()));
}

#[test]
fn garbage_values_give_reasons() {
    let t = tree(&[
        ("type", "1\n"),
        ("ifindex", "seven\n"),
        ("mtu", "-1500\n"),
        ("speed", "lots\n"),
        ("duplex", "unknown\n"),
        ("operstate", "\n"),
        ("queues/rx-0/rps_cpus", "0\n"),
        ("queues/rx-x/rps_cpus", "0\n"),
    ]);
    let i = interface(t.path(), "x0");
    assert_eq!(i.kind, InterfaceKind::Virtual);
    assert_eq!(i.index, Known::Unknown("sysfs ifindex on x0: not a number: \"seven\"".into()));
    assert_eq!(i.mtu, Known::Unknown("sysfs mtu on x0: not a number: \"-1500\"".into()));
    assert_eq!(i.speed_mbps, Known::Unknown("sysfs speed on x0: not a speed in Mbit/s: \"lots\"".into()));
    assert_eq!(i.duplex, Known::Unknown("sysfs duplex on x0: the driver reports an unknown duplex".into()));
    assert_eq!(i.operstate, Known::Unknown("sysfs operstate on x0: unexpected value \"\"".into()));
    assert_eq!(i.queues, Known::Unknown("sysfs queues on x0: no tx-* entries".into()));
}

#[test]
fn binary_and_oversized_files_do_not_panic() {
    let big = "1".repeat(200_000);
    let t = tree(&[("mtu", &big), ("type", "\u{0}\u{1}\u{2}")]);
    let i = interface(t.path(), "x0");
    assert_eq!(i.kind, InterfaceKind::Other);
    assert!(matches!(i.mtu, Known::Unknown(ref w) if w.starts_with("sysfs mtu on x0: not a number")), "{:?}", i.mtu);
    fs::write(t.path().join("sys/devices/virtual/net/x0/mtu"), [0xff, 0xfe, b'1']).unwrap();
    let i = interface(t.path(), "x0");
    assert!(
        matches!(i.mtu, Known::Unknown(ref w) if w.contains("valid UTF-8")),
        "non-UTF-8 content is a read error: {:?}",
        i.mtu
    );
}

#[test]
fn queue_counting_ignores_other_entries() {
    let t = tree(&[
        ("queues/rx-0/rps_cpus", "0"),
        ("queues/rx-1/rps_cpus", "0"),
        ("queues/tx-0/xps_cpus", "0"),
        ("queues/tx-/xps_cpus", "0"),
        ("queues/tx-1a/xps_cpus", "0"),
        ("queues/rx-2x/rps_cpus", "0"),
    ]);
    let i = interface(t.path(), "x0");
    assert_eq!(i.queues, Known::Known(Queues { rx: 2, tx: 1, combined: None, max_combined: None }));
}

#[test]
fn kind_never_comes_from_the_name() {
    // Named like a Wi-Fi card, but sysfs says Ethernet without a device: virtual.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("sys/class/net/wlan0");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("type"), "1\n").unwrap();
    assert_eq!(interface(t.path(), "wlan0").kind, InterfaceKind::Virtual);
    // Each Wi-Fi marker alone is enough.
    fs::write(dir.join("uevent"), "DEVTYPE=wlan\nINTERFACE=wlan0\n").unwrap();
    assert_eq!(interface(t.path(), "wlan0").kind, InterfaceKind::Wireless);
    fs::write(dir.join("uevent"), "INTERFACE=wlan0\n").unwrap();
    symlink("nowhere", dir.join("phy80211")).unwrap();
    assert_eq!(interface(t.path(), "wlan0").kind, InterfaceKind::Wireless);
    // Other ARPHRD types (e.g. 65534, ARPHRD_NONE for tun/wireguard) are Other.
    fs::remove_file(dir.join("phy80211")).unwrap();
    fs::write(dir.join("type"), "65534\n").unwrap();
    assert_eq!(interface(t.path(), "wlan0").kind, InterfaceKind::Other);
}

#[test]
fn names_that_leave_the_directory_are_refused() {
    let t = tree(&[("mtu", "1500")]);
    for name in ["", ".", "..", "../net/x0", "x0/../x0"] {
        let i = interface(t.path(), name);
        assert_eq!(i.mtu, Known::Unknown(format!("sysfs: {name:?} is not an interface name")), "{name:?}");
    }
    let i = interface(t.path(), "nosuch0");
    assert!(matches!(i.mtu, Known::Unknown(ref w) if w.starts_with("sysfs: no interface nosuch0 in ")));
}

#[test]
fn interface_names_orders_by_index_then_name_and_skips_files() {
    let t = tempfile::tempdir().unwrap();
    let class = t.path().join("sys/class/net");
    for (name, index) in [("b", Some("3")), ("a", Some("7")), ("z", None), ("c", Some("bad")), ("lo", Some("1"))] {
        fs::create_dir_all(class.join(name)).unwrap();
        if let Some(index) = index {
            fs::write(class.join(name).join("ifindex"), index).unwrap();
        }
    }
    fs::write(class.join("bonding_masters"), "\n").unwrap();
    assert_eq!(interface_names(t.path()).unwrap(), ["lo", "b", "a", "c", "z"]);
    let missing = interface_names(&t.path().join("nowhere")).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
}
