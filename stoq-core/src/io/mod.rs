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
//!
//! Each is selected by name and fails to open with a [`BackendError`] that
//! says why and what to use instead; nothing falls back silently.

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
}

impl BackendKind {
    /// Every backend, in order of preference from simplest to fastest.
    pub const ALL: &'static [BackendKind] = &[BackendKind::Portable, BackendKind::LinuxBatch, BackendKind::IoUring];

    /// The name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Portable => "portable",
            BackendKind::LinuxBatch => "linux-batch",
            BackendKind::IoUring => "io_uring",
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

/// Opens a backend of the given kind bound to `addr`.
pub fn open(
    kind: BackendKind,
    addr: SocketAddr,
    opts: &SocketOptions,
    counters: Arc<IoCounters>,
) -> Result<Box<dyn PacketIo>, BackendError> {
    match kind {
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
}

impl IoCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
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
