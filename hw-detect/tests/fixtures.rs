//! The sysfs and procfs parsers against the fixture trees in `fixtures/`
//! (see fixtures/README.md for where each tree came from): every parsed
//! field of every interface, and the host facts of every tree.

use std::path::{Path, PathBuf};

use hw_detect::{InterfaceKind, Known, Queues, procfs, sysfs};

fn fixture(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(tree)
}

/// CPUs from inclusive ranges, written out independently of `parse_cpulist`.
fn cpus(ranges: &[(usize, usize)]) -> Vec<usize> {
    ranges.iter().flat_map(|&(a, b)| a..=b).collect()
}

/// A field's expected value: known, or unknown with a reason containing the text.
#[derive(Debug)]
enum Want<T> {
    Is(T),
    UnknownWith(&'static str),
}
use Want::{Is, UnknownWith};

fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: &Known<T>, want: &Want<T>) {
    match (got, want) {
        (Known::Known(g), Is(w)) => assert_eq!(g, w, "{what}"),
        (Known::Unknown(why), UnknownWith(text)) => {
            assert!(why.contains(text), "{what}: reason {why:?} lacks {text:?}")
        }
        _ => panic!("{what}: got {got:?}, want {want:?}"),
    }
}

/// Expected driver facts: name, bus address, module version.
type DriverWant = (&'static str, Option<&'static str>, Option<&'static str>);

struct Nic {
    tree: &'static str,
    name: &'static str,
    index: u32,
    kind: InterfaceKind,
    operstate: &'static str,
    driver: Want<DriverWant>,
    speed: Want<u32>,
    duplex: Want<&'static str>,
    mtu: u32,
    queues: (u32, u32),
    numa: Want<u32>,
    local_cpus: Want<Vec<usize>>,
}

const VIRTUAL_DRIVER: Want<DriverWant> = UnknownWith("sysfs device/driver on");
const NO_NUMA: &str = "no NUMA affinity reported (numa_node = -1)";
// The kernel answers EINVAL when a driver has no link settings; a plain tree stores that as no file.
const NO_FILE: &str = "No such file or directory";
const SPEED_MINUS_ONE: &str = "unknown speed (-1";

fn lo(tree: &'static str) -> Nic {
    Nic {
        tree,
        name: "lo",
        index: 1,
        kind: InterfaceKind::Loopback,
        operstate: "unknown",
        driver: UnknownWith("sysfs device/driver on lo: virtual device: no device link"),
        speed: UnknownWith(NO_FILE),
        duplex: UnknownWith(NO_FILE),
        mtu: 65536,
        queues: (1, 1),
        numa: UnknownWith("sysfs device/numa_node on lo: virtual device: no NUMA node"),
        local_cpus: UnknownWith("sysfs device/local_cpulist on lo: virtual device: no local CPUs"),
    }
}

fn nics() -> Vec<Nic> {
    let socket1 = cpus(&[(24, 47), (72, 95)]);
    let mlx5_port = |name, index, operstate, speed, duplex, mtu, bus| Nic {
        tree: "mlx5",
        name,
        index,
        kind: InterfaceKind::Ethernet,
        operstate,
        driver: Is(("mlx5_core", Some(bus), None)),
        speed,
        duplex,
        mtu,
        queues: (24, 24),
        numa: Is(1),
        local_cpus: Is(socket1.clone()),
    };
    let veth = |name, index| Nic {
        tree: "veth",
        name,
        index,
        kind: InterfaceKind::Virtual,
        operstate: "up",
        driver: VIRTUAL_DRIVER,
        speed: Is(10000),
        duplex: Is("full"),
        mtu: 1500,
        queues: (1, 1),
        numa: UnknownWith("virtual device: no NUMA node"),
        local_cpus: UnknownWith("virtual device: no local CPUs"),
    };
    vec![
        lo("virtio-vm"),
        Nic {
            tree: "virtio-vm",
            name: "eth0",
            index: 4,
            kind: InterfaceKind::Ethernet,
            operstate: "up",
            // virtio_net is built in without MODULE_VERSION; the bus address is the PCI parent of virtio2.
            driver: Is(("virtio_net", Some("0000:00:03.0"), None)),
            speed: UnknownWith(SPEED_MINUS_ONE),
            duplex: UnknownWith("unknown duplex"),
            mtu: 1400,
            queues: (1, 1),
            numa: UnknownWith(NO_NUMA),
            local_cpus: Is(cpus(&[(0, 1)])),
        },
        lo("veth"),
        veth("veth1", 2),
        veth("veth0", 3),
        lo("e1000e"),
        Nic {
            tree: "e1000e",
            name: "eth0",
            index: 2,
            kind: InterfaceKind::Ethernet,
            operstate: "up",
            driver: Is(("e1000e", Some("0000:00:1f.6"), None)),
            speed: Is(1000),
            duplex: Is("full"),
            mtu: 1500,
            queues: (1, 1),
            numa: UnknownWith(NO_NUMA),
            local_cpus: Is(cpus(&[(0, 7)])),
        },
        lo("igc"),
        Nic {
            tree: "igc",
            name: "enp5s0",
            index: 2,
            kind: InterfaceKind::Ethernet,
            operstate: "up",
            // Behind a PCIe root port: the address is the NIC's function, not the port's.
            driver: Is(("igc", Some("0000:05:00.0"), None)),
            speed: Is(2500),
            duplex: Is("full"),
            mtu: 1500,
            queues: (4, 4),
            numa: UnknownWith(NO_NUMA),
            local_cpus: Is(cpus(&[(0, 11)])),
        },
        Nic {
            tree: "igc",
            name: "docker0",
            index: 3,
            kind: InterfaceKind::Virtual,
            operstate: "down",
            driver: VIRTUAL_DRIVER,
            speed: UnknownWith(SPEED_MINUS_ONE),
            duplex: UnknownWith("unknown duplex"),
            mtu: 1500,
            queues: (1, 1),
            numa: UnknownWith("virtual device: no NUMA node"),
            local_cpus: UnknownWith("virtual device: no local CPUs"),
        },
        lo("mlx5"),
        mlx5_port("ens1f0np0", 2, "up", Is(25000), Is("full"), 9000, "0000:af:00.0"),
        mlx5_port(
            "ens1f1np1",
            3,
            "down",
            UnknownWith("sysfs speed on ens1f1np1: the driver reports an unknown speed (-1"),
            UnknownWith("unknown duplex"),
            1500,
            "0000:af:00.1",
        ),
        lo("wifi"),
        Nic {
            tree: "wifi",
            name: "wlp0s20f3",
            index: 2,
            kind: InterfaceKind::Wireless,
            operstate: "up",
            driver: Is(("iwlwifi", Some("0000:00:14.3"), None)),
            speed: UnknownWith("sysfs speed on wlp0s20f3: No such file or directory"),
            duplex: UnknownWith("sysfs duplex on wlp0s20f3: No such file or directory"),
            mtu: 1500,
            queues: (1, 4),
            numa: UnknownWith(NO_NUMA),
            local_cpus: Is(cpus(&[(0, 7)])),
        },
    ]
}

#[test]
fn every_interface_field_of_every_tree() {
    let nics = nics();
    for want in &nics {
        let what = |field: &str| format!("{}/{} {field}", want.tree, want.name);
        let got = sysfs::interface(&fixture(want.tree), want.name);
        assert_eq!(got.name, want.name);
        assert_eq!(got.index, Known::Known(want.index), "{}", what("index"));
        assert_eq!(got.kind, want.kind, "{}", what("kind"));
        assert_eq!(got.operstate, Known::Known(want.operstate.to_owned()), "{}", what("operstate"));
        let driver = got.driver.clone().map(|d| {
            assert_eq!(d.firmware, None, "{}", what("firmware"));
            (d.name, d.bus_info, d.version)
        });
        let driver_want = match &want.driver {
            Is((n, b, v)) => Is((n.to_string(), b.map(str::to_owned), v.map(str::to_owned))),
            UnknownWith(t) => UnknownWith(t),
        };
        check(&what("driver"), &driver, &driver_want);
        check(&what("speed"), &got.speed_mbps, &want.speed);
        let duplex_want = match &want.duplex {
            Is(d) => Is(d.to_string()),
            UnknownWith(t) => UnknownWith(t),
        };
        check(&what("duplex"), &got.duplex, &duplex_want);
        assert_eq!(got.mtu, Known::Known(want.mtu), "{}", what("mtu"));
        let (rx, tx) = want.queues;
        assert_eq!(
            got.queues,
            Known::Known(Queues { rx, tx, combined: None, max_combined: None }),
            "{}",
            what("queues")
        );
        check(&what("numa_node"), &got.numa_node, &want.numa);
        check(&what("local_cpus"), &got.local_cpus, &want.local_cpus);
    }
    // Every interface of every tree is in the table.
    for tree in TREES {
        let listed: Vec<&str> = nics.iter().filter(|n| n.tree == tree).map(|n| n.name).collect();
        let names = sysfs::interface_names(&fixture(tree)).expect("sys/class/net");
        assert_eq!(names, listed, "{tree}: interfaces in ifindex order");
    }
}

const TREES: [&str; 6] = ["virtio-vm", "veth", "e1000e", "igc", "mlx5", "wifi"];

struct HostWant {
    tree: &'static str,
    release: &'static str,
    version: (u32, u32, u32),
    bpffs: bool,
    default_routes: &'static [&'static str],
}

#[test]
fn host_facts_of_every_tree() {
    let hosts = [
        HostWant {
            tree: "virtio-vm",
            release: "6.18.44-fc-v782",
            version: (6, 18, 44),
            bpffs: false,
            default_routes: &["eth0"],
        },
        HostWant {
            tree: "veth",
            release: "6.18.44-fc-v782",
            version: (6, 18, 44),
            bpffs: false,
            default_routes: &["veth0"],
        },
        HostWant {
            tree: "e1000e",
            release: "6.6.58-0-lts",
            version: (6, 6, 58),
            bpffs: false,
            default_routes: &["eth0"],
        },
        HostWant {
            tree: "igc",
            release: "6.8.0-49-generic",
            version: (6, 8, 0),
            bpffs: true,
            default_routes: &["enp5s0"],
        },
        HostWant {
            tree: "mlx5",
            release: "5.14.0-503.14.1.el9_5.x86_64",
            version: (5, 14, 0),
            bpffs: true,
            default_routes: &["ens1f0np0", "ens1f1np1"],
        },
        HostWant {
            tree: "wifi",
            release: "6.11.10-300.fc41.x86_64",
            version: (6, 11, 10),
            bpffs: true,
            default_routes: &["wlp0s20f3"],
        },
    ];
    assert_eq!(hosts.each_ref().map(|h| h.tree), TREES);
    for want in &hosts {
        let root = fixture(want.tree);
        let kernel = procfs::kernel_version(&root).into_option().expect("kernel release");
        assert_eq!(kernel.release, want.release, "{}", want.tree);
        assert_eq!(kernel.version, want.version, "{}", want.tree);
        assert_eq!(procfs::bpffs_mounted(&root), Known::Known(want.bpffs), "{}", want.tree);
        let routes = want.default_routes.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let defaults = procfs::routes(&root).map(|r| hw_detect::default_route_interfaces(&r));
        assert_eq!(defaults, Known::Known(routes), "{}", want.tree);
    }
}

/// Every symlink in the fixtures resolves, and stays inside its own tree.
#[test]
fn fixture_links_stay_inside_their_tree() {
    fn walk(dir: &Path, tree: &Path, links: &mut usize) {
        for entry in std::fs::read_dir(dir).expect("read fixture dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_symlink() {
                *links += 1;
                let target = std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(target.starts_with(tree), "{} leaves its tree for {}", path.display(), target.display());
            } else if meta.is_dir() {
                walk(&path, tree, links);
            }
        }
    }
    for tree in TREES {
        let root = std::fs::canonicalize(fixture(tree)).expect("fixture tree");
        let mut links = 0;
        walk(&root, &root, &mut links);
        assert!(links >= 3, "{tree}: only {links} links (class/net entries at least)");
    }
}

/// The same parsers on this host: the loopback device always exists in the
/// initial network namespace, with ifindex 1 (LOOPBACK_IFINDEX).
#[test]
fn live_host_loopback_and_kernel() {
    let root = Path::new("/");
    let names = sysfs::interface_names(root).expect("/sys/class/net");
    assert_eq!(names.first().map(String::as_str), Some("lo"), "{names:?}");
    let lo = sysfs::interface(root, "lo");
    assert_eq!(lo.kind, InterfaceKind::Loopback);
    assert_eq!(lo.index, Known::Known(1));
    assert!(matches!(lo.numa_node, Known::Unknown(ref w) if w.contains("virtual device")));
    let uname = std::process::Command::new("uname").arg("-r").output().expect("uname -r");
    let release = String::from_utf8(uname.stdout).expect("utf-8");
    let kernel = procfs::kernel_version(root).into_option().expect("kernel release");
    assert_eq!(kernel.release, release.trim());
}
