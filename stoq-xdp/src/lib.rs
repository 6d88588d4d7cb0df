//! # stoq-xdp: STOQ's AF_XDP packet backend
//!
//! STOQ's packets to and from an Ethernet interface skip the kernel's UDP
//! stack: STOQ's own XDP program ([`bpf`]) runs on every received frame and
//! redirects the IPv4 and IPv6 UDP datagrams addressed to STOQ's port into
//! AF_XDP sockets, one per NIC queue; everything else (ARP, NDP, SSH, other
//! UDP, IPv4 fragments) goes on to the kernel untouched. [`XdpIo`] then
//! implements stoq-core's [`PacketIo`] over those
//! sockets: it parses and writes Ethernet/IP/UDP itself ([`frame`]), finds
//! next hops in the kernel's routing and neighbour tables ([`neigh`]), and
//! keeps a companion kernel UDP socket on the same port, which holds the
//! port against other processes (on every address, as the program matches
//! the port on every address), receives what the program passes, and
//! sends what cannot take the AF_XDP path yet (a neighbour not resolved).
//!
//! ```text
//!  NIC queue q ── XDP program ──(STOQ UDP port)──▶ XSKMAP[q] ─▶ XSK q ─┐
//!                     │ everything else                             ├─▶ XdpIo ─▶ shard
//!                     └──────────▶ kernel stack ─▶ companion socket ──┘
//! ```
//!
//! Open it through an endpoint: set the backend to
//! [`BackendKind::AfXdp`] and put an
//! [`XdpOpener`] in [`EndpointConfig::opener`](stoq_core::EndpointConfig::opener):
//!
//! ```no_run
//! use std::sync::Arc;
//! use stoq_core::{DevPki, Endpoint, ServerConfig, io::BackendKind};
//! use stoq_xdp::{XdpConfig, XdpOpener};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pki = DevPki::generate(&["node1.example"])?;
//! let mut cfg = ServerConfig::new(pki.server_tls());
//! cfg.endpoint.backend = BackendKind::AfXdp;
//! cfg.endpoint.opener = Some(Arc::new(XdpOpener::new(XdpConfig::new("eth1"))));
//! let server = Endpoint::server("0.0.0.0:4433".parse()?, cfg)?; // needs CAP_NET_ADMIN + CAP_BPF
//! # Ok(()) }
//! ```
//!
//! ## Why these pieces
//!
//! - Sockets and rings come from **xdpilone**: pure Rust, no libbpf or
//!   libxdp to build, no C toolchain. `xsk-rs` also works here but builds
//!   libxdp and libbpf from source and needs clang, llvm, m4 and libelf at
//!   build time, for nothing this backend uses.
//! - The XDP program is **our own**, assembled in Rust from named BPF
//!   instructions and loaded with raw `bpf(2)` calls: it is a few dozen
//!   instructions, the kernel's verifier checks it at load, and no BPF
//!   toolchain is needed to build STOQ. It is attached with
//!   `BPF_LINK_CREATE`, so the kernel detaches it when the process dies,
//!   even by SIGKILL; the netlink `IFLA_XDP` fallback for older kernels
//!   does not have that property and says so in the log.
//! - The frame codec is hand-written: the transmit path copies the payload
//!   into the UMEM frame once and writes the headers in front of it, with
//!   the UDP checksum computed in software (AF_XDP has no checksum offload
//!   in copy mode); parsing borrows the frame and never allocates.
//!
//! ## What it needs
//!
//! Linux 5.9+ (BPF links), CAP_NET_ADMIN and CAP_BPF (or root), an Ethernet
//! interface, an MTU that fits one 4 KiB UMEM frame after the kernel's receive headroom (up to 3822 bytes) and
//! a queue nobody else's AF_XDP socket holds. Every failure says which of
//! these is missing and what to do instead ([`XdpError`]). Drivers with
//! native XDP run the program in the driver; others in generic (skb) mode,
//! which works everywhere but saves little. Zero-copy binding is tried in
//! native mode and falls back to copy mode;
//! [`IoCapabilities::zero_copy`](stoq_core::io::IoCapabilities::zero_copy)
//! reports which one runs.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_os = "linux")]
pub mod bpf;
pub mod frame;
#[cfg(target_os = "linux")]
mod io;
#[cfg(target_os = "linux")]
pub mod neigh;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod xsk;

use std::net::SocketAddr;
use std::sync::Arc;

use stoq_core::io::{BackendError, BackendKind, IoCounters, OpenBackend, PacketIo, SocketOptions};

#[cfg(target_os = "linux")]
pub use io::XdpIo;
#[cfg(target_os = "linux")]
pub use xsk::{FRAME_SIZE, XskError};

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native if the driver has it, else generic.
    #[default]
    Auto,
    /// In the driver (`XDP_FLAGS_DRV_MODE`); fails where the driver has no
    /// XDP support.
    Native,
    /// In the kernel's receive path after the skb is built
    /// (`XDP_FLAGS_SKB_MODE`): works on any interface, saves little.
    Generic,
}

/// Whether AF_XDP sockets bind in zero-copy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, copy mode otherwise.
    #[default]
    Auto,
    /// Zero-copy or fail.
    Required,
    /// Copy mode always.
    Off,
}

/// How to run the AF_XDP backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// The Ethernet interface to attach to. Never the host's management
    /// interface unless you mean it: the program sees every frame on it.
    pub interface: String,
    /// NIC receive queues to serve, one AF_XDP socket each; `None`: all.
    pub queues: Option<Vec<u32>>,
    /// Where the program runs.
    pub mode: AttachMode,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// Entries per ring (fill, RX, TX, completion), a power of two from
    /// 512 to 8192; `None`: sized from the profile's socket buffers.
    pub ring: Option<u32>,
}

impl XdpConfig {
    /// Defaults for `interface`: every queue, automatic mode and zero-copy,
    /// rings sized from the profile.
    pub fn new(interface: impl Into<String>) -> Self {
        Self {
            interface: interface.into(),
            queues: None,
            mode: AttachMode::Auto,
            zero_copy: ZeroCopy::Auto,
            ring: None,
        }
    }
}

/// Why the AF_XDP backend could not open. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// The interface does not exist in this network namespace.
    #[error("no interface named {name:?} in this network namespace (see `ip link`); pass the NIC STOQ serves")]
    NoInterface {
        /// The name asked for.
        name: String,
    },
    /// The interface does not carry Ethernet frames.
    #[error("{name} is not an Ethernet interface; AF_XDP frames Ethernet itself (use --backend io_uring there)")]
    NotEthernet {
        /// The interface.
        name: String,
    },
    /// The MTU does not fit a UMEM frame.
    #[error(
        "{name} has MTU {mtu}; the AF_XDP backend handles MTUs up to {max} (one 4 KiB frame per packet): lower it or use --backend io_uring"
    )]
    MtuTooLarge {
        /// The interface.
        name: String,
        /// Its MTU.
        mtu: u32,
        /// The largest this backend handles.
        max: u32,
    },
    /// A configured queue does not exist.
    #[error("{name} has {queues} receive queue(s), so there is no queue {queue} (see `ethtool -l {name}`)")]
    QueueOutOfRange {
        /// The interface.
        name: String,
        /// The queue asked for.
        queue: u32,
        /// How many it has.
        queues: u32,
    },
    /// Zero-copy was required but the program could not run natively.
    #[error("zero-copy AF_XDP needs native XDP, and the program runs in generic mode; allow copy mode")]
    ZeroCopyNeedsNative,
    /// The companion UDP socket could not bind.
    #[error(
        "cannot bind the companion UDP socket to {addr}: {source} (is the port in use, or the address not on this host?)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// Reading the interface from the kernel failed.
    #[cfg(target_os = "linux")]
    #[error("reading the interface from the kernel: {0}")]
    Netlink(hw_detect::linux::netlink::NetlinkError),
    /// The XDP program or its map could not be set up.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Program(bpf::LoadError),
    /// The XDP program could not be attached.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Attach(bpf::AttachError),
    /// An AF_XDP socket could not be entered in the program's map.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Map(bpf::MapError),
    /// An AF_XDP socket could not be set up.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Xsk(XskError),
    /// Another system call failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// Not Linux.
    #[error("AF_XDP needs Linux; use --backend portable")]
    Unsupported,
}

/// Opens [`XdpIo`] for an endpoint whose backend is
/// [`BackendKind::AfXdp`] (stoq-core's [`OpenBackend`]).
#[derive(Debug, Clone)]
pub struct XdpOpener(pub XdpConfig);

impl XdpOpener {
    /// An opener with this configuration.
    pub fn new(cfg: XdpConfig) -> Self {
        Self(cfg)
    }

    /// As an endpoint's `opener`.
    pub fn shared(cfg: XdpConfig) -> Arc<dyn OpenBackend> {
        Arc::new(Self(cfg))
    }
}

impl OpenBackend for XdpOpener {
    fn kind(&self) -> BackendKind {
        BackendKind::AfXdp
    }

    fn open(
        &self,
        addr: SocketAddr,
        opts: &SocketOptions,
        counters: Arc<IoCounters>,
    ) -> Result<Box<dyn PacketIo>, BackendError> {
        let external = |e: XdpError| BackendError::External { backend: BackendKind::AfXdp, source: Box::new(e) };
        #[cfg(target_os = "linux")]
        return XdpIo::open(&self.0, addr, opts, counters)
            .map(|io| Box::new(io) as Box<dyn PacketIo>)
            .map_err(external);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (addr, opts, counters);
            Err(external(XdpError::Unsupported))
        }
    }
}
