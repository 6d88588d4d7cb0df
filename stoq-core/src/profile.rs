//! Adaptive throughput tiers and the settings profile of each.
//!
//! `hw-detect` measures the host and maps it to a [`Tier`] from the
//! effective link rate (the smaller of link speed and egress shaping); this
//! module turns a tier into a [`Profile`], the concrete settings a STOQ
//! endpoint runs with, and applies it to an [`EndpointConfig`]. Both steps
//! are pure functions, so every tier boundary is tested without hardware.
//!
//! Sizing rules (the reasons are in the comments of [`Profile::for_tier`]):
//! flow-control windows come from the bandwidth-delay product of the rate and
//! the tier's design round-trip time; socket buffers hold 16 ms at that rate;
//! the maximum UDP payload is the MTU less IPv6 and UDP headers. At run time
//! each connection's adapter moves its window and pacing within the tier's
//! [`Adaptation`] bounds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{Adaptation, CongestionControl, EndpointConfig};
use crate::io::BackendKind;

/// Throughput tier, by effective link rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "lowercase"))]
pub enum Tier {
    /// Below 100 Mbit/s.
    Slow,
    /// 100 Mbit/s to 1 Gbit/s.
    Home,
    /// 1 to 2.5 Gbit/s.
    Standard,
    /// 2.5 to 10 Gbit/s.
    Performance,
    /// 10 to 25 Gbit/s.
    Enterprise,
    /// 25 Gbit/s and above.
    DataCenter,
}

const MBIT: u64 = 1_000_000;
const GBIT: u64 = 1_000_000_000;

impl Tier {
    /// Every tier, slowest first.
    pub const ALL: [Tier; 6] =
        [Tier::Slow, Tier::Home, Tier::Standard, Tier::Performance, Tier::Enterprise, Tier::DataCenter];

    /// The tier of an effective link rate in bit/s.
    pub fn for_rate(bps: u64) -> Tier {
        Tier::ALL.into_iter().find(|t| t.rate_range().1.is_none_or(|hi| bps < hi)).unwrap_or(Tier::DataCenter)
    }

    /// The tier's rate range in bit/s: `lo <= rate < hi` (`hi` is `None` for
    /// the top tier).
    pub fn rate_range(self) -> (u64, Option<u64>) {
        match self {
            Tier::Slow => (0, Some(100 * MBIT)),
            Tier::Home => (100 * MBIT, Some(GBIT)),
            Tier::Standard => (GBIT, Some(2_500 * MBIT)),
            Tier::Performance => (2_500 * MBIT, Some(10 * GBIT)),
            Tier::Enterprise => (10 * GBIT, Some(25 * GBIT)),
            Tier::DataCenter => (25 * GBIT, None),
        }
    }

    /// The rate a profile is sized for when the link rate is unknown: the
    /// tier's upper bound (100 Gbit/s for the top tier).
    pub fn nominal_rate(self) -> u64 {
        self.rate_range().1.unwrap_or(100 * GBIT)
    }

    /// The round-trip time windows are sized for. Slower tiers are usually
    /// access links far from their peers; faster ones are LANs and data
    /// centres. The adapter corrects per connection from measured RTT.
    pub fn design_rtt(self) -> Duration {
        Duration::from_millis(match self {
            Tier::Slow => 200,
            Tier::Home => 100,
            Tier::Standard => 50,
            Tier::Performance => 20,
            Tier::Enterprise => 10,
            Tier::DataCenter => 5,
        })
    }

    /// The tier's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Slow => "slow",
            Tier::Home => "home",
            Tier::Standard => "standard",
            Tier::Performance => "performance",
            Tier::Enterprise => "enterprise",
            Tier::DataCenter => "datacenter",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tier name that is not one of [`Tier::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown tier {0:?}: use slow, home, standard, performance, enterprise or datacenter")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s)).ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

/// What the profile is sized from, as measured by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileInputs {
    /// Effective link rate in bit/s, if known.
    pub rate_bps: Option<u64>,
    /// The interface's MTU, if known.
    pub mtu: Option<u32>,
    /// CPUs available to shards (NUMA-local to the NIC where known).
    pub cpus: usize,
    /// The NIC's receive queues, if known.
    pub rx_queues: Option<u32>,
    /// The interface's root qdisc is `fq`, so the kernel can pace
    /// (`SO_TXTIME` departure times).
    pub fq_qdisc: bool,
}

/// The settings an endpoint runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Profile {
    /// The tier it was made for.
    pub tier: Tier,
    /// The rate, bit/s, it is sized for.
    pub rate_bps: u64,
    /// Whether `rate_bps` was measured (false: the tier's nominal rate).
    pub rate_measured: bool,
    /// The round-trip time windows are sized for.
    pub design_rtt: Duration,
    /// Packet backend.
    pub backend: BackendKind,
    /// Shards (pinned threads) the host supports for this tier.
    pub shards: usize,
    /// Datagrams per receive and send batch.
    pub batch: usize,
    /// `SO_RCVBUF` bytes.
    pub recv_buffer: usize,
    /// `SO_SNDBUF` bytes.
    pub send_buffer: usize,
    /// Initial connection flow-control window.
    pub initial_max_data: u64,
    /// Initial stream flow-control window.
    pub initial_max_stream_data: u64,
    /// Ceiling of the connection window's auto-tuning.
    pub max_connection_window: u64,
    /// Ceiling of a stream window's auto-tuning.
    pub max_stream_window: u64,
    /// Per-stream application buffer (the adapter's starting window).
    pub stream_buffer: usize,
    /// Congestion controller.
    pub congestion_control: CongestionControl,
    /// Departure times handed to the kernel (`fq` qdisc present).
    pub kernel_pacing: bool,
    /// Largest UDP payload.
    pub max_udp_payload: usize,
    /// Bounds of the per-connection adapter.
    pub adaptation: Adaptation,
}

/// IPv6 (40) plus UDP (8) headers: a payload that fits the MTU either way.
const IP_UDP_OVERHEAD: u32 = 48;
/// QUIC's minimum datagram size (RFC 9000 §14).
const MIN_UDP_PAYLOAD: usize = 1200;
/// The largest UDP payload of an IPv6 jumbo-less datagram.
const MAX_UDP_PAYLOAD: usize = 65_527;
/// The most datagrams a backend moves per call (`SocketOptions::batch`).
pub const MAX_BATCH: usize = 64;

impl Profile {
    /// The profile of `tier` for what the probe measured. The backend is the
    /// tier's preferred one; the caller (hw-detect) replaces it with one the
    /// host can run.
    pub fn for_tier(tier: Tier, inputs: &ProfileInputs) -> Profile {
        let rate = inputs.rate_bps.unwrap_or_else(|| tier.nominal_rate()).max(MBIT);
        let rtt = tier.design_rtt();
        let bdp = (u128::from(rate) * rtt.as_micros() / 8 / 1_000_000) as u64;
        let clamp = |v: u64, lo: u64, hi: u64| v.clamp(lo, hi);
        // quiche grows windows up to these ceilings; twice the BDP lets the
        // window stay ahead of a sender at the full rate.
        let max_stream_window = clamp(2 * bdp, 1 << 20, 64 << 20);
        let max_connection_window = clamp(4 * bdp, 2 << 20, 256 << 20).max(max_stream_window * 3 / 2);
        // Start at the BDP (a quarter per stream) so one round trip fills the
        // pipe without committing the ceiling's memory up front.
        let initial_max_data = clamp(bdp, 1 << 20, max_connection_window);
        let initial_max_stream_data = clamp(bdp / 2, 256 << 10, max_stream_window);
        let stream_buffer = clamp(bdp / 4, 256 << 10, 16 << 20) as usize;
        // 16 ms of traffic at the full rate rides out a shard that is busy
        // elsewhere without drops in the socket.
        let socket_buffer = clamp((rate / 8).saturating_mul(16) / 1000, 1 << 20, 64 << 20) as usize;
        let batch = match tier {
            Tier::Slow => 8,
            Tier::Home => 16,
            Tier::Standard => 32,
            _ => MAX_BATCH,
        };
        let cpus = inputs.cpus.max(1);
        let shards = match tier {
            Tier::Slow | Tier::Home | Tier::Standard => 1,
            // One shard per receive queue, at most one per CPU.
            _ => inputs.rx_queues.map_or(cpus, |q| (q as usize).clamp(1, cpus)),
        };
        // CUBIC in every tier: on a veth link shaped by tbf to 90 Mbit/s,
        // quiche 0.30's BBRv2 delivered 56 Mbit/s where CUBIC delivered 84
        // (same run, tools/stoq-perf/tests/shaped.rs). quiche paces only
        // BBRv2, so CUBIC's packets leave as its window allows; pacing comes
        // from the per-connection adapter, which caps a lossy connection.
        let congestion_control = CongestionControl::Cubic;
        let max_udp_payload = inputs
            .mtu
            .map_or(MIN_UDP_PAYLOAD, |m| m.saturating_sub(IP_UDP_OVERHEAD) as usize)
            .clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD);
        let (lo, hi) = tier.rate_range();
        let adaptation = Adaptation {
            min_window: (stream_buffer / 4).max(64 << 10),
            max_window: max_stream_window as usize,
            min_pacing_rate: lo.max(MBIT),
            max_pacing_rate: hi.unwrap_or(rate).max(rate),
        };
        Profile {
            tier,
            rate_bps: rate,
            rate_measured: inputs.rate_bps.is_some(),
            design_rtt: rtt,
            backend: tier.preferred_backend(),
            shards,
            batch,
            recv_buffer: socket_buffer,
            send_buffer: socket_buffer,
            initial_max_data,
            initial_max_stream_data,
            max_connection_window,
            max_stream_window,
            stream_buffer,
            congestion_control,
            kernel_pacing: inputs.fq_qdisc,
            max_udp_payload,
            adaptation,
        }
    }

    /// Applies the profile to an endpoint configuration: backend, socket
    /// options, windows, congestion control, pacing, payload size and the
    /// adapter's bounds. Other settings (TLS, ALPN, timeouts) are kept.
    pub fn apply(&self, cfg: &mut EndpointConfig) {
        cfg.backend = self.backend;
        let s = &mut cfg.socket;
        s.recv_buffer = self.recv_buffer;
        s.send_buffer = self.send_buffer;
        s.kernel_pacing = self.kernel_pacing;
        s.batch = self.batch;
        let t = &mut cfg.transport;
        t.max_udp_payload = self.max_udp_payload;
        t.initial_max_data = self.initial_max_data;
        t.initial_max_stream_data = self.initial_max_stream_data;
        t.max_connection_window = self.max_connection_window;
        t.max_stream_window = self.max_stream_window;
        t.stream_buffer = self.stream_buffer;
        t.congestion_control = self.congestion_control;
        t.adaptation = Some(self.adaptation);
    }
}

impl Tier {
    /// The backend the architecture map names for the tier, before the host
    /// is consulted (hw-detect steps down from it, recording why).
    pub fn preferred_backend(self) -> BackendKind {
        match self {
            Tier::Slow => BackendKind::Portable,
            Tier::Home | Tier::Standard => BackendKind::LinuxBatch,
            Tier::Performance => BackendKind::IoUring,
            Tier::Enterprise | Tier::DataCenter => BackendKind::AfXdp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_boundary_maps_to_its_tier() {
        let cases = [
            (0, Tier::Slow),
            (99_999_999, Tier::Slow),
            (100_000_000, Tier::Home),
            (999_999_999, Tier::Home),
            (1_000_000_000, Tier::Standard),
            (2_499_999_999, Tier::Standard),
            (2_500_000_000, Tier::Performance),
            (9_999_999_999, Tier::Performance),
            (10_000_000_000, Tier::Enterprise),
            (24_999_999_999, Tier::Enterprise),
            (25_000_000_000, Tier::DataCenter),
            (400_000_000_000, Tier::DataCenter),
            (u64::MAX, Tier::DataCenter),
        ];
        for (bps, tier) in cases {
            assert_eq!(Tier::for_rate(bps), tier, "{bps} bit/s");
        }
        for t in Tier::ALL {
            assert_eq!(Tier::for_rate(t.rate_range().0), t);
            assert_eq!(t.name().parse::<Tier>().unwrap(), t);
        }
        assert!("turbo".parse::<Tier>().unwrap_err().to_string().contains("datacenter"));
    }

    fn inputs(rate: Option<u64>, mtu: Option<u32>) -> ProfileInputs {
        ProfileInputs { rate_bps: rate, mtu, cpus: 8, rx_queues: Some(4), fq_qdisc: false }
    }

    #[test]
    fn windows_follow_the_bandwidth_delay_product() {
        // 90 Mbit/s over the Slow tier's 200 ms: BDP 2.25 MB.
        let p = Profile::for_tier(Tier::Slow, &inputs(Some(90_000_000), Some(1500)));
        assert_eq!(p.initial_max_data, 2_250_000);
        assert_eq!(p.max_stream_window, 4_500_000);
        assert_eq!(p.max_connection_window, 9_000_000);
        assert_eq!(p.stream_buffer, 562_500);
        assert_eq!(p.recv_buffer, 1 << 20, "16 ms of 90 Mbit/s is below the 1 MiB floor");
        // 10 Gbit/s over 10 ms: BDP 12.5 MB; socket buffers 20 MB.
        let p = Profile::for_tier(Tier::Enterprise, &inputs(Some(10 * GBIT), Some(9000)));
        assert_eq!(p.initial_max_data, 12_500_000);
        assert_eq!(p.max_stream_window, 25_000_000);
        assert_eq!(p.recv_buffer, 20_000_000);
        assert_eq!(p.max_udp_payload, 8952);
        // Windows and batches never shrink as the tier rises (at each
        // tier's lower bound).
        let (mut last_window, mut last_batch) = (0, 0);
        for t in Tier::ALL {
            let p = Profile::for_tier(t, &inputs(Some(t.rate_range().0.max(MBIT)), Some(1500)));
            assert!(p.max_connection_window >= p.max_stream_window);
            assert!(p.initial_max_stream_data <= p.max_stream_window);
            assert!(p.adaptation.min_window <= p.stream_buffer && p.stream_buffer <= p.adaptation.max_window);
            assert!(p.max_stream_window >= last_window, "{t}: window {}", p.max_stream_window);
            assert!(p.batch <= MAX_BATCH && p.batch >= last_batch, "{t}: batch {}", p.batch);
            (last_window, last_batch) = (p.max_stream_window, p.batch);
        }
        // Absurd rates (a 64-bit tbf rate on a NIC of unknown speed) clamp
        // instead of overflowing.
        let p = Profile::for_tier(Tier::DataCenter, &inputs(Some(u64::MAX), Some(1500)));
        assert_eq!((p.recv_buffer, p.max_stream_window), (64 << 20, 64 << 20));
    }

    #[test]
    fn unknown_rate_uses_the_tier_nominal_rate_and_says_so() {
        let p = Profile::for_tier(Tier::Standard, &inputs(None, None));
        assert_eq!(p.rate_bps, 2_500 * MBIT);
        assert!(!p.rate_measured);
        assert_eq!(p.max_udp_payload, 1200, "unknown MTU: QUIC's minimum, which every path carries");
    }

    #[test]
    fn payload_comes_from_the_mtu_within_quic_limits() {
        for (mtu, payload) in
            [(1500, 1452), (1280, 1232), (9000, 8952), (576, 1200), (65536, 65_488), (u32::MAX, 65_527)]
        {
            assert_eq!(Profile::for_tier(Tier::Home, &inputs(None, Some(mtu))).max_udp_payload, payload, "MTU {mtu}");
        }
    }

    #[test]
    fn shards_follow_queues_and_cpus_from_performance_up() {
        let mut i = inputs(Some(5 * GBIT), Some(1500));
        assert_eq!(Profile::for_tier(Tier::Standard, &i).shards, 1);
        assert_eq!(Profile::for_tier(Tier::Performance, &i).shards, 4, "4 queues on 8 CPUs");
        i.rx_queues = Some(32);
        assert_eq!(Profile::for_tier(Tier::Performance, &i).shards, 8, "never more shards than CPUs");
        i.rx_queues = None;
        i.cpus = 2;
        assert_eq!(Profile::for_tier(Tier::DataCenter, &i).shards, 2);
    }

    #[test]
    fn apply_sets_every_profiled_field() {
        let mut i = inputs(Some(500 * MBIT), Some(1500));
        i.fq_qdisc = true;
        let p = Profile::for_tier(Tier::Home, &i);
        let mut cfg = EndpointConfig::default();
        p.apply(&mut cfg);
        assert_eq!(cfg.backend, BackendKind::LinuxBatch);
        assert_eq!(cfg.transport.congestion_control, CongestionControl::Cubic);
        assert_eq!(cfg.transport.max_pacing_rate, None, "CUBIC: quiche would ignore a cap");
        assert_eq!(cfg.transport.stream_buffer, p.stream_buffer);
        assert_eq!(cfg.transport.max_stream_window, p.max_stream_window);
        assert_eq!(cfg.transport.adaptation, Some(p.adaptation));
        assert_eq!(cfg.socket.batch, 16);
        assert_eq!(cfg.socket.recv_buffer, p.recv_buffer);
        assert!(cfg.socket.kernel_pacing);
        cfg.validate().expect("a profile is always a valid configuration");
    }
}
