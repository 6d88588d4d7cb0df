//! Same-run baselines: raw UDP over loopback, no QUIC.
//!
//! One thread sends datagrams of the same maximum payload STOQ uses (an
//! 8-byte sequence number, then the pattern `stoq-perf` uses); another
//! receives them and checks every payload byte. Two ways to move them:
//!
//! * [`udp_loopback`] (`--backend std`, the default): plain std sockets, one
//!   `send_to` and one `recv_from` per datagram. The ceiling for a backend
//!   that makes one system call per packet (the portable backend).
//! * [`udp_loopback_backend`] (`--backend NAME`): through a stoq-core
//!   [`PacketIo`] backend, filling a [`TxBatch`] as the shard does (GSO
//!   where the backend has it) and splitting received GRO super-buffers.
//!   With `linux-batch` that is the "raw UDP with GSO/GRO" ceiling.
//!
//! Neither has encryption, acknowledgements or congestion control. UDP has
//! no flow control either, so datagrams the receiver cannot keep up with
//! are dropped by the kernel and counted as lost; goodput counts only bytes
//! that arrived and verified, over the time from the first to the last
//! verified datagram.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use stoq_core::io::{BackendError, BackendKind, IoCounters, PacketIo, RxBatch, SocketOptions, TxBatch};

use crate::cpu::CpuTime;
use crate::pattern;

/// Sequence number that marks the end of the run.
pub(crate) const END: u64 = u64::MAX;
const SEED: u64 = 0x5354_4f51_5544_5021;
/// End markers sent after the data, 1 ms apart (any one ends the run).
pub(crate) const END_MARKERS: u64 = 16;
/// Socket buffers: the same as STOQ's default, so the comparison is fair.
pub(crate) const BUFFER: usize = 4 << 20;
/// Silence that ends the receiver when every end marker was lost.
pub(crate) const IDLE: Duration = Duration::from_secs(1);

/// What the baseline measured.
#[derive(Debug, Clone, Serialize)]
pub struct UdpBaseline {
    /// `std` (one system call per datagram) or the stoq-core backend's name.
    pub backend: String,
    /// UDP payload bytes per datagram.
    pub payload: usize,
    /// Datagrams handed to the kernel.
    pub datagrams_sent: u64,
    /// Datagrams received and verified.
    pub datagrams_received: u64,
    /// Pattern bytes received and verified (excluding the 8-byte sequence
    /// number in each datagram).
    pub bytes_verified: u64,
    /// From the first to the last datagram received.
    pub seconds: f64,
    /// Verified bits per second over `seconds`, in Gbit/s.
    pub goodput_gbps: f64,
    /// Process CPU time (both threads) during the run.
    pub cpu_user_s: f64,
    /// Process CPU time in the kernel during the run.
    pub cpu_sys_s: f64,
    /// Verified bytes per CPU-second.
    pub bytes_per_cpu_s: f64,
    /// CPU seconds (user + system) of the sending thread alone.
    pub cpu_sender_s: f64,
    /// CPU seconds (user + system) of the receiving thread alone.
    pub cpu_receiver_s: f64,
    /// Send system calls (end markers included).
    pub tx_syscalls: u64,
    /// Receive system calls, including those that found nothing.
    pub rx_syscalls: u64,
    /// Datagrams sent (end markers included) per send system call.
    pub datagrams_per_tx_syscall: f64,
    /// Datagrams received (end markers included) per receive system call.
    pub datagrams_per_rx_syscall: f64,
    /// Most datagrams per send the sender used (1 = no GSO).
    pub gso_segments: usize,
    /// The receiver asked for coalesced receives (GRO).
    pub gro: bool,
    /// Run-time GSO refusals (the backend fell back to single datagrams).
    pub gso_fallbacks: u64,
    /// Datagrams the kernel refused to send.
    pub tx_errors: u64,
}

impl UdpBaseline {
    /// Datagrams sent but never verified.
    pub fn datagrams_lost(&self) -> u64 {
        self.datagrams_sent.saturating_sub(self.datagrams_received)
    }
}

/// Why the baseline failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// A socket operation failed.
    #[error("UDP baseline: {what}: {source}")]
    Io {
        /// What it was doing.
        what: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// A payload did not match the pattern.
    #[error("UDP baseline: datagram {seq} corrupted: {mismatch}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// Where it differed.
        mismatch: pattern::Mismatch,
    },
    /// A datagram of another size than the run's payload (two-process
    /// runs: the ends disagree on `--max-payload`).
    #[error("UDP baseline: a datagram of {got} bytes arrived, expected {want}: give both ends the same --max-payload")]
    Size {
        /// Its size.
        got: usize,
        /// The payload size of the run.
        want: usize,
    },
    /// The payload size cannot carry the sequence number.
    #[error("UDP baseline: payload must be 16..=65507 bytes, got {0}")]
    Payload(usize),
    /// The stoq-core backend could not be opened.
    #[error("UDP baseline: {0}")]
    Backend(#[from] BackendError),
}

pub(crate) fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> BaselineError {
    move |source| BaselineError::Io { what, source }
}

fn bind(buffer: usize) -> Result<UdpSocket, BaselineError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))?;
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).map_err(io_err("bind"))?;
    Ok(s.into())
}

/// CPU time of the calling thread (zero where the kernel cannot tell).
fn thread_cpu() -> CpuTime {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        if let Ok(u) = getrusage(UsageWho::RUSAGE_THREAD) {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
            return CpuTime { user: secs(u.user_time()), sys: secs(u.system_time()) };
        }
    }
    CpuTime::default()
}

/// What the receiving thread counted.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    /// From the first to the last verified datagram.
    pub(crate) seconds: f64,
    cpu: f64,
    /// Receive calls (std path only; backends count their own).
    calls: u64,
    /// Datagrams of any kind, end markers included (std path only).
    all: u64,
}

/// Verifies received datagrams and keeps the counts.
pub(crate) struct Checker {
    body: u64,
    r: Received,
    first: Option<Instant>,
    last: Instant,
}

impl Checker {
    pub(crate) fn new(body: usize) -> Self {
        Self { body: body as u64, r: Received::default(), first: None, last: Instant::now() }
    }

    /// Checks one datagram, received at `now`; `Ok(true)` when it is an end
    /// marker.
    pub(crate) fn datagram(&mut self, d: &[u8], now: Instant) -> Result<bool, BaselineError> {
        if d.len() < 8 {
            return Ok(false);
        }
        let seq = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        if seq == END {
            return Ok(true);
        }
        pattern::verify(SEED, seq.wrapping_mul(self.body), &d[8..])
            .map_err(|mismatch| BaselineError::Corrupt { seq, mismatch })?;
        self.last = now;
        self.first.get_or_insert(now);
        self.r.datagrams += 1;
        self.r.bytes += (d.len() - 8) as u64;
        Ok(false)
    }

    pub(crate) fn finish(mut self, cpu0: CpuTime) -> Received {
        self.r.seconds = self.first.map_or(0.0, |f| self.last.duration_since(f).as_secs_f64());
        self.r.cpu = thread_cpu().since(&cpu0).total();
        self.r
    }
}

pub(crate) fn check_payload(payload: usize) -> Result<usize, BaselineError> {
    if !(16..=65_507).contains(&payload) {
        return Err(BaselineError::Payload(payload));
    }
    Ok(payload - 8)
}

/// Writes data datagram `seq` (sequence number, then pattern) into `buf`.
pub(crate) fn write_datagram(seq: u64, body: usize, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    pattern::fill(SEED, seq * body as u64, &mut buf[8..]);
}

pub(crate) fn per(n: u64, calls: u64) -> f64 {
    if calls > 0 { n as f64 / calls as f64 } else { 0.0 }
}

/// What the socket path reports (syscalls, offloads), which differs between
/// plain sockets and backends.
struct SocketFigures {
    backend: String,
    datagrams_sent: u64,
    tx_datagrams: u64,
    tx_syscalls: u64,
    rx_datagrams: u64,
    rx_syscalls: u64,
    gso_segments: usize,
    gro: bool,
    gso_fallbacks: u64,
    tx_errors: u64,
}

impl UdpBaseline {
    /// Derives the report from what both threads measured.
    fn from_run(payload: usize, io: SocketFigures, r: Received, cpu: CpuTime, cpu_sender: f64) -> Self {
        Self {
            backend: io.backend,
            payload,
            datagrams_sent: io.datagrams_sent,
            datagrams_received: r.datagrams,
            bytes_verified: r.bytes,
            seconds: r.seconds,
            goodput_gbps: crate::report::gbps(r.bytes, r.seconds),
            cpu_user_s: cpu.user,
            cpu_sys_s: cpu.sys,
            bytes_per_cpu_s: crate::report::per_cpu(r.bytes, cpu.total()),
            cpu_sender_s: cpu_sender,
            cpu_receiver_s: r.cpu,
            tx_syscalls: io.tx_syscalls,
            rx_syscalls: io.rx_syscalls,
            datagrams_per_tx_syscall: per(io.tx_datagrams, io.tx_syscalls),
            datagrams_per_rx_syscall: per(io.rx_datagrams, io.rx_syscalls),
            gso_segments: io.gso_segments,
            gro: io.gro,
            gso_fallbacks: io.gso_fallbacks,
            tx_errors: io.tx_errors,
        }
    }
}

/// Sends at least `total` pattern bytes (whole datagrams of `payload` bytes)
/// to a receiver on loopback over plain std sockets, one system call per
/// datagram, and reports what arrived intact.
pub fn udp_loopback(total: u64, payload: usize) -> Result<UdpBaseline, BaselineError> {
    let body = check_payload(payload)?;
    let rx = bind(BUFFER)?;
    let tx = bind(BUFFER)?;
    let dst = rx.local_addr().map_err(io_err("local address"))?;
    rx.set_read_timeout(Some(IDLE)).map_err(io_err("read timeout"))?;
    let datagrams = total.div_ceil(body as u64);
    let cpu0 = CpuTime::now();

    let receiver = std::thread::spawn(move || -> Result<Received, BaselineError> {
        let cpu0 = thread_cpu();
        let mut buf = vec![0u8; 65_536];
        let mut c = Checker::new(body);
        let (mut calls, mut all) = (0u64, 0u64);
        loop {
            calls += 1;
            let len = match rx.recv_from(&mut buf) {
                Ok((len, _)) => len,
                // A second of silence: the sender is done and the end marker was lost.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(io_err("recv")(e)),
            };
            all += 1;
            if c.datagram(&buf[..len], Instant::now())? {
                break;
            }
        }
        let mut r = c.finish(cpu0);
        (r.calls, r.all) = (calls, all);
        Ok(r)
    });

    let tx_cpu0 = thread_cpu();
    let mut buf = vec![0u8; payload];
    for seq in 0..datagrams {
        write_datagram(seq, body, &mut buf);
        tx.send_to(&buf, dst).map_err(io_err("send"))?;
    }
    for _ in 0..END_MARKERS {
        tx.send_to(&END.to_be_bytes(), dst).map_err(io_err("send end marker"))?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu_sender = thread_cpu().since(&tx_cpu0).total();
    let r = receiver.join().expect("receiver thread panicked")?;
    let cpu = CpuTime::now().since(&cpu0);
    let tx_syscalls = datagrams + END_MARKERS;
    let io = SocketFigures {
        backend: "std".into(),
        datagrams_sent: datagrams,
        tx_datagrams: tx_syscalls,
        tx_syscalls,
        rx_datagrams: r.all,
        rx_syscalls: r.calls,
        gso_segments: 1,
        gro: false,
        gso_fallbacks: 0,
        tx_errors: 0,
    };
    Ok(UdpBaseline::from_run(payload, io, r, cpu, cpu_sender))
}

/// Hands everything in `batch` to the backend, waiting while the socket is full.
pub(crate) fn flush(io: &mut dyn PacketIo, batch: &mut TxBatch) -> Result<(), BaselineError> {
    while !io.send(batch).map_err(io_err("send"))? {
        io.wait(Some(Duration::from_millis(100)), true).map_err(io_err("wait for writable"))?;
    }
    Ok(())
}

/// [`udp_loopback`] through a stoq-core packet backend: the sender fills a
/// [`TxBatch`] sized from the backend's capabilities (GSO sends where it has
/// them), the receiver reads [`RxBatch`]es and splits GRO super-buffers.
/// Datagrams per system call come from the backends' own [`IoCounters`].
pub fn udp_loopback_backend(kind: BackendKind, total: u64, payload: usize) -> Result<UdpBaseline, BaselineError> {
    let body = check_payload(payload)?;
    let opts = SocketOptions {
        recv_buffer: BUFFER,
        send_buffer: BUFFER,
        max_udp_payload: payload,
        ..SocketOptions::default()
    };
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let (rx_counters, tx_counters) = (Arc::new(IoCounters::default()), Arc::new(IoCounters::default()));
    let mut rx = stoq_core::io::open(kind, local, &opts, rx_counters.clone())?;
    let mut tx = stoq_core::io::open(kind, local, &opts, tx_counters.clone())?;
    let (dst, src) = (rx.local_addr(), tx.local_addr());
    let (rx_caps, tx_caps) = (rx.capabilities(), tx.capabilities());
    let datagrams = total.div_ceil(body as u64);
    let cpu0 = CpuTime::now();

    let receiver = std::thread::spawn(move || -> Result<Received, BaselineError> {
        let cpu0 = thread_cpu();
        let mut batch = RxBatch::new(rx_caps.rx_batch, rx_caps.rx_slot_size);
        let mut c = Checker::new(body);
        let mut heard = Instant::now();
        'run: loop {
            let n = rx.recv(&mut batch).map_err(io_err("recv"))?;
            if n == 0 {
                // Drained: wait for more, or stop after a silence (the
                // sender is done and every end marker was lost).
                if heard.elapsed() >= IDLE {
                    break;
                }
                rx.wait(Some(IDLE / 4), false).map_err(io_err("wait"))?;
                continue;
            }
            // One clock read a batch: its datagrams arrived together.
            heard = Instant::now();
            for i in 0..batch.len() {
                let (buf, meta) = batch.get_mut(i);
                for d in buf.chunks(meta.segment_size.max(1)) {
                    if c.datagram(d, heard)? {
                        break 'run;
                    }
                }
            }
            batch.clear();
        }
        Ok(c.finish(cpu0))
    });

    let tx_cpu0 = thread_cpu();
    let mut batch = TxBatch::new(tx_caps.tx_batch, tx_caps.max_gso_segments, payload);
    let mut seq = 0;
    while seq < datagrams {
        while seq < datagrams && !batch.is_full() {
            write_datagram(seq, body, &mut batch.slot_mut()[..payload]);
            batch.commit(payload, dst, src);
            seq += 1;
        }
        flush(tx.as_mut(), &mut batch)?;
    }
    for _ in 0..END_MARKERS {
        batch.slot_mut()[..8].copy_from_slice(&END.to_be_bytes());
        batch.commit(8, dst, src);
        flush(tx.as_mut(), &mut batch)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu_sender = thread_cpu().since(&tx_cpu0).total();
    let r = receiver.join().expect("receiver thread panicked")?;
    let cpu = CpuTime::now().since(&cpu0);
    let (t, rc) = (&*tx_counters, &*rx_counters);
    let (tx_dg, tx_sc) = (t.tx_datagrams.load(Ordering::Relaxed), t.tx_syscalls.load(Ordering::Relaxed));
    let (rx_dg, rx_sc) = (rc.rx_datagrams.load(Ordering::Relaxed), rc.rx_syscalls.load(Ordering::Relaxed));
    let io = SocketFigures {
        backend: kind.name().into(),
        // Handed to the kernel: what the backend sent, minus the end markers.
        datagrams_sent: tx_dg.saturating_sub(END_MARKERS).min(datagrams),
        tx_datagrams: tx_dg,
        tx_syscalls: tx_sc,
        rx_datagrams: rx_dg,
        rx_syscalls: rx_sc,
        gso_segments: tx_caps.max_gso_segments.min(stoq_core::io::MAX_GSO_BYTES / payload).max(1),
        gro: rx_caps.gro,
        gso_fallbacks: t.gso_fallbacks.load(Ordering::Relaxed),
        tx_errors: t.tx_errors.load(Ordering::Relaxed),
    };
    Ok(UdpBaseline::from_run(payload, io, r, cpu, cpu_sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(r: &UdpBaseline) {
        assert_eq!(r.datagrams_sent, (4u64 << 20).div_ceil(1444), "{r:?}");
        assert!(r.datagrams_received > 0 && r.datagrams_received <= r.datagrams_sent, "{r:?}");
        // Every datagram is full-sized: 1452 minus the 8-byte sequence number.
        assert_eq!(r.bytes_verified, r.datagrams_received * 1444, "{r:?}");
        assert!(r.tx_syscalls > 0 && r.rx_syscalls > 0, "{r:?}");
    }

    #[test]
    fn moves_and_verifies_real_datagrams() {
        let r = udp_loopback(4 << 20, 1452).unwrap();
        check(&r);
        assert_eq!(r.datagrams_per_tx_syscall, 1.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_batch_moves_and_verifies_real_datagrams() {
        let r = udp_loopback_backend(BackendKind::LinuxBatch, 4 << 20, 1452).unwrap();
        check(&r);
        assert_eq!(r.backend, "linux-batch");
        // Batched sends: many datagrams per sendmmsg.
        assert!(r.datagrams_per_tx_syscall > 1.0, "{r:?}");
    }

    #[test]
    fn portable_backend_moves_and_verifies_real_datagrams() {
        let r = udp_loopback_backend(BackendKind::Portable, 4 << 20, 1452).unwrap();
        check(&r);
        // One datagram per call (a call refused with "try again" counts too).
        assert!(r.datagrams_per_tx_syscall <= 1.0 && r.datagrams_per_tx_syscall > 0.5, "{r:?}");
    }

    #[test]
    fn refuses_a_payload_too_small_for_the_header() {
        assert!(matches!(udp_loopback(1, 8), Err(BaselineError::Payload(8))));
        assert!(matches!(udp_loopback_backend(BackendKind::Portable, 1, 8), Err(BaselineError::Payload(8))));
    }
}
