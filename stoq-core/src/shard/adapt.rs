//! Per-connection run-time adaptation. Every second the shard takes a
//! reading of each established connection; its [`Adapter`] turns the
//! readings into one-step changes of two settings, within the tier's
//! [`Adaptation`] bounds.
//!
//! ## Knobs
//! - **Window**: each stream's buffer in both directions: the bytes the
//!   shard reads ahead of the application (when full it stops reading and
//!   quiche's flow control holds the peer back) and the bytes the
//!   application may queue for sending. Steps ×2 and ÷2.
//! - **Pacing cap**: a STOQ ceiling on the connection's send rate
//!   ([`PacingCap`]), on top of quiche's own pacing. It starts uncapped.
//!
//! ## Rules (each reading covers the last interval)
//! - Window **Up** when the window limited the transfer and loss < 1%.
//!   Limited means a stall only a larger window would have avoided: the
//!   reader emptied a receive buffer the shard had stopped filling at the
//!   window, or the shard handed quiche the whole send queue while the
//!   writer waited for room. A slow reader or a full congestion window
//!   shows neither, so neither grows the window for nothing; with loss the
//!   path, not the window, is the limit.
//! - Window **Down** when not limited, RTT > 2 × min RTT + 5 ms and the
//!   bandwidth-delay product (delivery rate × RTT) is at most a quarter of
//!   the window: a queue is standing and the window is far above what the
//!   path carries, so halving it frees memory and still leaves twice the BDP.
//! - Pacing **Down** when more than 2% of at least 100 packets sent in the
//!   interval were lost: cap at 1.25 × the delivery rate, within
//!   `[min_pacing_rate, max_pacing_rate]`. Sending faster than the path
//!   delivers only feeds the loss; the margin lets the rate climb back.
//! - Pacing **Up** when capped, loss < 0.5% and delivery ≥ 90% of the cap:
//!   the cap, not the path, is the limit. Double it; above
//!   `max_pacing_rate` the cap is removed.
//! - Everything else is **Hold**, including a reading that lacks what its
//!   rule needs (no RTT sample, zero delivery rate, nothing sent).
//!
//! ## Hysteresis
//! A change needs three consecutive readings pointing the same way for that
//! knob (a Hold or the opposite vote restarts the count) and at least five
//! seconds since the connection's last change of either knob (its
//! establishment counts as one). At most one knob changes per reading,
//! pacing first, as loss is the more urgent signal. A setting therefore
//! moves at most once per five seconds, and a pattern that keeps changing
//! its mind never moves it.

use std::time::{Duration, Instant};

use crate::config::Adaptation;
use crate::connection::{AdapterDecision, AdapterDirection, AdapterKnob, AdapterStats};

/// How often the shard takes a reading of an established connection.
pub(super) const READING_INTERVAL: Duration = Duration::from_secs(1);
/// Consecutive readings pointing the same way that a change needs.
const STREAK: u32 = 3;
/// Least time between two changes on one connection.
const MIN_GAP: Duration = Duration::from_secs(5);
/// Fewest packets sent in an interval for its loss to lower the cap: 2% of
/// fewer is one or two packets, which is noise.
const MIN_LOSS_SAMPLE: u64 = 100;
/// Delay beyond twice the minimum RTT that counts as a standing queue; it
/// absorbs scheduling jitter on paths with tiny RTTs (loopback, a LAN).
const QUEUE_SLACK: Duration = Duration::from_millis(5);
/// Bytes the pacing cap lets through at once after a pause, as time at the
/// capped rate: it also absorbs a release up to this late (the shard's
/// timers have millisecond resolution), so the cap costs no throughput.
const CAP_BURST: Duration = Duration::from_millis(1);

/// One interval's figures, from quiche's statistics and the shard's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Sample {
    /// quiche's latest delivery-rate estimate, bytes per second.
    pub delivery_rate: u64,
    /// Smoothed RTT.
    pub rtt: Duration,
    /// Lowest RTT seen; `None` before the first sample.
    pub min_rtt: Option<Duration>,
    /// Packets sent during the interval.
    pub sent: u64,
    /// Packets declared lost during the interval.
    pub lost: u64,
    /// Stalls during the interval that only a larger window would have
    /// avoided (see the module docs).
    pub window_stalls: u64,
}

impl Sample {
    /// Loss below `num/den` of what was sent; unknown (nothing sent) is not.
    fn loss_below(&self, num: u64, den: u64) -> bool {
        self.sent > 0 && u128::from(self.lost) * u128::from(den) < u128::from(self.sent) * u128::from(num)
    }

    /// Loss above `num/den` over a sample large enough to tell.
    fn loss_above(&self, num: u64, den: u64) -> bool {
        self.sent >= MIN_LOSS_SAMPLE
            && u128::from(self.lost) * u128::from(den) > u128::from(self.sent) * u128::from(num)
    }

    fn loss_percent(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { self.lost as f64 * 100.0 / self.sent as f64 }
    }

    /// A delivery rate measured during this interval, bits per second.
    fn rate_bits(&self) -> Option<u128> {
        (self.sent > 0 && self.delivery_rate > 0).then(|| u128::from(self.delivery_rate) * 8)
    }

    /// RTT > 2 × min RTT + slack: a queue is standing on the path.
    fn queueing(&self) -> bool {
        self.min_rtt
            .filter(|m| !m.is_zero())
            .is_some_and(|m| self.rtt > m.saturating_mul(2).saturating_add(QUEUE_SLACK))
    }

    /// Delivery rate × RTT, bytes.
    fn bdp(&self) -> u128 {
        u128::from(self.delivery_rate).saturating_mul(self.rtt.as_nanos()) / 1_000_000_000
    }
}

/// Which way one reading points for one knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Vote {
    /// Raise the setting.
    Up,
    /// Lower the setting.
    Down,
    /// Leave it.
    Hold,
}

/// One reading's votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reading {
    /// For the window.
    pub window: Vote,
    /// For the pacing cap.
    pub pacing: Vote,
}

/// The pure state machine: readings and instants in, changes out.
#[derive(Debug)]
pub(super) struct Adapter {
    bounds: Adaptation,
    window: usize,
    pacing_cap: Option<u64>,
    /// Consecutive equal votes, for [window, pacing].
    streaks: [(Vote, u32); 2],
    started: Instant,
    last_change: Instant,
    ups: u64,
    downs: u64,
    last: Option<AdapterDecision>,
}

impl Adapter {
    /// Starts at `window` (clamped to the bounds), uncapped, at `now`.
    pub fn new(bounds: Adaptation, window: usize, now: Instant) -> Self {
        let window = window.clamp(bounds.min_window, bounds.max_window.max(bounds.min_window));
        Self {
            bounds,
            window,
            pacing_cap: None,
            streaks: [(Vote::Hold, 0); 2],
            started: now,
            last_change: now,
            ups: 0,
            downs: 0,
            last: None,
        }
    }

    /// The per-stream window to use now.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The pacing cap to use now, bit/s.
    pub fn pacing_cap(&self) -> Option<u64> {
        self.pacing_cap
    }

    /// A snapshot for [`ConnectionStats`](crate::ConnectionStats).
    pub fn stats(&self) -> AdapterStats {
        AdapterStats {
            window: self.window,
            pacing_cap: self.pacing_cap,
            ups: self.ups,
            downs: self.downs,
            last: self.last.clone(),
        }
    }

    /// What the rules (module docs) say about one interval.
    pub fn judge(&self, s: &Sample) -> Reading {
        let limited = s.window_stalls > 0;
        let window = if limited && s.loss_below(1, 100) && self.window < self.bounds.max_window {
            Vote::Up
        } else if !limited
            && s.rate_bits().is_some()
            && s.queueing()
            && s.bdp().saturating_mul(4) <= self.window as u128
            && self.window > self.bounds.min_window
        {
            Vote::Down
        } else {
            Vote::Hold
        };
        let pacing = match (s.rate_bits(), self.pacing_cap) {
            (Some(_), cap) if s.loss_above(2, 100) => {
                if cap.is_none_or(|c| self.loss_cap(s) < c) {
                    Vote::Down
                } else {
                    Vote::Hold
                }
            }
            (Some(rate), Some(cap)) if s.loss_below(1, 200) && rate * 10 >= u128::from(cap) * 9 => Vote::Up,
            _ => Vote::Hold,
        };
        Reading { window, pacing }
    }

    /// The cap pacing Down sets: 1.25 × the delivery rate, within bounds.
    fn loss_cap(&self, s: &Sample) -> u64 {
        let target = u128::from(s.delivery_rate) * 8 * 5 / 4;
        let max = self.bounds.max_pacing_rate.max(self.bounds.min_pacing_rate);
        u64::try_from(target).unwrap_or(u64::MAX).clamp(self.bounds.min_pacing_rate, max)
    }

    /// [`judge`](Self::judge)s a sample and feeds the reading in.
    pub fn on_sample(&mut self, now: Instant, s: &Sample) -> Option<&AdapterDecision> {
        let r = self.judge(s);
        self.on_reading(now, r, s)
    }

    /// Counts a reading taken at `now` (with the sample it came from, for
    /// the new cap and the reason) and makes a change if the hysteresis
    /// allows one.
    pub fn on_reading(&mut self, now: Instant, r: Reading, s: &Sample) -> Option<&AdapterDecision> {
        for (streak, vote) in self.streaks.iter_mut().zip([r.window, r.pacing]) {
            *streak = match vote {
                Vote::Hold => (Vote::Hold, 0),
                v if v == streak.0 => (v, streak.1.saturating_add(1)),
                v => (v, 1),
            };
        }
        if now.saturating_duration_since(self.last_change) < MIN_GAP {
            return None;
        }
        for (i, knob) in [(1, AdapterKnob::Pacing), (0, AdapterKnob::Window)] {
            let (vote, n) = self.streaks[i];
            if n < STREAK {
                continue;
            }
            let Some((direction, reason)) = self.step(knob, vote, n, s) else { continue };
            self.streaks[i] = (Vote::Hold, 0);
            self.last_change = now;
            match direction {
                AdapterDirection::Up => self.ups += 1,
                AdapterDirection::Down => self.downs += 1,
            }
            let at = now.saturating_duration_since(self.started);
            return Some(self.last.insert(AdapterDecision { at, knob, direction, reason }));
        }
        None
    }

    /// Moves `knob` one step the way `vote` points, unless a bound stops it;
    /// returns the direction and the reason.
    fn step(&mut self, knob: AdapterKnob, vote: Vote, n: u32, s: &Sample) -> Option<(AdapterDirection, String)> {
        let b = self.bounds;
        let loss = s.loss_percent();
        match (knob, vote) {
            (AdapterKnob::Window, Vote::Up) => {
                let to = self.window.saturating_mul(2).min(b.max_window);
                let why = format!("window-limited in {n} readings (last: {} stalls, loss {loss:.2}%)", s.window_stalls);
                self.set_window(to, AdapterDirection::Up, why)
            }
            (AdapterKnob::Window, Vote::Down) => {
                let to = (self.window / 2).max(b.min_window);
                let why = format!(
                    "queue standing and window unused in {n} readings (last: RTT {:?} > 2 x min RTT {:?} + 5 ms, \
                     BDP {} <= window/4)",
                    s.rtt,
                    s.min_rtt.unwrap_or_default(),
                    bytes(s.bdp()),
                );
                self.set_window(to, AdapterDirection::Down, why)
            }
            (AdapterKnob::Pacing, Vote::Down) => {
                let to = self.loss_cap(s);
                if self.pacing_cap.is_some_and(|c| to >= c) {
                    return None;
                }
                let why = format!(
                    "loss above 2% in {n} readings (last: {loss:.2}% of {} packets); cap {} -> {} \
                     (1.25 x delivery {})",
                    s.sent,
                    rate(self.pacing_cap),
                    rate(Some(to)),
                    rate(Some(s.delivery_rate.saturating_mul(8))),
                );
                self.pacing_cap = Some(to);
                Some((AdapterDirection::Down, why))
            }
            (AdapterKnob::Pacing, Vote::Up) => {
                let from = self.pacing_cap?;
                let to = Some(from.saturating_mul(2)).filter(|&c| c <= b.max_pacing_rate);
                let why = format!(
                    "delivery at the cap with loss below 0.5% in {n} readings (last: {} at {loss:.2}% loss); \
                     cap {} -> {}",
                    rate(Some(s.delivery_rate.saturating_mul(8))),
                    rate(Some(from)),
                    rate(to),
                );
                self.pacing_cap = to;
                Some((AdapterDirection::Up, why))
            }
            (_, Vote::Hold) => None,
        }
    }

    fn set_window(&mut self, to: usize, dir: AdapterDirection, why: String) -> Option<(AdapterDirection, String)> {
        if to == self.window {
            return None;
        }
        let why = format!("{why}; window {} -> {}", bytes(self.window as u128), bytes(to as u128));
        self.window = to;
        Some((dir, why))
    }
}

fn bytes(n: u128) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn rate(bps: Option<u64>) -> String {
    match bps {
        None => "uncapped".to_owned(),
        Some(b) if b >= 1_000_000_000 => format!("{:.2} Gbit/s", b as f64 / 1e9),
        Some(b) => format!("{:.1} Mbit/s", b as f64 / 1e6),
    }
}

/// The shard's side of one connection's adapter: when the next reading is
/// due and the counters the next sample is a delta of.
#[derive(Debug)]
pub(super) struct ConnAdapter {
    /// The state machine.
    pub adapter: Adapter,
    /// When the next reading is due.
    pub next: Instant,
    sent: usize,
    lost: usize,
}

impl ConnAdapter {
    /// Starts adapting an established connection at `now`.
    pub fn new(bounds: Adaptation, window: usize, now: Instant, q: &quiche::Connection) -> Self {
        let s = q.stats();
        Self { adapter: Adapter::new(bounds, window, now), next: now + READING_INTERVAL, sent: s.sent, lost: s.lost }
    }

    /// The interval ending now, from quiche's statistics (connection-wide
    /// packet counts, the active path's rates) and the stalls the shard saw.
    pub fn sample(&mut self, now: Instant, q: &quiche::Connection, window_stalls: u64) -> Sample {
        self.next = now + READING_INTERVAL;
        let s = q.stats();
        let (sent, lost) = (s.sent.saturating_sub(self.sent), s.lost.saturating_sub(self.lost));
        (self.sent, self.lost) = (s.sent, s.lost);
        let path = q.path_stats().find(|p| p.active);
        Sample {
            delivery_rate: path.as_ref().map_or(0, |p| p.delivery_rate),
            rtt: path.as_ref().map_or(Duration::ZERO, |p| p.rtt),
            min_rtt: path.as_ref().and_then(|p| p.min_rtt),
            sent: sent as u64,
            lost: lost as u64,
            window_stalls,
        }
    }
}

/// A STOQ pacing cap: each packet's earliest departure under a rate limit
/// (GCRA: a theoretical arrival time advanced by each packet's
/// transmission time at the rate), letting [`CAP_BURST`] of it go at once.
#[derive(Debug, Default)]
pub(super) struct PacingCap {
    /// Bits per second; `None` is uncapped.
    rate: Option<u64>,
    /// When the bytes charged so far would have finished at the rate.
    tat: Option<Instant>,
}

impl PacingCap {
    /// Sets the cap, bit/s; `None` (or 0) removes it. Bytes already charged
    /// stay charged.
    pub fn set_rate(&mut self, rate: Option<u64>) {
        self.rate = rate.filter(|&r| r > 0);
    }

    /// Charges a `len`-byte packet built at `now` and returns its earliest
    /// departure under the cap; `None` when uncapped.
    pub fn schedule(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let rate = self.rate?;
        let tat = self.tat.map_or(now, |t| t.max(now));
        let depart = tat.checked_sub(CAP_BURST).map_or(now, |t| t.max(now));
        let nanos = (len as u128 * 8 * 1_000_000_000 / u128::from(rate)).min(u128::from(u64::MAX));
        self.tat = Some(tat.checked_add(Duration::from_nanos(nanos as u64)).unwrap_or(tat));
        Some(depart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;
    const BOUNDS: Adaptation =
        Adaptation { min_window: 16 * KIB, max_window: 8 << 20, min_pacing_rate: 1_000_000, max_pacing_rate: 1 << 30 };

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    fn window_votes(a: &mut Adapter, t0: Instant, votes: &[(u64, Vote)]) -> Vec<(u64, AdapterDirection)> {
        let r = |v| Reading { window: v, pacing: Vote::Hold };
        votes
            .iter()
            .filter_map(|&(t, v)| a.on_reading(secs(t0, t), r(v), &Sample::default()).map(|d| (t, d.direction)))
            .collect()
    }

    /// A busy interval: 10 000 packets, `lost` of them lost, delivering
    /// `rate` bytes/s over a 10 ms path with no queue.
    fn busy(lost: u64, rate: u64, stalls: u64) -> Sample {
        Sample {
            delivery_rate: rate,
            rtt: Duration::from_millis(10),
            min_rtt: Some(Duration::from_millis(10)),
            sent: 10_000,
            lost,
            window_stalls: stalls,
        }
    }

    #[test]
    fn three_ups_wait_for_five_seconds_since_the_last_change() {
        let t0 = Instant::now();
        let mut a = Adapter::new(BOUNDS, 64 * KIB, t0);
        use Vote::Up;
        let got = window_votes(&mut a, t0, &[(1, Up), (2, Up), (3, Up), (4, Up), (5, Up)]);
        assert_eq!(got, [(5, AdapterDirection::Up)], "establishment counts as the last change");
        assert_eq!(a.window(), 128 * KIB);
        // The streak restarts after a change, and the gap runs from it.
        let got = window_votes(&mut a, t0, &[(6, Up), (7, Up), (8, Up), (9, Up), (10, Up)]);
        assert_eq!(got, [(10, AdapterDirection::Up)]);
        let stats = a.stats();
        assert_eq!((stats.window, stats.ups, stats.downs), (256 * KIB, 2, 0));
        let last = stats.last.expect("a decision");
        assert_eq!((last.at, last.knob), (Duration::from_secs(10), AdapterKnob::Window));
        assert!(last.reason.contains("128.0 KiB -> 256.0 KiB"), "{}", last.reason);
    }

    #[test]
    fn a_down_or_a_hold_restarts_an_up_streak() {
        let t0 = Instant::now();
        let mut a = Adapter::new(BOUNDS, 64 * KIB, t0);
        use Vote::{Down, Hold, Up};
        let got = window_votes(&mut a, t0, &[(6, Up), (7, Up), (8, Down), (9, Up), (10, Up)]);
        assert_eq!(got, [], "U,U,D,U,U");
        let got = window_votes(&mut a, t0, &[(11, Hold), (12, Up), (13, Up), (14, Up)]);
        assert_eq!(got, [(14, AdapterDirection::Up)], "three in a row after the hold");
    }

    #[test]
    fn alternating_loss_never_moves_the_cap() {
        let t0 = Instant::now();
        let mut a = Adapter::new(BOUNDS, 64 * KIB, t0);
        // Lossy and clean intervals in turn, and two lossy to one clean.
        for t in 1..=120 {
            let lossy = if t <= 60 { t % 2 == 0 } else { t % 3 != 1 };
            let s = if lossy { busy(500, 10_000_000, 0) } else { busy(0, 10_000_000, 0) };
            assert_eq!(a.judge(&s).pacing, if lossy { Vote::Down } else { Vote::Hold });
            assert!(a.on_sample(secs(t0, t), &s).is_none(), "changed at {t} s");
        }
        assert_eq!(a.pacing_cap(), None);
    }

    #[test]
    fn sustained_loss_caps_then_clean_delivery_at_the_cap_lifts_it() {
        let t0 = Instant::now();
        let mut a = Adapter::new(BOUNDS, 64 * KIB, t0);
        let mut decisions = Vec::new();
        // 5% loss while delivering 10 MB/s: cap at 1.25 × 80 Mbit/s.
        for t in 1..=7 {
            if let Some(d) = a.on_sample(secs(t0, t), &busy(500, 10_000_000, 0)) {
                decisions.push((t, d.knob, d.direction));
            }
        }
        assert_eq!(decisions, [(5, AdapterKnob::Pacing, AdapterDirection::Down)]);
        assert_eq!(a.pacing_cap(), Some(100_000_000));
        // A second lossy stretch at the same delivery rate would not lower
        // the cap (1.25 × the rate is the cap already): Hold.
        assert_eq!(a.judge(&busy(500, 10_000_000, 0)).pacing, Vote::Hold);
        // Clean, and delivering 95% of the cap: double it, then lift it.
        let at_cap = |cap: u64| busy(0, cap / 8 * 95 / 100, 0);
        for t in 8..=12 {
            a.on_sample(secs(t0, t), &at_cap(a.pacing_cap().unwrap()));
        }
        assert_eq!(a.pacing_cap(), Some(200_000_000));
        let mut t = 13;
        while let Some(cap) = a.pacing_cap() {
            a.on_sample(secs(t0, t), &at_cap(cap));
            t += 1;
            assert!(t < 200, "never uncapped");
        }
        assert!(a.stats().last.unwrap().reason.contains("-> uncapped"));
        assert_eq!(a.judge(&at_cap(1 << 30)).pacing, Vote::Hold, "nothing to lift");
    }

    #[test]
    fn bounds_hold_at_both_ends() {
        let t0 = Instant::now();
        // Window: from 3 KiB in [2 KiB, 5 KiB], always limited: 3 → 5, then stays.
        let b = Adaptation { min_window: 2 * KIB, max_window: 5 * KIB, ..BOUNDS };
        let mut a = Adapter::new(b, 3 * KIB, t0);
        for t in 1..=60 {
            a.on_sample(secs(t0, t), &busy(0, 1_000_000, 10));
        }
        assert_eq!((a.window(), a.stats().ups), (5 * KIB, 1));
        // Always queueing with the window unused: 5 → 2.5 → 2, then stays.
        let queue = Sample { rtt: Duration::from_millis(100), ..busy(0, 1000, 0) };
        assert_eq!(a.judge(&queue).window, Vote::Down);
        for t in 61..=200 {
            a.on_sample(secs(t0, t), &queue);
        }
        assert_eq!((a.window(), a.stats().downs), (2 * KIB, 2));
        assert_eq!(a.judge(&queue).window, Vote::Hold);
        // Votes fed in directly cannot push past a bound either (nor lift
        // a cap that is not there).
        let past = Reading { window: Vote::Down, pacing: Vote::Up };
        for t in 300..320 {
            assert!(a.on_reading(secs(t0, t), past, &Sample::default()).is_none());
        }
        assert_eq!((a.window(), a.pacing_cap()), (2 * KIB, None));
        // The start is clamped into the bounds.
        assert_eq!(Adapter::new(b, 1 << 20, t0).window(), 5 * KIB);
        // Pacing: heavy loss at a tiny delivery rate caps at min_pacing_rate
        // and no lower.
        let mut a = Adapter::new(BOUNDS, 64 * KIB, t0);
        for t in 1..=60 {
            a.on_sample(secs(t0, t), &busy(5000, 1000, 0));
        }
        assert_eq!((a.pacing_cap(), a.stats().downs), (Some(BOUNDS.min_pacing_rate), 1));
    }

    #[test]
    fn the_window_follows_its_rules() {
        let a = Adapter::new(BOUNDS, 1 << 20, Instant::now());
        assert_eq!(a.judge(&busy(0, 10_000_000, 5)).window, Vote::Up, "limited, no loss");
        assert_eq!(a.judge(&busy(200, 10_000_000, 5)).window, Vote::Hold, "limited, 2% loss");
        assert_eq!(a.judge(&busy(0, 10_000_000, 0)).window, Vote::Hold, "not limited, no queue");
        // RTT 40 ms over a 10 ms minimum: 40 > 25.
        let queue = |rate| Sample { rtt: Duration::from_millis(40), ..busy(0, rate, 0) };
        assert_eq!(a.judge(&queue(1_000_000)).window, Vote::Down, "BDP 40 KB, a 25th of the window");
        assert_eq!(a.judge(&queue(10_000_000)).window, Vote::Hold, "BDP 400 KB > window/4");
        let shallow = Sample { rtt: Duration::from_millis(24), ..busy(0, 1_000_000, 0) };
        assert_eq!(a.judge(&shallow).window, Vote::Hold, "24 ms < 2 x 10 ms + 5 ms");
    }

    #[test]
    fn readings_without_their_figures_hold_and_odd_values_do_not_panic() {
        let t0 = Instant::now();
        let mut a = Adapter::new(BOUNDS, 1 << 20, t0);
        let hold = Reading { window: Vote::Hold, pacing: Vote::Hold };
        // A queue with the window unused (Down), and 9% loss (Down), each
        // with one figure missing.
        let queue = Sample { rtt: Duration::from_millis(100), ..busy(0, 1_000_000, 0) };
        let lossy = busy(900, 1_000_000, 0);
        assert_eq!((a.judge(&queue).window, a.judge(&lossy).pacing), (Vote::Down, Vote::Down));
        for (why, s) in [
            ("idle", Sample::default()),
            ("no RTT sample yet", Sample { min_rtt: None, ..queue }),
            ("zero minimum RTT", Sample { min_rtt: Some(Duration::ZERO), ..queue }),
            ("zero delivery rate, queue", Sample { delivery_rate: 0, ..queue }),
            ("zero delivery rate, loss", Sample { delivery_rate: 0, ..lossy }),
            ("nothing sent, queue", Sample { sent: 0, ..queue }),
            ("nothing sent, more lost", Sample { sent: 0, ..lossy }),
            ("loss of 50 packets: too few", Sample { sent: 50, lost: 25, ..lossy }),
            ("stalls but no packets: loss unknown", Sample { window_stalls: 3, ..Sample::default() }),
        ] {
            assert_eq!(a.judge(&s), hold, "{why}");
        }
        let huge = Sample {
            delivery_rate: u64::MAX,
            rtt: Duration::MAX,
            min_rtt: Some(Duration::MAX),
            sent: u64::MAX,
            lost: u64::MAX,
            window_stalls: u64::MAX,
        };
        for t in 1..=30 {
            a.on_sample(secs(t0, t), &huge);
            a.on_sample(secs(t0, t), &Sample { lost: u64::MAX, sent: 1, ..Sample::default() });
        }
        assert_eq!(a.on_sample(t0, &huge), None, "a clock going backwards changes nothing");
    }

    #[test]
    fn the_cap_paces_at_its_rate_after_a_one_millisecond_burst() {
        let t0 = Instant::now();
        let mut p = PacingCap::default();
        assert_eq!(p.schedule(t0, 1200), None, "uncapped");
        // 96 Mbit/s: 1200-byte packets every 100 µs, ten per millisecond.
        p.set_rate(Some(96_000_000));
        let departs: Vec<Duration> = (0..100).map(|_| p.schedule(t0, 1200).unwrap() - t0).collect();
        assert!(departs[..11].iter().all(|d| d.is_zero()), "the burst: {:?}", &departs[..12]);
        assert_eq!(departs[11], Duration::from_micros(100));
        assert_eq!(departs[99], Duration::from_micros(8900), "100 packets: 10 ms less the burst");
        // Sent as scheduled, a little late each time, the rate holds: the
        // lateness is absorbed, not lost.
        let mut p = PacingCap::default();
        p.set_rate(Some(96_000_000));
        let mut now = t0;
        for _ in 0..10_000 {
            now = p.schedule(now, 1200).unwrap().max(now) + Duration::from_micros(50);
        }
        let took = now - t0;
        assert!(took >= Duration::from_millis(998) && took <= Duration::from_millis(1001), "{took:?}");
        p.set_rate(None);
        assert_eq!(p.schedule(now, 1200), None);
        p.set_rate(Some(0));
        assert_eq!(p.schedule(now, 1200), None, "zero means uncapped, not a division by zero");
    }
}
