//! The packet I/O boundary: batched receive and send of UDP datagrams.
//!
//! A shard drives exactly one [`PacketIo`]. Backends differ in how they reach
//! the wire but all move *batches* and state what they can do as plain data
//! in [`IoCapabilities`], so the shard can size GSO sends and split GRO
//! buffers without knowing which backend it has:
//!
//! | [`BackendKind`] | how | where |
//! | --- | --- | --- |
//! | `portable` | mio readiness, one system call per datagram | any Unix, unprivileged |
//! | `linux-batch` | `sendmmsg`/`recvmmsg`, UDP GSO/GRO, ECN, packet info, `SO_TXTIME` ([`linux`]) | Linux 4.18+ |
//! | `io_uring` | multishot receive into a provided-buffer ring, linked `sendmsg` chains ([`linux`]) | Linux 6.0+, io_uring allowed |
//! | `af_xdp` | AF_XDP sockets fed by STOQ's own XDP program, in the `stoq-xdp` crate ([`OpenBackend`]) | Linux 5.9+, CAP_NET_ADMIN + CAP_BPF, an Ethernet interface |
//!
//! Each is selected by name and fails to open with a [`BackendError`] that
//! says why and what to use instead; nothing falls back silently. The
//! AF_XDP backend lives in its own crate (it needs `unsafe` ring and UMEM
//! code, a BPF loader and privileges this crate never asks for); an
//! endpoint opens it through the [`OpenBackend`] in its configuration.

mod batch;
#[cfg(target_os = "linux")]
pub mod linux;
mod portable;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use batch::{MAX_GSO_BYTES, RxBatch, RxMeta, Transmit, TxBatch};
pub use portable::PortableIo;

/// What a backend can do, as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct IoCapabilities {
    /// Most segments one transmit may carry (1 = no GSO).
    pub max_gso_segments: usize,
    /// Receive may return coalesced super-buffers (GRO).
    pub gro: bool,
    /// ECN codepoints are read on receive and written on send.
    pub ecn: bool,
    /// The kernel paces sends (SO_TXTIME); otherwise the shard must.
    pub kernel_pacing: bool,
    /// Receive slots per batch.
    pub rx_batch: usize,
    /// Transmits per send batch.
    pub tx_batch: usize,
    /// Size of each receive slot.
    pub rx_slot_size: usize,
    /// Receive buffer the kernel granted, in bytes (may be less than asked).
    pub recv_buffer: usize,
    /// Send buffer the kernel granted, in bytes.
    pub send_buffer: usize,
    /// Packets move between the NIC and this process without a copy
    /// (AF_XDP zero-copy mode); false for every socket backend and for
    /// AF_XDP in copy mode.
    pub zero_copy: bool,
}

/// Interrupts a backend blocked in [`PacketIo::wait`] from another thread.
pub trait Wake: Send + Sync {
    /// Makes the shard's current or next `wait` return promptly.
    fn wake(&self) -> io::Result<()>;
}

/// A batched UDP datagram backend.
pub trait PacketIo: Send {
    /// The backend's name as accepted by [`BackendKind::from_name`].
    fn kind(&self) -> BackendKind;
    /// What this backend can do.
    fn capabilities(&self) -> IoCapabilities;
    /// The bound local address.
    fn local_addr(&self) -> SocketAddr;
    /// A handle other threads use to wake this backend.
    fn waker(&self) -> Arc<dyn Wake>;
    /// Blocks until datagrams may be readable, a wake arrives, `timeout`
    /// passes, or (with `want_writable`) the socket can take more sends.
    fn wait(&mut self, timeout: Option<Duration>, want_writable: bool) -> io::Result<()>;
    /// Receives what is queued into `batch` without blocking. `Ok(0)` means
    /// nothing was waiting and the socket is drained.
    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize>;
    /// Sends pending transmits from `batch` without blocking, advancing it
    /// past everything handed to the kernel or dropped with an error that
    /// retrying cannot fix. Returns `Ok(false)` when the socket is full and
    /// transmits remain (wait for writability).
    fn send(&mut self, batch: &mut TxBatch) -> io::Result<bool>;
}

/// The packet backends STOQ knows, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// Readiness-driven UDP socket on mio: unprivileged, any Unix.
    #[default]
    Portable,
    /// `sendmmsg`/`recvmmsg` with UDP GSO/GRO (Linux).
    LinuxBatch,
    /// io_uring: multishot receive into a provided-buffer ring, batched
    /// sends (Linux 6.0+).
    IoUring,
    /// AF_XDP: frames to and from the NIC's queues through STOQ's own XDP
    /// program, bypassing the kernel's UDP stack (the `stoq-xdp` crate).
    AfXdp,
}

impl BackendKind {
    /// Every backend, in order of preference from simplest to fastest.
    pub const ALL: &'static [BackendKind] =
        &[BackendKind::Portable, BackendKind::LinuxBatch, BackendKind::IoUring, BackendKind::AfXdp];

    /// The backends built on a kernel UDP socket: they bind any local
    /// address, loopback included, and [`open`] opens them without help.
    pub const SOCKETS: &'static [BackendKind] = &[BackendKind::Portable, BackendKind::LinuxBatch, BackendKind::IoUring];

    /// The name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Portable => "portable",
            BackendKind::LinuxBatch => "linux-batch",
            BackendKind::IoUring => "io_uring",
            BackendKind::AfXdp => "af_xdp",
        }
    }

    /// Parses a backend name, listing the known ones when it is unknown.
    pub fn from_name(name: &str) -> Result<Self, UnknownBackend> {
        Self::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| UnknownBackend(name.to_owned()))
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// A backend name that STOQ does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}; available backends: {list}", list = backend_names())]
pub struct UnknownBackend(pub String);

fn backend_names() -> String {
    BackendKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The UDP socket could not be created or bound.
    #[error("cannot bind UDP socket to {addr}: {source} (is the port in use, or the address not on this host?)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The backend cannot run on this host.
    #[error("the {backend} backend cannot run here: {reason}")]
    Unsupported {
        /// Which backend.
        backend: BackendKind,
        /// Why, and what to use instead.
        reason: &'static str,
    },
    /// Another setup step failed.
    #[error("{backend} backend setup failed while {step}: {source}")]
    Setup {
        /// Which backend.
        backend: BackendKind,
        /// What it was doing.
        step: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// A backend from another crate ([`OpenBackend`]) could not open; its
    /// own error says why and what to do.
    #[error("the {backend} backend cannot open: {source}")]
    External {
        /// Which backend.
        backend: BackendKind,
        /// The backend's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Opens a backend that lives in another crate (AF_XDP, in `stoq-xdp`),
/// so that this crate needs neither its code nor its privileges. Put one in
/// [`EndpointConfig::opener`](crate::EndpointConfig::opener); the endpoint
/// uses it when its backend is [`kind`](Self::kind).
pub trait OpenBackend: Send + Sync + std::fmt::Debug {
    /// The backend this opens.
    fn kind(&self) -> BackendKind;
    /// Opens it bound to `addr` (the port STOQ serves or sends from).
    fn open(
        &self,
        addr: SocketAddr,
        opts: &SocketOptions,
        counters: Arc<IoCounters>,
    ) -> Result<Box<dyn PacketIo>, BackendError>;
}

/// Socket-level settings a backend applies when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// Requested `SO_RCVBUF` in bytes.
    pub recv_buffer: usize,
    /// Requested `SO_SNDBUF` in bytes.
    pub send_buffer: usize,
    /// Largest UDP payload this endpoint sends.
    pub max_udp_payload: usize,
    /// Let the kernel pace: each send carries its departure time
    /// (`SO_TXTIME`). Takes effect only where the egress interface has the
    /// `fq` qdisc; elsewhere leave it off and the shard paces with its own
    /// timer. Backends without kernel pacing ignore it.
    pub kernel_pacing: bool,
    /// Datagrams (or GSO/GRO super-buffers) per receive and send call,
    /// 1 to [`MAX_BATCH`](crate::profile::MAX_BATCH). The portable backend
    /// moves one datagram per system call but stops after this many.
    pub batch: usize,
}

impl SocketOptions {
    /// The batch size a backend uses: `batch` within 1..=MAX_BATCH.
    pub fn batch(&self) -> usize {
        self.batch.clamp(1, crate::profile::MAX_BATCH)
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self { recv_buffer: 4 << 20, send_buffer: 4 << 20, max_udp_payload: 1452, kernel_pacing: false, batch: 32 }
    }
}

/// Opens a backend of the given kind bound to `addr`, through `opener`
/// when it opens that kind.
pub fn open_with(
    kind: BackendKind,
    addr: SocketAddr,
    opts: &SocketOptions,
    counters: Arc<IoCounters>,
    opener: Option<&dyn OpenBackend>,
) -> Result<Box<dyn PacketIo>, BackendError> {
    match opener {
        Some(o) if o.kind() == kind => o.open(addr, opts, counters),
        _ => open(kind, addr, opts, counters),
    }
}

/// Opens a socket backend ([`BackendKind::SOCKETS`]) bound to `addr`.
/// [`BackendKind::AfXdp`] needs [`open_with`] and the opener from
/// `stoq-xdp`.
pub fn open(
    kind: BackendKind,
    addr: SocketAddr,
    opts: &SocketOptions,
    counters: Arc<IoCounters>,
) -> Result<Box<dyn PacketIo>, BackendError> {
    match kind {
        BackendKind::AfXdp => Err(BackendError::Unsupported {
            backend: kind,
            reason: "AF_XDP is provided by the stoq-xdp crate and this program was built without it \
                     (stoq-node and stoq-perf include it); use --backend io_uring",
        }),
        BackendKind::Portable => Ok(Box::new(PortableIo::bind(addr, opts, counters)?)),
        #[cfg(target_os = "linux")]
        BackendKind::LinuxBatch => Ok(Box::new(linux::LinuxBatchIo::bind(addr, opts, counters)?)),
        #[cfg(target_os = "linux")]
        BackendKind::IoUring => Ok(Box::new(linux::UringIo::bind(addr, opts, counters)?)),
        #[cfg(not(target_os = "linux"))]
        BackendKind::LinuxBatch | BackendKind::IoUring => {
            Err(BackendError::Unsupported { backend: kind, reason: "it needs Linux; use --backend portable" })
        }
    }
}

/// Counters a backend keeps, shared with the endpoint for reporting. Updated
/// once per batch, not per packet.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Datagrams received (GRO segments counted individually).
    pub rx_datagrams: AtomicU64,
    /// Bytes received.
    pub rx_bytes: AtomicU64,
    /// Receive system calls made (including the one that found nothing).
    pub rx_syscalls: AtomicU64,
    /// Datagrams sent (GSO segments counted individually).
    pub tx_datagrams: AtomicU64,
    /// Bytes sent.
    pub tx_bytes: AtomicU64,
    /// Send system calls made.
    pub tx_syscalls: AtomicU64,
    /// Datagrams the kernel refused with an error other than "try again".
    pub tx_errors: AtomicU64,
    /// Receive errors other than "try again".
    pub rx_errors: AtomicU64,
    /// Times a GSO send was refused at run time and the socket fell back to
    /// one datagram per packet (the datagrams were resent, not lost).
    pub gso_fallbacks: AtomicU64,
    /// Datagrams received with the ECN Congestion Experienced mark.
    pub rx_ecn_ce: AtomicU64,
    /// Times a receive buffer pool ran dry (io_uring's provided-buffer
    /// ring); receiving resumed from the socket buffer.
    pub rx_buffers_exhausted: AtomicU64,
    /// Datagrams that reached an AF_XDP backend through its companion
    /// kernel UDP socket (the XDP program passed them: fragments, a queue
    /// without an AF_XDP socket).
    pub rx_kernel_path: AtomicU64,
    /// Datagrams an AF_XDP backend sent through its companion kernel
    /// socket (next hop not resolved yet, or the route leaves by another
    /// interface).
    pub tx_kernel_path: AtomicU64,
    /// Packets the kernel dropped before the backend could read them
    /// (AF_XDP: receive ring full or no free fill buffer, from
    /// `XDP_STATISTICS`).
    pub rx_dropped: AtomicU64,
}

impl IoCounters {
    /// Adds `n` to one counter (backends call it once per batch).
    pub fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
