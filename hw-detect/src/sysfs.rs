//! Network interfaces as sysfs describes them (`/sys/class/net/IFACE`,
//! Documentation/ABI/testing/sysfs-class-net).
//!
//! This layer is the fallback under the ethtool ioctls and works without any
//! privilege: it reads files only, in safe code. Every function takes the
//! filesystem root (`/` on a live host, a fixture directory in tests), so the
//! parsers are exercised against the trees in `fixtures/`. Nothing is taken
//! from an interface's name: the kind comes from `type`, `uevent`,
//! `wireless/` and the `device` link; driver, bus address and NUMA placement
//! from the device directory the link points at.

#![forbid(unsafe_code)]

mod cpulist;
mod device;

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use cpulist::{MAX_CPU, ParseError, format_cpulist, parse_cpulist};

use crate::model::{Driver, InterfaceKind, Known, Queues};

/// ARPHRD_ETHER (include/uapi/linux/if_arp.h): Ethernet and Wi-Fi.
const ARPHRD_ETHER: u32 = 1;
/// ARPHRD_LOOPBACK (include/uapi/linux/if_arp.h).
const ARPHRD_LOOPBACK: u32 = 772;
/// EINVAL, the same on every Linux architecture (include/uapi/asm-generic/errno-base.h).
const EINVAL: i32 = 22;
/// sysfs attributes fit in a page; anything longer is not a sysfs attribute.
const MAX_ATTR_LEN: u64 = 64 * 1024;

/// What sysfs tells about one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsInterface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// Interface index (`ifindex`).
    pub index: Known<u32>,
    /// What kind of interface (from `type`, `uevent`, `wireless/`, `phy80211` and `device`).
    pub kind: InterfaceKind,
    /// RFC 2863 operational state (`operstate`).
    pub operstate: Known<String>,
    /// The bound driver (`device/driver`), its module version and the device's bus address.
    pub driver: Known<Driver>,
    /// Link speed in Mbit/s (`speed`).
    pub speed_mbps: Known<u32>,
    /// `full` or `half` (`duplex`).
    pub duplex: Known<String>,
    /// MTU in bytes (`mtu`).
    pub mtu: Known<u32>,
    /// Counts of `queues/rx-*` and `queues/tx-*`.
    pub queues: Known<Queues>,
    /// The device's NUMA node (`device/numa_node`, or its nearest parent's).
    pub numa_node: Known<u32>,
    /// CPUs local to the device (`device/local_cpulist`, or its nearest parent's).
    pub local_cpus: Known<Vec<usize>>,
}

/// Names of the interfaces in `<root>/sys/class/net`, in ifindex order
/// (interfaces whose `ifindex` cannot be read come last, by name).
pub fn interface_names(root: &Path) -> io::Result<Vec<String>> {
    let class = root.join("sys/class/net");
    let mut found = Vec::new();
    for entry in fs::read_dir(&class)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            log::warn!("{}: skipping a non-UTF-8 interface name", class.display());
            continue;
        };
        // Interfaces are (links to) directories; `bonding_masters` is a file.
        if !entry.path().is_dir() {
            continue;
        }
        let index = read_attr(&entry.path().join("ifindex")).ok().and_then(|s| s.parse::<u32>().ok());
        found.push((index, name));
    }
    found.sort_by(|(ia, na), (ib, nb)| match (ia, ib) {
        (Some(a), Some(b)) => a.cmp(b).then_with(|| na.cmp(nb)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => na.cmp(nb),
    });
    Ok(found.into_iter().map(|(_, name)| name).collect())
}

/// Reads everything sysfs has about interface `name` under `root`; each
/// field that cannot be read is `Unknown` with the file and the reason.
pub fn interface(root: &Path, name: &str) -> SysfsInterface {
    let Some(dir) = interface_dir(root, name) else {
        let why = format!("sysfs: {name:?} is not an interface name");
        return unknown_interface(name, &why);
    };
    if !dir.is_dir() {
        let why = format!("sysfs: no interface {name} in {}", root.join("sys/class/net").display());
        return unknown_interface(name, &why);
    }
    let attr = Attr { dir: &dir, iface: name };
    let device = device::resolve(root, &dir);
    SysfsInterface {
        name: name.to_owned(),
        index: attr.number("ifindex"),
        kind: kind(&dir),
        operstate: attr.read("operstate").and_then(|s| parse_operstate(&s)).into_known("operstate", name),
        driver: device::with_device(&device, "device/driver", name, "virtual device: no device link", |dev| {
            device::driver(root, dev)
        }),
        speed_mbps: parse_speed(attr.raw("speed")).into_known("speed", name),
        duplex: parse_duplex(attr.raw("duplex")).into_known("duplex", name),
        mtu: attr.number("mtu"),
        queues: count_queues(&dir.join("queues")).into_known("queues", name),
        numa_node: device::with_device(&device, "device/numa_node", name, "virtual device: no NUMA node", |dev| {
            device::numa_node(root, dev)
        }),
        local_cpus: device::with_device(
            &device,
            "device/local_cpulist",
            name,
            "virtual device: no local CPUs",
            |dev| device::local_cpus(root, dev),
        ),
    }
}

/// `<root>/sys/class/net/<name>`, or `None` if `name` could walk out of that directory.
fn interface_dir(root: &Path, name: &str) -> Option<PathBuf> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    plain.then(|| root.join("sys/class/net").join(name))
}

fn unknown_interface(name: &str, why: &str) -> SysfsInterface {
    SysfsInterface {
        name: name.to_owned(),
        index: Known::unknown(why),
        kind: InterfaceKind::Other,
        operstate: Known::unknown(why),
        driver: Known::unknown(why),
        speed_mbps: Known::unknown(why),
        duplex: Known::unknown(why),
        mtu: Known::unknown(why),
        queues: Known::unknown(why),
        numa_node: Known::unknown(why),
        local_cpus: Known::unknown(why),
    }
}

/// Reads a sysfs attribute, without its trailing newline.
fn read_attr(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    File::open(path)?.take(MAX_ATTR_LEN).read_to_string(&mut text)?;
    Ok(text.trim_end_matches('\n').to_owned())
}

/// One interface's attribute files, with errors worded for `Known::Unknown`.
struct Attr<'a> {
    dir: &'a Path,
    iface: &'a str,
}

impl Attr<'_> {
    fn raw(&self, file: &str) -> io::Result<String> {
        read_attr(&self.dir.join(file))
    }

    fn read(&self, file: &str) -> Result<String, String> {
        self.raw(file).map_err(|e| e.to_string())
    }

    fn number(&self, file: &str) -> Known<u32> {
        self.read(file)
            .and_then(|s| s.trim().parse::<u32>().map_err(|_| format!("not a number: {s:?}")))
            .into_known(file, self.iface)
    }
}

/// Turns a reason into `Unknown("sysfs <file> on <iface>: <reason>")`.
trait IntoKnown<T> {
    fn into_known(self, file: &str, iface: &str) -> Known<T>;
}

impl<T> IntoKnown<T> for Result<T, String> {
    fn into_known(self, file: &str, iface: &str) -> Known<T> {
        match self {
            Ok(v) => Known::Known(v),
            Err(why) => Known::Unknown(format!("sysfs {file} on {iface}: {why}")),
        }
    }
}

/// Words a failed read; EINVAL is how the kernel says the driver cannot answer.
fn read_error(e: &io::Error) -> String {
    if e.raw_os_error() == Some(EINVAL) {
        format!("{e}: the driver reports no link settings, or the interface is down")
    } else {
        e.to_string()
    }
}

/// Parses `speed`: Mbit/s, or -1 (SPEED_UNKNOWN) when there is no link.
fn parse_speed(read: io::Result<String>) -> Result<u32, String> {
    let text = read.map_err(|e| read_error(&e))?;
    match text.trim() {
        "-1" => Err("the driver reports an unknown speed (-1: no link, or not negotiated)".to_owned()),
        // ethtool prints "Unknown!" for 0 too: no rate to size anything by.
        "0" => Err("the driver reports speed 0 (link down?)".to_owned()),
        t => t.parse::<u32>().map_err(|_| format!("not a speed in Mbit/s: {t:?}")),
    }
}

/// Parses `duplex`: `full` or `half`; `unknown` when the driver cannot tell.
fn parse_duplex(read: io::Result<String>) -> Result<String, String> {
    let text = read.map_err(|e| read_error(&e))?;
    match text.trim() {
        t @ ("full" | "half") => Ok(t.to_owned()),
        "unknown" => Err("the driver reports an unknown duplex".to_owned()),
        t => Err(format!("unexpected value {t:?}")),
    }
}

/// Parses `operstate`: one of the RFC 2863 states the kernel prints.
fn parse_operstate(text: &str) -> Result<String, String> {
    const STATES: [&str; 7] = ["unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"];
    let t = text.trim();
    if STATES.contains(&t) { Ok(t.to_owned()) } else { Err(format!("unexpected value {t:?}")) }
}

/// Counts `rx-N` and `tx-N` entries of a `queues/` directory.
fn count_queues(dir: &Path) -> Result<Queues, String> {
    let (mut rx, mut tx) = (0u32, 0u32);
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let Some(name) = name.to_str() else { continue };
        let numbered = |prefix: &str| {
            name.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if numbered("rx-") {
            rx += 1;
        } else if numbered("tx-") {
            tx += 1;
        }
    }
    match (rx, tx) {
        (0, _) => Err("no rx-* entries".to_owned()),
        (_, 0) => Err("no tx-* entries".to_owned()),
        (rx, tx) => Ok(Queues { rx, tx, combined: None, max_combined: None }),
    }
}

/// Classifies the interface from sysfs alone (never from its name).
fn kind(dir: &Path) -> InterfaceKind {
    let ty = read_attr(&dir.join("type")).ok().and_then(|s| s.trim().parse::<u32>().ok());
    if ty == Some(ARPHRD_LOOPBACK) {
        return InterfaceKind::Loopback;
    }
    let uevent = read_attr(&dir.join("uevent")).unwrap_or_default();
    let wlan = uevent.lines().any(|l| l.trim() == "DEVTYPE=wlan");
    if dir.join("wireless").is_dir() || fs::symlink_metadata(dir.join("phy80211")).is_ok() || wlan {
        return InterfaceKind::Wireless;
    }
    match ty {
        Some(ARPHRD_ETHER) if fs::symlink_metadata(dir.join("device")).is_ok() => InterfaceKind::Ethernet,
        Some(ARPHRD_ETHER) => InterfaceKind::Virtual,
        _ => InterfaceKind::Other,
    }
}

#[cfg(test)]
mod tests;
