//! The probe's output: plain, serialisable data about the host and each
//! network interface. Every field was read from the host or is
//! [`Known::Unknown`] with the reason it could not be read.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

/// A probed value, or why it could not be read. Nothing is guessed: a field
/// the host does not expose stays `Unknown` with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Known<T> {
    /// Read from the host.
    Known(T),
    /// Not available; the text says why (e.g. "ETHTOOL_GCHANNELS: not supported by driver veth").
    Unknown(String),
}

impl<T> Known<T> {
    /// The value, if known.
    pub fn get(&self) -> Option<&T> {
        match self {
            Known::Known(v) => Some(v),
            Known::Unknown(_) => None,
        }
    }

    /// The value, if known (by value).
    pub fn into_option(self) -> Option<T> {
        match self {
            Known::Known(v) => Some(v),
            Known::Unknown(_) => None,
        }
    }

    /// An unknown value with a reason.
    pub fn unknown(why: impl Into<String>) -> Self {
        Known::Unknown(why.into())
    }

    /// Keeps `self` if known, else takes `other` (field-by-field fallback).
    /// When both are unknown, both reasons are kept.
    pub fn or(self, other: Known<T>) -> Known<T> {
        match (self, other) {
            (k @ Known::Known(_), _) => k,
            (Known::Unknown(_), k @ Known::Known(_)) => k,
            (Known::Unknown(a), Known::Unknown(b)) => Known::Unknown(format!("{a}; {b}")),
        }
    }

    /// Applies `f` to a known value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Known<U> {
        match self {
            Known::Known(v) => Known::Known(f(v)),
            Known::Unknown(why) => Known::Unknown(why),
        }
    }

    /// Applies `f`, which may itself not know, to a known value.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Known<U>) -> Known<U> {
        match self {
            Known::Known(v) => f(v),
            Known::Unknown(why) => Known::Unknown(why),
        }
    }
}

impl<T, E: std::fmt::Display> From<Result<T, E>> for Known<T> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Known::Known(v),
            Err(e) => Known::Unknown(e.to_string()),
        }
    }
}

/// Everything the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// Host-wide facts.
    pub host: Host,
    /// Network interfaces, in kernel index order.
    pub interfaces: Vec<Interface>,
}

impl Capabilities {
    /// The interface with this name.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

/// Host-wide facts.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Kernel release (`uname -r`), from `/proc/sys/kernel/osrelease`.
    pub kernel: Known<KernelVersion>,
    /// CPU topology.
    pub cpu: Known<CpuTopology>,
    /// io_uring support, probed by creating a ring.
    pub io_uring: Known<IoUringSupport>,
    /// UDP segmentation offloads, probed on a test socket.
    pub udp: UdpOffloads,
    /// Capabilities of this process (effective set, via `capget`).
    pub privileges: Known<Privileges>,
    /// Whether a BPF filesystem is mounted (from `/proc/self/mounts`).
    pub bpffs: Known<bool>,
    /// Usable routes: the IPv4 main table (`/proc/net/route`) and every
    /// IPv6 table `/proc/net/ipv6_route` lists, local routes skipped.
    pub routes: Known<Vec<Route>>,
}

impl Host {
    /// The route among [`Host::routes`] for `ip`: longest prefix, then lowest
    /// metric. Tables and rules are not consulted: for IPv4 this is the main
    /// table's choice, for IPv6 the best match across the non-local routes of
    /// all tables.
    pub fn route_to(&self, ip: std::net::IpAddr) -> Option<&Route> {
        self.routes.get()?.iter().filter(|r| r.contains(ip)).min_by_key(|r| (std::cmp::Reverse(r.prefix_len), r.metric))
    }
}

/// One route: a destination prefix and the interface it leaves by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Interface name.
    pub iface: String,
    /// Destination network.
    pub dest: IpAddr,
    /// Prefix length in bits (0: default route).
    pub prefix_len: u8,
    /// Metric (lower wins).
    pub metric: u32,
}

impl Route {
    /// Whether `ip` falls inside the route's prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| match a {
            IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        };
        let ((d, dw), (i, iw)) = (bits(self.dest), bits(ip));
        let len = u32::from(self.prefix_len).min(dw);
        dw == iw && (len == 0 || (d ^ i) >> (128 - len) == 0)
    }
}

/// Interfaces carrying a default route, lowest metric first (IPv4 before
/// IPv6 on a tie), each named once.
pub fn default_route_interfaces(routes: &[Route]) -> Vec<String> {
    let mut defaults: Vec<&Route> = routes.iter().filter(|r| r.prefix_len == 0).collect();
    defaults.sort_by_key(|r| r.metric);
    let mut names: Vec<String> = Vec::new();
    for r in defaults {
        if !names.contains(&r.iface) {
            names.push(r.iface.clone());
        }
    }
    names
}

/// A kernel release such as `6.18.0-1-amd64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelVersion {
    /// The full release string.
    pub release: String,
    /// Major, minor and patch numbers parsed from its start.
    pub version: (u32, u32, u32),
}

/// CPU topology from hwloc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuTopology {
    /// Physical packages (sockets).
    pub packages: usize,
    /// Physical cores.
    pub cores: usize,
    /// Hardware threads (logical CPUs the OS schedules on).
    pub threads: usize,
    /// NUMA nodes with their CPUs.
    pub numa_nodes: Vec<NumaNode>,
    /// Caches, one entry per level and type.
    pub caches: Vec<CacheLevel>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    /// The OS's node number.
    pub os_index: u32,
    /// Logical CPUs (OS indexes) in the node.
    pub cpus: Vec<usize>,
}

/// One cache level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheLevel {
    /// 1, 2, 3...
    pub level: u32,
    /// "data", "instruction" or "unified".
    pub kind: String,
    /// Size of one instance in bytes.
    pub size: Option<u64>,
    /// How many instances the host has.
    pub count: usize,
}

/// io_uring as this process can use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoUringSupport {
    /// Names of the opcodes the kernel reports as supported (`IORING_REGISTER_PROBE`).
    pub opcodes: Vec<String>,
    /// Whether everything STOQ's io_uring backend needs is present.
    pub usable_by_stoq: bool,
    /// If not usable, why.
    pub missing: Vec<String>,
}

/// UDP GSO/GRO as a test socket reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UdpOffloads {
    /// `UDP_SEGMENT` accepted.
    pub gso: Known<bool>,
    /// `UDP_GRO` accepted.
    pub gro: Known<bool>,
}

impl UdpOffloads {
    /// Both unknown, for the same reason.
    pub fn unknown(why: impl Into<String>) -> Self {
        let why = why.into();
        UdpOffloads { gso: Known::Unknown(why.clone()), gro: Known::Unknown(why) }
    }
}

/// The capabilities STOQ's backends care about, from the effective set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Privileges {
    /// CAP_NET_ADMIN: attach XDP programs, raise socket buffers past the sysctl limit.
    pub net_admin: bool,
    /// CAP_NET_RAW: raw and AF_XDP sockets.
    pub net_raw: bool,
    /// CAP_BPF: load BPF programs and maps.
    pub bpf: bool,
    /// CAP_SYS_ADMIN: everything above on kernels before 5.8.
    pub sys_admin: bool,
}

/// What kind of interface this is, from sysfs (`type`, `uevent`, `wireless/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceKind {
    /// The loopback device.
    Loopback,
    /// Wired Ethernet backed by a device (PCI, virtio, USB...).
    Ethernet,
    /// 802.11 Wi-Fi.
    Wireless,
    /// An Ethernet-type device without hardware behind it (veth, bridge,
    /// bond, tun...): no `device` link in sysfs.
    Virtual,
    /// Anything else (ARPHRD type not Ethernet).
    Other,
}

/// One network interface.
#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// Kernel interface index.
    pub index: Known<u32>,
    /// What kind of interface.
    pub kind: InterfaceKind,
    /// `operstate` (up, down, unknown...).
    pub operstate: Known<String>,
    /// Driver facts (ETHTOOL_GDRVINFO, else sysfs `device/driver`).
    pub driver: Known<Driver>,
    /// Link speed in Mbit/s (ETHTOOL_GLINKSETTINGS, else sysfs `speed`).
    pub speed_mbps: Known<u32>,
    /// Duplex.
    pub duplex: Known<String>,
    /// MTU in bytes.
    pub mtu: Known<u32>,
    /// Queue counts (ETHTOOL_GCHANNELS, else sysfs `queues/`).
    pub queues: Known<Queues>,
    /// Ring sizes (ETHTOOL_GRINGPARAM).
    pub rings: Known<Rings>,
    /// Offload features by ethtool name (ETHTOOL_GFEATURES).
    pub offloads: Known<BTreeMap<String, Feature>>,
    /// Hardware timestamping (ETHTOOL_GET_TS_INFO).
    pub timestamping: Known<Timestamping>,
    /// The NIC's NUMA node (sysfs `device/numa_node`).
    pub numa_node: Known<u32>,
    /// Logical CPUs local to the NIC (sysfs `device/local_cpulist`).
    pub local_cpus: Known<Vec<usize>>,
    /// Addresses assigned to the interface.
    pub addresses: Vec<IpAddr>,
    /// XDP features (netdev generic netlink, Linux 6.3+).
    pub xdp: Known<XdpFeatures>,
    /// The root egress qdisc and the rate it shapes to, if any (rtnetlink).
    pub qdisc: Known<RootQdisc>,
}

impl Interface {
    /// The smaller of link speed and shaping rate, in bit/s; `None` if
    /// neither is known.
    pub fn effective_rate_bps(&self) -> Option<u64> {
        let shaped = self.qdisc.get().and_then(|q| q.rate_bps);
        match (self.link_bps().into_option(), shaped) {
            (Some(l), Some(s)) => Some(l.min(s)),
            (l, s) => l.or(s),
        }
    }

    /// The link speed in bit/s, or why it is unknown.
    pub fn link_bps(&self) -> Known<u64> {
        self.speed_mbps.clone().map(|m| u64::from(m) * 1_000_000)
    }
}

/// Driver identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Driver {
    /// Driver name (e.g. `mlx5_core`).
    pub name: String,
    /// Driver version, where reported.
    pub version: Option<String>,
    /// Firmware version, where reported.
    pub firmware: Option<String>,
    /// Bus address (e.g. PCI `0000:3b:00.0`), where the device has one.
    pub bus_info: Option<String>,
}

/// Queue (channel) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Queues {
    /// Receive queues (dedicated RX channels plus combined).
    pub rx: u32,
    /// Transmit queues (dedicated TX channels plus combined).
    pub tx: u32,
    /// Combined channels, where the driver reports them.
    pub combined: Option<u32>,
    /// The most combined channels the driver supports.
    pub max_combined: Option<u32>,
}

/// Descriptor ring sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rings {
    /// Current RX ring size.
    pub rx: u32,
    /// Current TX ring size.
    pub tx: u32,
    /// Largest RX ring size.
    pub rx_max: u32,
    /// Largest TX ring size.
    pub tx_max: u32,
}

/// One offload feature's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Feature {
    /// Currently on.
    pub active: bool,
    /// Cannot be changed (ethtool shows `[fixed]`).
    pub fixed: bool,
}

/// Hardware timestamping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timestamping {
    /// Hardware transmit timestamps.
    pub hw_tx: bool,
    /// Hardware receive timestamps.
    pub hw_rx: bool,
    /// PTP hardware clock index, if any.
    pub phc_index: Option<u32>,
}

/// XDP features the driver advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XdpFeatures {
    /// NETDEV_XDP_ACT_BASIC: native (driver-mode) XDP.
    pub native: bool,
    /// NETDEV_XDP_ACT_REDIRECT: can redirect, needed for AF_XDP in driver mode.
    pub redirect: bool,
    /// NETDEV_XDP_ACT_XSK_ZEROCOPY: zero-copy AF_XDP.
    pub zero_copy: bool,
    /// Most buffers one zero-copy AF_XDP frame may span
    /// (`NETDEV_A_DEV_XDP_ZC_MAX_SEGS`), where the kernel reports it.
    pub zc_max_segs: Option<u32>,
    /// The raw flag names the kernel reported.
    pub flags: Vec<String>,
}

/// The interface's root egress qdisc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootQdisc {
    /// The qdisc's kind (`noqueue`, `fq_codel`, `fq`, `mq`, `tbf`, `htb`...).
    pub kind: String,
    /// The egress rate it enforces in bit/s: a `tbf`'s rate, or for `htb`
    /// the sum of the rates of the classes directly under the root.
    /// `None` for qdiscs that do not shape.
    pub rate_bps: Option<u64>,
}
