//! Assembles [`Capabilities`] from every source, field by field: ethtool
//! first where it knows more (link settings, channels, driver), sysfs where
//! ethtool has nothing (loopback, veth), netlink for XDP and qdiscs.
//!
//! [`probe_at`] reads a sysfs/procfs snapshot under another root (a fixture
//! tree, or one copied from an operator's host): what only the running
//! kernel can answer (ethtool, netlink, hwloc, io_uring, sockets,
//! capabilities) is then `Unknown`, never borrowed from this host.

use crate::model::{Capabilities, Host, Interface, Known};
#[cfg(target_os = "linux")]
use crate::{procfs, sysfs};

/// Probes this host. Never fails: what cannot be read is `Unknown` with the
/// reason.
pub fn probe() -> Capabilities {
    probe_at(std::path::Path::new("/"))
}

/// Probes the sysfs and procfs found under `root`; the kernel itself is
/// asked only when `root` is `/`.
pub fn probe_at(root: &std::path::Path) -> Capabilities {
    #[cfg(target_os = "linux")]
    {
        linux_probe(root)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = root;
        let why = "hw-detect reads Linux interfaces only";
        let no = || Known::unknown(why);
        Capabilities {
            host: Host {
                kernel: no(),
                cpu: no(),
                io_uring: no(),
                udp: crate::model::UdpOffloads::unknown(why),
                privileges: no(),
                bpffs: no(),
                routes: no(),
            },
            interfaces: Vec::new(),
        }
    }
}

#[cfg(target_os = "linux")]
fn linux_probe(root: &std::path::Path) -> Capabilities {
    use std::collections::HashMap;

    use crate::linux::{ethtool, host, netlink};

    let live = root == std::path::Path::new("/");
    let snapshot = format!("not probed: {} is a snapshot, not the running kernel", root.display());
    let xdp = if live { netlink::xdp_features().map_err(|e| e.to_string()) } else { Err(snapshot.clone()) };
    let qdiscs = if live { netlink::root_qdiscs().map_err(|e| e.to_string()) } else { Err(snapshot.clone()) };
    let mut addresses = if live {
        host::addresses().unwrap_or_else(|e| {
            log::warn!("reading interface addresses: {e}");
            HashMap::new()
        })
    } else {
        HashMap::new()
    };
    let names = sysfs::interface_names(root).unwrap_or_else(|e| {
        log::warn!("listing /sys/class/net: {e}");
        Vec::new()
    });
    let interfaces = names
        .iter()
        .map(|name| {
            let s = sysfs::interface(root, name);
            let e = if live { ethtool::query(name) } else { ethtool::EthtoolInfo::all_unknown(&snapshot) };
            Interface {
                xdp: per_index(&xdp, s.index.get(), "XDP features"),
                // Unknown when the dump failed, or when this interface's qdisc did not decode.
                qdisc: per_index(&qdiscs, s.index.get(), "root qdisc").and_then(|q| q),
                addresses: addresses.remove(name).unwrap_or_default(),
                name: name.clone(),
                index: s.index,
                kind: s.kind,
                operstate: s.operstate,
                driver: merge_driver(e.driver, s.driver),
                speed_mbps: e.speed_mbps.or(s.speed_mbps),
                duplex: e.duplex.or(s.duplex),
                mtu: s.mtu,
                queues: e.queues.or(s.queues),
                rings: e.rings,
                offloads: e.offloads,
                timestamping: e.timestamping,
                numa_node: s.numa_node,
                local_cpus: s.local_cpus,
            }
        })
        .collect();
    Capabilities {
        host: Host {
            kernel: procfs::kernel_version(root),
            cpu: if live { host::cpu_topology() } else { Known::unknown(&snapshot) },
            io_uring: if live { host::io_uring() } else { Known::unknown(&snapshot) },
            udp: if live { host::udp_offloads() } else { crate::model::UdpOffloads::unknown(&snapshot) },
            privileges: if live { host::privileges() } else { Known::unknown(&snapshot) },
            bpffs: procfs::bpffs_mounted(root),
            routes: procfs::routes(root),
        },
        interfaces,
    }
}

/// The entry of a per-ifindex netlink answer for one interface.
#[cfg(target_os = "linux")]
fn per_index<T: Clone>(
    found: &Result<std::collections::HashMap<u32, T>, String>,
    index: Option<&u32>,
    what: &str,
) -> Known<T> {
    match (found, index) {
        (Err(e), _) => Known::Unknown(e.clone()),
        (Ok(_), None) => Known::unknown(format!("{what}: interface index unknown")),
        (Ok(m), Some(i)) => {
            m.get(i).cloned().map_or_else(|| Known::unknown(format!("{what}: not reported")), Known::Known)
        }
    }
}

/// ethtool's driver info, completed from sysfs where ethtool left a field
/// empty (in-tree drivers often report no version; sysfs may know the bus).
#[cfg(target_os = "linux")]
fn merge_driver(ethtool: Known<crate::Driver>, sysfs: Known<crate::Driver>) -> Known<crate::Driver> {
    match (ethtool, sysfs) {
        (Known::Known(mut e), Known::Known(s)) => {
            e.version = e.version.or(s.version);
            e.bus_info = e.bus_info.or(s.bus_info);
            Known::Known(e)
        }
        (e, s) => e.or(s),
    }
}
