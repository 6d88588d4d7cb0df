//! Raw UDP between two processes, no QUIC: [`send`] floods an address with
//! datagrams of one size for a fixed time; [`receive`] takes them through
//! a stoq-core backend (AF_XDP too, through its opener), checks every byte
//! and reports how many arrived intact per second and at what CPU cost.
//! `stoq-perf baseline-udp --send` / `--receive`, driven by
//! `tools/bench-xdp-rx.sh` with the two ends in separate network
//! namespaces (an rxdrop-style comparison of receive paths).
//!
//! Datagrams are the loopback baseline's ([`crate::baseline`]): an 8-byte
//! sequence number, then the keyed pattern. The sender uses no GSO: each
//! datagram is its own transmit (up to `tx_batch` of them per `sendmmsg`),
//! so the receiver sees separate packets unless the path coalesces them
//! again (GRO; counted in [`FloodReceived::gro_buffers`]). After the flood
//! it sends end markers carrying how many datagrams it handed to the
//! kernel, so the receiver reports losses itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use stoq_core::io::{BackendKind, IoCounters, OpenBackend, PacketIo, RxBatch, SocketOptions, TxBatch};

use crate::baseline::{BUFFER, BaselineError, Checker, END, END_MARKERS, IDLE, check_payload, flush, io_err, per};
use crate::client::bind_for;
use crate::cpu::CpuTime;

/// How to run one end of a flood.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// The stoq-core backend.
    pub backend: BackendKind,
    /// Opens backends stoq-core cannot open itself (AF_XDP).
    pub opener: Option<Arc<dyn OpenBackend>>,
    /// Receiver: the address to bind. Sender: the receiver's address.
    pub addr: SocketAddr,
    /// UDP payload bytes per datagram (16..=65507); both ends must agree.
    pub payload: usize,
    /// Sender: how long to send. Receiver: the longest it runs (it
    /// normally stops at the sender's end marker).
    pub duration: Duration,
}

/// What the sender did.
#[derive(Debug, Clone, Serialize)]
pub struct FloodSent {
    /// The backend it sent through.
    pub backend: String,
    /// UDP payload bytes per datagram.
    pub payload: usize,
    /// Data datagrams the kernel took (end markers excluded).
    pub datagrams_sent: u64,
    /// How long it sent.
    pub seconds: f64,
    /// `datagrams_sent` over `seconds`.
    pub datagrams_per_s: f64,
    /// Process CPU time in user mode while sending.
    pub cpu_user_s: f64,
    /// Process CPU time in the kernel while sending (on a veth pair this
    /// includes the receiving side's kernel work that ran in the sender's
    /// context).
    pub cpu_sys_s: f64,
    /// Send system calls.
    pub tx_syscalls: u64,
    /// Datagrams per send system call.
    pub datagrams_per_tx_syscall: f64,
    /// Datagrams the kernel refused.
    pub tx_errors: u64,
}

/// What the receiver verified.
#[derive(Debug, Clone, Serialize)]
pub struct FloodReceived {
    /// The backend it received through.
    pub backend: String,
    /// UDP payload bytes per datagram.
    pub payload: usize,
    /// Datagrams received whose every byte matched the pattern; nothing
    /// else is counted.
    pub datagrams_received: u64,
    /// What the sender's end marker said it sent; `None` when no end
    /// marker arrived (the run stopped at silence or at the time limit).
    pub datagrams_sent: Option<u64>,
    /// `datagrams_sent - datagrams_received`, when the end marker arrived.
    pub datagrams_lost: Option<u64>,
    /// Pattern bytes verified (the 8-byte sequence numbers excluded).
    pub bytes_verified: u64,
    /// From the first to the last verified datagram.
    pub seconds: f64,
    /// `datagrams_received` over `seconds`.
    pub datagrams_per_s: f64,
    /// `bytes_verified` over `seconds`, Gbit/s.
    pub goodput_gbps: f64,
    /// Process CPU time in user mode, from the first datagram to the end.
    pub cpu_user_s: f64,
    /// Process CPU time in the kernel over the same span.
    pub cpu_sys_s: f64,
    /// CPU seconds (user + system) per million verified datagrams.
    pub cpu_s_per_million: f64,
    /// Receive calls (including those that found nothing).
    pub rx_calls: u64,
    /// Datagrams the backend delivered per receive call.
    pub datagrams_per_rx_call: f64,
    /// Receive buffers that held more than one datagram (GRO coalesced
    /// them); 0 means every datagram arrived on its own.
    pub gro_buffers: u64,
    /// AF_XDP: datagrams that came through the companion kernel socket
    /// instead of the AF_XDP sockets.
    pub rx_kernel_path: u64,
    /// AF_XDP: packets the kernel dropped because the receive ring was
    /// full or had no free frame (`XDP_STATISTICS`, read every 1024
    /// receive calls, so it may miss the last few).
    pub rx_dropped: u64,
    /// The receive buffer the kernel granted (AF_XDP: ring frames times MTU).
    pub recv_buffer: usize,
    /// Packets reached this process without a copy (AF_XDP zero-copy).
    pub zero_copy: bool,
}

fn socket_options(payload: usize) -> SocketOptions {
    SocketOptions { recv_buffer: BUFFER, send_buffer: BUFFER, max_udp_payload: payload, ..SocketOptions::default() }
}

fn open(o: &FloodOptions, addr: SocketAddr, counters: Arc<IoCounters>) -> Result<Box<dyn PacketIo>, BaselineError> {
    let opts = socket_options(o.payload);
    Ok(stoq_core::io::open_with(o.backend, addr, &opts, counters, o.opener.as_deref())?)
}

/// Sends datagrams of `o.payload` bytes to `o.addr` for `o.duration`, as
/// fast as the backend takes them, then the end markers.
pub fn send(o: &FloodOptions) -> Result<FloodSent, BaselineError> {
    let body = check_payload(o.payload)?;
    let counters = Arc::new(IoCounters::default());
    let mut io = open(o, bind_for(o.addr), counters.clone())?;
    let src = io.local_addr();
    let caps = io.capabilities();
    // One segment per transmit: no GSO, every datagram its own packet.
    let mut batch = TxBatch::new(caps.tx_batch, 1, o.payload);
    let cpu0 = CpuTime::now();
    let start = Instant::now();
    let mut seq = 0u64;
    while start.elapsed() < o.duration {
        while !batch.is_full() {
            crate::baseline::write_datagram(seq, body, &mut batch.slot_mut()[..o.payload]);
            batch.commit(o.payload, o.addr, src);
            seq += 1;
        }
        flush(io.as_mut(), &mut batch)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = CpuTime::now().since(&cpu0);
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (sent, calls, errors) = (load(&counters.tx_datagrams), load(&counters.tx_syscalls), load(&counters.tx_errors));
    let data = sent.saturating_sub(errors);
    let mut marker = [0u8; 16];
    marker[..8].copy_from_slice(&END.to_be_bytes());
    marker[8..].copy_from_slice(&data.to_be_bytes());
    for _ in 0..END_MARKERS {
        batch.slot_mut()[..16].copy_from_slice(&marker);
        batch.commit(16, o.addr, src);
        flush(io.as_mut(), &mut batch)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(FloodSent {
        backend: o.backend.name().into(),
        payload: o.payload,
        datagrams_sent: data,
        seconds,
        datagrams_per_s: data as f64 / seconds,
        cpu_user_s: cpu.user,
        cpu_sys_s: cpu.sys,
        tx_syscalls: calls,
        datagrams_per_tx_syscall: per(sent, calls),
        tx_errors: errors,
    })
}

/// The sent count an end marker carries, if `d` is one.
fn end_marker(d: &[u8]) -> Option<u64> {
    if d.len() == 16 && d[..8] == END.to_be_bytes() {
        Some(u64::from_be_bytes(d[8..].try_into().expect("8 bytes")))
    } else {
        None
    }
}

/// Receives on `o.addr` until the sender's end marker arrives (or a second
/// of silence after data, or `o.duration` in all), verifying every
/// datagram. `ready` is called with the bound address once the backend is
/// open, before anything is sent.
pub fn receive(o: &FloodOptions, ready: impl FnOnce(SocketAddr)) -> Result<FloodReceived, BaselineError> {
    let body = check_payload(o.payload)?;
    let counters = Arc::new(IoCounters::default());
    let mut io = open(o, o.addr, counters.clone())?;
    let caps = io.capabilities();
    let mut batch = RxBatch::new(caps.rx_batch, caps.rx_slot_size);
    let mut check = Checker::new(body);
    ready(io.local_addr());
    let deadline = Instant::now() + o.duration;
    // Set at the first datagram: CPU counts from there.
    let mut cpu0 = None;
    let (mut heard, mut sent, mut gro_buffers) = (Instant::now(), None, 0u64);
    'run: loop {
        let n = io.recv(&mut batch).map_err(io_err("recv"))?;
        if n == 0 {
            let now = Instant::now();
            if now >= deadline || (cpu0.is_some() && now.duration_since(heard) >= IDLE) {
                break;
            }
            io.wait(Some((IDLE / 4).min(deadline - now)), false).map_err(io_err("wait"))?;
            continue;
        }
        // One clock read a batch: its datagrams arrived together.
        heard = Instant::now();
        cpu0.get_or_insert_with(CpuTime::now);
        for i in 0..batch.len() {
            let (buf, meta) = batch.get_mut(i);
            gro_buffers += u64::from(meta.len > meta.segment_size);
            for d in buf.chunks(meta.segment_size.max(1)) {
                if let Some(n) = end_marker(d) {
                    sent = Some(n);
                    break 'run;
                }
                if d.len() != o.payload {
                    return Err(BaselineError::Size { got: d.len(), want: o.payload });
                }
                check.datagram(d, heard)?;
            }
        }
        batch.clear();
    }
    let cpu = cpu0.map_or_else(CpuTime::default, |c| CpuTime::now().since(&c));
    // Counts and times only: the process CPU above is the figure reported.
    let r = check.finish(CpuTime::default());
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let rx_calls = load(&counters.rx_syscalls);
    Ok(FloodReceived {
        backend: o.backend.name().into(),
        payload: o.payload,
        datagrams_received: r.datagrams,
        datagrams_sent: sent,
        datagrams_lost: sent.map(|s| s.saturating_sub(r.datagrams)),
        bytes_verified: r.bytes,
        seconds: r.seconds,
        datagrams_per_s: if r.seconds > 0.0 { r.datagrams as f64 / r.seconds } else { 0.0 },
        goodput_gbps: crate::report::gbps(r.bytes, r.seconds),
        cpu_user_s: cpu.user,
        cpu_sys_s: cpu.sys,
        cpu_s_per_million: if r.datagrams > 0 { cpu.total() / (r.datagrams as f64 / 1e6) } else { 0.0 },
        rx_calls,
        datagrams_per_rx_call: per(load(&counters.rx_datagrams), rx_calls),
        gro_buffers,
        rx_kernel_path: load(&counters.rx_kernel_path),
        rx_dropped: load(&counters.rx_dropped),
        recv_buffer: caps.recv_buffer,
        zero_copy: caps.zero_copy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(backend: BackendKind, addr: SocketAddr, payload: usize, duration: Duration) -> FloodOptions {
        FloodOptions { backend, opener: None, addr, payload, duration }
    }

    /// Two ends over loopback for half a second: what the receiver counts
    /// verified, it was sent, and the end marker tells it how much that was.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_batch_receiver_verifies_what_the_sender_sent() {
        for payload in [64, 1200] {
            let (tx, rx) = std::sync::mpsc::channel();
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let receiver = std::thread::spawn(move || {
                receive(&options(BackendKind::LinuxBatch, any, payload, Duration::from_secs(20)), |a| {
                    tx.send(a).unwrap()
                })
            });
            let addr = rx.recv().unwrap();
            let s = send(&options(BackendKind::LinuxBatch, addr, payload, Duration::from_millis(500))).unwrap();
            let r = receiver.join().unwrap().unwrap();
            assert!(s.datagrams_sent > 1000 && s.seconds >= 0.5, "{s:?}");
            assert!(s.datagrams_per_tx_syscall > 1.0, "sendmmsg batches: {s:?}");
            assert_eq!(r.datagrams_sent, Some(s.datagrams_sent), "the end marker carries the count: {r:?}");
            assert!(r.datagrams_received > 0 && r.datagrams_received <= s.datagrams_sent, "{r:?}");
            assert_eq!(r.datagrams_lost, Some(s.datagrams_sent - r.datagrams_received));
            assert_eq!(r.bytes_verified, r.datagrams_received * (payload as u64 - 8));
            assert!(r.datagrams_per_s > 0.0 && r.cpu_s_per_million > 0.0, "{r:?}");
        }
    }

    #[test]
    fn a_datagram_of_another_size_is_an_error() {
        let (tx, rx) = std::sync::mpsc::channel();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let receiver = std::thread::spawn(move || {
            receive(&options(BackendKind::Portable, any, 64, Duration::from_secs(20)), |a| tx.send(a).unwrap())
        });
        let addr = rx.recv().unwrap();
        let s = send(&options(BackendKind::Portable, addr, 100, Duration::from_millis(50))).unwrap();
        assert!(s.datagrams_sent > 0);
        let e = receiver.join().unwrap().unwrap_err();
        assert!(matches!(e, BaselineError::Size { got: 100, want: 64 }), "{e}");
    }

    #[test]
    fn end_markers_carry_the_count() {
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&END.to_be_bytes());
        m[8..].copy_from_slice(&42u64.to_be_bytes());
        assert_eq!(end_marker(&m), Some(42));
        assert_eq!(end_marker(&m[..8]), None, "the loopback baseline's 8-byte marker is not one");
        m[0] = 0;
        assert_eq!(end_marker(&m), None);
    }
}
