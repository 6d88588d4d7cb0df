//! Same-run baseline: raw UDP over loopback, no QUIC.
//!
//! One thread sends datagrams of the same maximum payload STOQ uses, one
//! `send_to` per datagram; another receives them, one `recv_from` per
//! datagram, and checks every payload byte against the same pattern
//! `stoq-perf` uses. That is the ceiling for any backend that makes one
//! system call per packet (the portable backend): no encryption, no
//! acknowledgements, no congestion control. UDP has no flow control, so
//! datagrams the receiver cannot keep up with are dropped by the kernel and
//! counted as lost; goodput counts only bytes that arrived and verified.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::CpuTime;
use crate::pattern;

/// Sequence number that marks the end of the run.
const END: u64 = u64::MAX;
const SEED: u64 = 0x5354_4f51_5544_5021;

/// What the baseline measured.
#[derive(Debug, Clone, Serialize)]
pub struct UdpBaseline {
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
    /// The payload size cannot carry the sequence number.
    #[error("UDP baseline: payload must be 16..=65507 bytes, got {0}")]
    Payload(usize),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> BaselineError {
    move |source| BaselineError::Io { what, source }
}

fn bind(buffer: usize) -> Result<UdpSocket, BaselineError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))?;
    // Same socket buffers as STOQ's default, so the comparison is fair.
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).map_err(io_err("bind"))?;
    Ok(s.into())
}

/// Sends at least `total` pattern bytes (whole datagrams of `payload` bytes)
/// to a receiver on loopback and reports what arrived intact.
pub fn udp_loopback(total: u64, payload: usize) -> Result<UdpBaseline, BaselineError> {
    if !(16..=65_507).contains(&payload) {
        return Err(BaselineError::Payload(payload));
    }
    let rx = bind(4 << 20)?;
    let tx = bind(4 << 20)?;
    let dst = rx.local_addr().map_err(io_err("local address"))?;
    rx.set_read_timeout(Some(Duration::from_secs(1))).map_err(io_err("read timeout"))?;
    let body = payload - 8;
    let datagrams = total.div_ceil(body as u64);
    let cpu0 = CpuTime::now();

    let receiver = std::thread::spawn(move || -> Result<(u64, u64, f64), BaselineError> {
        let mut buf = vec![0u8; 65_536];
        let (mut n, mut bytes, mut first, mut last) = (0u64, 0u64, None::<Instant>, Instant::now());
        loop {
            let len = match rx.recv_from(&mut buf) {
                Ok((len, _)) => len,
                // A second of silence: the sender is done and the end marker was lost.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(io_err("recv")(e)),
            };
            if len < 8 {
                continue;
            }
            let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
            if seq == END {
                break;
            }
            pattern::verify(SEED, seq * body as u64, &buf[8..len])
                .map_err(|mismatch| BaselineError::Corrupt { seq, mismatch })?;
            last = Instant::now();
            first.get_or_insert(last);
            n += 1;
            bytes += (len - 8) as u64;
        }
        let secs = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
        Ok((n, bytes, secs))
    });

    let mut buf = vec![0u8; payload];
    for seq in 0..datagrams {
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        pattern::fill(SEED, seq * body as u64, &mut buf[8..]);
        tx.send_to(&buf, dst).map_err(io_err("send"))?;
    }
    for _ in 0..16 {
        tx.send_to(&END.to_be_bytes(), dst).map_err(io_err("send end marker"))?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let (received, bytes, seconds) = receiver.join().expect("receiver thread panicked")?;
    let cpu = CpuTime::now().since(&cpu0);
    Ok(UdpBaseline {
        payload,
        datagrams_sent: datagrams,
        datagrams_received: received,
        bytes_verified: bytes,
        seconds,
        goodput_gbps: if seconds > 0.0 { bytes as f64 * 8.0 / seconds / 1e9 } else { 0.0 },
        cpu_user_s: cpu.user,
        cpu_sys_s: cpu.sys,
        bytes_per_cpu_s: if cpu.total() > 0.0 { bytes as f64 / cpu.total() } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_verifies_real_datagrams() {
        let r = udp_loopback(4 << 20, 1452).unwrap();
        assert_eq!(r.datagrams_sent, (4u64 << 20).div_ceil(1444));
        assert!(r.datagrams_received > 0 && r.datagrams_received <= r.datagrams_sent, "{r:?}");
        // Every datagram is full-sized: 1452 minus the 8-byte sequence number.
        assert_eq!(r.bytes_verified, r.datagrams_received * 1444);
    }

    #[test]
    fn refuses_a_payload_too_small_for_the_header() {
        assert!(matches!(udp_loopback(1, 8), Err(BaselineError::Payload(8))));
    }
}
