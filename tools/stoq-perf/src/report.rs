//! Measurements: per-interval samples and the final report, as text lines and
//! as JSON. Every figure is read from a counter that real traffic moved
//! (verified byte counts, the endpoint's datagram counters, quiche's loss and
//! RTT, the kernel's CPU accounting); nothing here is estimated.

use std::time::{Duration, Instant};

use serde::Serialize;
use stoq_core::{Connection, Endpoint};

use crate::cpu::CpuTime;

/// One reporting interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Interval {
    /// Seconds since the transfer started, at the interval's start.
    pub start_s: f64,
    /// Seconds since the transfer started, at the interval's end.
    pub end_s: f64,
    /// Payload bytes in the interval, both directions (verified downloads,
    /// uploads handed to the stream).
    pub bytes: u64,
    /// `bytes` as Gbit/s.
    pub goodput_gbps: f64,
    /// UDP datagrams the client endpoint sent.
    pub datagrams_sent: u64,
    /// UDP datagrams the client endpoint received.
    pub datagrams_received: u64,
    /// QUIC packets declared lost, all connections.
    pub packets_lost: u64,
    /// Mean smoothed RTT of the connections, milliseconds.
    pub rtt_ms: f64,
    /// Process CPU seconds (user + system).
    pub cpu_s: f64,
    /// `bytes` per CPU-second.
    pub bytes_per_cpu_s: f64,
}

/// The outcome of a verified client run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// `upload`, `download` or `bidir`.
    pub mode: String,
    /// Packet backend of the client endpoint.
    pub backend: String,
    /// The client's tier when it ran with a probed profile (`--tier`).
    pub tier: Option<String>,
    /// QUIC connections used.
    pub connections: usize,
    /// Stream units per connection (each one stream per direction).
    pub streams: usize,
    /// Largest UDP payload.
    pub max_payload: usize,
    /// Verified payload bytes, both directions.
    pub bytes: u64,
    /// Verified upload bytes (confirmed by the server).
    pub bytes_upload: u64,
    /// Verified download bytes (checked by the client).
    pub bytes_download: u64,
    /// Wall-clock seconds from the first stream opening to the last result.
    pub seconds: f64,
    /// `bytes` as Gbit/s over `seconds`.
    pub goodput_gbps: f64,
    /// UDP datagrams the client endpoint sent.
    pub datagrams_sent: u64,
    /// UDP datagrams the client endpoint received.
    pub datagrams_received: u64,
    /// Receive system calls the client endpoint made (including those that
    /// found nothing): `datagrams_received / rx_syscalls` is datagrams per call.
    pub rx_syscalls: u64,
    /// Send system calls the client endpoint made.
    pub tx_syscalls: u64,
    /// Run-time GSO refusals on the client endpoint (it fell back to one
    /// datagram per packet; nothing was lost).
    pub gso_fallbacks: u64,
    /// Settings the client's per-connection adapters raised (window or
    /// pacing cap) during the run; 0 without a profile.
    pub adapter_ups: u64,
    /// Settings they lowered.
    pub adapter_downs: u64,
    /// AF_XDP only: datagrams the client received through its companion
    /// kernel socket rather than its AF_XDP sockets.
    pub rx_kernel_path: u64,
    /// AF_XDP only: datagrams the client sent through its companion kernel
    /// socket (next hop not resolved yet, or another interface).
    pub tx_kernel_path: u64,
    /// QUIC packets declared lost, all connections.
    pub packets_lost: u64,
    /// Mean smoothed RTT of the connections at the end, milliseconds.
    pub rtt_ms: f64,
    /// Process user CPU seconds.
    pub cpu_user_s: f64,
    /// Process system CPU seconds.
    pub cpu_sys_s: f64,
    /// `bytes` per CPU-second (user + system).
    pub bytes_per_cpu_s: f64,
    /// Per-interval samples.
    pub intervals: Vec<Interval>,
    /// Every byte was verified by its receiver (a report only exists when so).
    pub verified: bool,
    /// The `GLIBC_TUNABLES` environment variable, if set.
    pub glibc_tunables: Option<String>,
}

/// Bits per second as Gbit/s.
pub fn gbps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 { bytes as f64 * 8.0 / secs / 1e9 } else { 0.0 }
}

/// Bytes per CPU-second (0 when no CPU time was measured).
pub fn per_cpu(bytes: u64, cpu: f64) -> f64 {
    if cpu > 0.0 { bytes as f64 / cpu } else { 0.0 }
}

/// Human form of a bytes-per-CPU-second figure.
pub fn fmt_per_cpu(v: f64) -> String {
    format!("{:.2} GB/cpu-s", v / 1e9)
}

impl Interval {
    /// One line of text.
    pub fn line(&self) -> String {
        format!(
            "[{:6.2}-{:6.2} s] {:7.3} Gbit/s  dgrams tx {:>8} rx {:>8}  lost {:>5}  rtt {:7.3} ms  cpu {:5.2} s  {}",
            self.start_s,
            self.end_s,
            self.goodput_gbps,
            self.datagrams_sent,
            self.datagrams_received,
            self.packets_lost,
            self.rtt_ms,
            self.cpu_s,
            fmt_per_cpu(self.bytes_per_cpu_s)
        )
    }
}

impl Report {
    /// The total line, in the same shape as the interval lines.
    pub fn total_line(&self) -> String {
        format!(
            "[{:6.2}-{:6.2} s] {:7.3} Gbit/s  dgrams tx {:>8} rx {:>8}  lost {:>5}  rtt {:7.3} ms  cpu {:5.2} s  {}  TOTAL {} bytes verified ({} up, {} down)",
            0.0,
            self.seconds,
            self.goodput_gbps,
            self.datagrams_sent,
            self.datagrams_received,
            self.packets_lost,
            self.rtt_ms,
            self.cpu_user_s + self.cpu_sys_s,
            fmt_per_cpu(self.bytes_per_cpu_s),
            self.bytes,
            self.bytes_upload,
            self.bytes_download,
        )
    }

    /// The report as a JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode report: {e}\"}}"))
    }
}

/// Counter readings at one instant.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    bytes: u64,
    tx: u64,
    rx: u64,
    tx_syscalls: u64,
    rx_syscalls: u64,
    gso_fallbacks: u64,
    adapter: (u64, u64),
    /// AF_XDP datagrams through the companion kernel socket (rx, tx).
    kernel_path: (u64, u64),
    lost: u64,
    cpu: CpuTime,
}

impl Snapshot {
    fn empty(bytes: u64) -> Self {
        Self {
            at: Instant::now(),
            bytes,
            tx: 0,
            rx: 0,
            tx_syscalls: 0,
            rx_syscalls: 0,
            gso_fallbacks: 0,
            adapter: (0, 0),
            kernel_path: (0, 0),
            lost: 0,
            cpu: CpuTime::default(),
        }
    }
}

/// Takes interval samples from the live counters.
pub struct Sampler {
    start: Instant,
    first: Snapshot,
    last: Snapshot,
    /// Last known lost-packet count per connection, kept when one closes.
    lost: Vec<u64>,
    rtt: Vec<Duration>,
    intervals: Vec<Interval>,
}

impl Sampler {
    /// Starts sampling with `bytes` moved so far.
    pub fn start(endpoint: &Endpoint, conns: &[Connection], bytes: u64) -> Self {
        let mut s = Self {
            start: Instant::now(),
            first: Snapshot::empty(bytes),
            last: Snapshot::empty(bytes),
            lost: vec![0; conns.len()],
            rtt: vec![Duration::ZERO; conns.len()],
            intervals: Vec::new(),
        };
        s.first = s.snapshot(endpoint, conns, bytes);
        s.last = s.first.clone();
        s.start = s.first.at;
        s
    }

    fn snapshot(&mut self, endpoint: &Endpoint, conns: &[Connection], bytes: u64) -> Snapshot {
        for (i, c) in conns.iter().enumerate() {
            if let Ok(st) = c.stats() {
                self.lost[i] = st.lost_packets as u64;
                self.rtt[i] = st.rtt;
            }
        }
        let ep = endpoint.stats();
        Snapshot {
            at: Instant::now(),
            bytes,
            tx: ep.tx_datagrams,
            rx: ep.rx_datagrams,
            tx_syscalls: ep.tx_syscalls,
            rx_syscalls: ep.rx_syscalls,
            gso_fallbacks: ep.gso_fallbacks,
            adapter: (ep.adapter_ups, ep.adapter_downs),
            kernel_path: (ep.rx_kernel_path, ep.tx_kernel_path),
            lost: self.lost.iter().sum(),
            cpu: CpuTime::now(),
        }
    }

    fn mean_rtt_ms(&self) -> f64 {
        if self.rtt.is_empty() {
            return 0.0;
        }
        self.rtt.iter().map(|d| d.as_secs_f64() * 1e3).sum::<f64>() / self.rtt.len() as f64
    }

    /// Closes the current interval at `bytes` moved so far and returns it.
    pub fn sample(&mut self, endpoint: &Endpoint, conns: &[Connection], bytes: u64) -> Interval {
        let now = self.snapshot(endpoint, conns, bytes);
        let prev = std::mem::replace(&mut self.last, now.clone());
        let secs = now.at.duration_since(prev.at).as_secs_f64();
        let moved = now.bytes.saturating_sub(prev.bytes);
        let cpu = now.cpu.since(&prev.cpu).total();
        let iv = Interval {
            start_s: prev.at.duration_since(self.start).as_secs_f64(),
            end_s: now.at.duration_since(self.start).as_secs_f64(),
            bytes: moved,
            goodput_gbps: gbps(moved, secs),
            datagrams_sent: now.tx - prev.tx,
            datagrams_received: now.rx - prev.rx,
            packets_lost: now.lost.saturating_sub(prev.lost),
            rtt_ms: self.mean_rtt_ms(),
            cpu_s: cpu,
            bytes_per_cpu_s: per_cpu(moved, cpu),
        };
        self.intervals.push(iv.clone());
        iv
    }

    /// The final report; `bytes_upload` and `bytes_download` are the
    /// receivers' verified counts. Call after the last [`sample`](Self::sample).
    pub fn finish(self, head: ReportHead, bytes_upload: u64, bytes_download: u64) -> Report {
        let (first, last) = (&self.first, &self.last);
        let seconds = last.at.duration_since(first.at).as_secs_f64();
        let cpu = last.cpu.since(&first.cpu);
        let bytes = bytes_upload + bytes_download;
        Report {
            mode: head.mode,
            backend: head.backend,
            tier: head.tier,
            connections: head.connections,
            streams: head.streams,
            max_payload: head.max_payload,
            bytes,
            bytes_upload,
            bytes_download,
            seconds,
            goodput_gbps: gbps(bytes, seconds),
            datagrams_sent: last.tx - first.tx,
            datagrams_received: last.rx - first.rx,
            rx_syscalls: last.rx_syscalls - first.rx_syscalls,
            tx_syscalls: last.tx_syscalls - first.tx_syscalls,
            gso_fallbacks: last.gso_fallbacks - first.gso_fallbacks,
            adapter_ups: last.adapter.0 - first.adapter.0,
            adapter_downs: last.adapter.1 - first.adapter.1,
            rx_kernel_path: last.kernel_path.0 - first.kernel_path.0,
            tx_kernel_path: last.kernel_path.1 - first.kernel_path.1,
            packets_lost: last.lost.saturating_sub(first.lost),
            rtt_ms: self.mean_rtt_ms(),
            cpu_user_s: cpu.user,
            cpu_sys_s: cpu.sys,
            bytes_per_cpu_s: per_cpu(bytes, cpu.total()),
            intervals: self.intervals,
            verified: true,
            glibc_tunables: std::env::var("GLIBC_TUNABLES").ok(),
        }
    }
}

/// The descriptive fields of a [`Report`].
#[derive(Debug, Clone)]
pub struct ReportHead {
    /// `upload`, `download` or `bidir`.
    pub mode: String,
    /// Backend name.
    pub backend: String,
    /// Tier of the profile in use, if any.
    pub tier: Option<String>,
    /// Connections.
    pub connections: usize,
    /// Streams per connection.
    pub streams: usize,
    /// Largest UDP payload.
    pub max_payload: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbps_is_bits_over_seconds() {
        assert_eq!(gbps(125_000_000, 1.0), 1.0);
        assert_eq!(gbps(1, 0.0), 0.0);
    }
}
