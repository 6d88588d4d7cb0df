//! The run-time adapter on a real transfer: over loopback a 64 KiB window
//! is far too small for the rate, so both ends find it limiting and, with
//! the hysteresis (three readings and five seconds since establishment),
//! raise it within the transfer; every byte still arrives intact.

mod common;

use std::time::{Duration, Instant};

use stoq_core::{Adaptation, AdapterDirection, AdapterKnob, ConnectionStats, EndpointConfig};

const START: usize = 64 << 10;
const BOUNDS: Adaptation = Adaptation {
    min_window: 16 << 10,
    max_window: 8 << 20,
    min_pacing_rate: 1_000_000,
    max_pacing_rate: 10_000_000_000,
};
/// Long enough for readings at 1..=5 s to make a change at 5 s, with room
/// for a slow machine.
const TRANSFER: Duration = Duration::from_secs(8);

/// One timed transfer at a time: the loopback one fills both cores, and the
/// shaped one measures how closely the shard's pacing holds a rate.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn adaptive(e: &mut EndpointConfig) {
    e.transport.stream_buffer = START;
    e.transport.adaptation = Some(BOUNDS);
}

/// An endless xorshift byte stream, so any lost, duplicated or reordered
/// chunk changes the bytes, whatever sizes it is cut into.
struct Pattern {
    x: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    fn new(seed: u64) -> Self {
        Self { x: seed | 1, word: [0; 8], used: 8 }
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == 8 {
                self.x ^= self.x << 13;
                self.x ^= self.x >> 7;
                self.x ^= self.x << 17;
                self.word = self.x.to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

fn adapter_of(who: &str, stats: &ConnectionStats) -> stoq_core::AdapterStats {
    let a = stats.adapter.clone().unwrap_or_else(|| panic!("{who}: adaptation is configured but not reported"));
    eprintln!("{who}: {a:?}");
    a
}

#[test]
fn a_window_limited_transfer_grows_the_window_and_arrives_intact() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = common::server_with(common::localhost(), adaptive);
    let client = common::client_with(common::localhost(), adaptive);
    let (c, s) = common::pair(&server, &client);
    for (who, conn) in [("client", &c), ("server", &s)] {
        let a = adapter_of(who, &conn.stats().unwrap());
        assert_eq!((a.window, a.pacing_cap, a.ups + a.downs), (START, None, 0), "{who} starts as configured");
    }
    let writer = std::thread::spawn(move || {
        let (mut send, mut pattern, mut chunk) = (s.open_uni().unwrap(), Pattern::new(7), vec![0; 64 << 10]);
        let (start, mut sent) = (Instant::now(), 0u64);
        while start.elapsed() < TRANSFER {
            pattern.fill(&mut chunk);
            send.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
        }
        send.finish().unwrap();
        (s, sent)
    });
    let mut recv = c.accept_uni().unwrap();
    let (mut expected, mut want, mut got) = (Pattern::new(7), Vec::new(), 0u64);
    while let Some(chunk) = recv.read_chunk(1 << 20).unwrap() {
        want.resize(chunk.len(), 0);
        expected.fill(&mut want);
        if let Some(i) = common::first_difference(&chunk, &want) {
            panic!("byte {} differs", got + i as u64);
        }
        got += chunk.len() as u64;
    }
    let (s, sent) = writer.join().unwrap();
    assert_eq!(got, sent, "the receiver saw the end after {got} of {sent} bytes");
    eprintln!("{sent} bytes in {TRANSFER:?}");

    // The sender's queue and the receiver's read-ahead both limited the
    // transfer; each side's adapter raised its own window.
    for (who, conn) in [("receiver", &c), ("sender", &s)] {
        let a = adapter_of(who, &conn.stats().unwrap());
        assert!(a.ups >= 1 && a.window > START, "{who}: window never grew: {a:?}");
        assert!(a.window <= BOUNDS.max_window, "{who}: {a:?}");
        let last = a.last.expect("a decision");
        assert_eq!((last.knob, last.direction), (AdapterKnob::Window, AdapterDirection::Up), "{who}: {last:?}");
        assert!(last.at >= Duration::from_secs(5), "{who}: changed {:?} after establishment", last.at);
        assert!(last.reason.contains("window-limited"), "{who}: {}", last.reason);
    }
    for (who, e) in [("client", &client), ("server", &server)] {
        let st = e.stats();
        assert!(st.adapter_ups >= 1, "{who} endpoint counted no change: {st:?}");
    }
}

/// Sustained loss caps the sender, and the shard holds it to the cap. Over
/// a veth link shaped to 50 Mbit/s with a short queue (tbf drops what does
/// not fit) CUBIC loses well over 2% of its packets; bounds pinned at
/// 20 Mbit/s put the adapter's cap below the link, where the delivered rate
/// must follow it without losing throughput to the pacing. Needs root (CI).
#[cfg(target_os = "linux")]
#[test]
fn sustained_loss_caps_the_pacing_rate_and_the_shard_holds_it() {
    const CAP: u64 = 20_000_000;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = stoq_testbed::NetnsPair::create() else { return };
    let run = |args: &[&str]| std::process::Command::new(args[0]).args(&args[1..]).output().unwrap();
    let links = run(&["ip", "-n", &net.names[0], "-o", "link", "show", "type", "veth"]);
    let links = String::from_utf8_lossy(&links.stdout);
    let dev = links.split(':').nth(1).and_then(|d| d.trim().split('@').next()).expect("the veth end");
    let shape = ["tc", "-n", &net.names[0], "qdisc", "add", "dev", dev, "root", "tbf", "rate", "50mbit"];
    let tc = run(&[&shape[..], &["burst", "4k", "limit", "6k"]].concat());
    assert!(tc.status.success(), "tc: {}", String::from_utf8_lossy(&tc.stderr));

    let bounds = Adaptation { min_pacing_rate: CAP, max_pacing_rate: CAP, ..BOUNDS };
    let addr = std::net::SocketAddr::new(net.addrs[0], 4433);
    let adapt = move |e: &mut EndpointConfig| e.transport.adaptation = Some(bounds);
    let server = net.run_in(0, move || common::server_with(addr, adapt)).join().unwrap();
    let client = net.run_in(1, move || common::client_with("0.0.0.0:0".parse().unwrap(), adapt)).join().unwrap();
    let (c, s) = common::pair(&server, &client);
    let (t0, stop) = (Instant::now(), std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let (s2, stop2) = (s.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        let (mut send, mut pattern, mut chunk) = (s2.open_uni().unwrap(), Pattern::new(9), vec![0; 64 << 10]);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            pattern.fill(&mut chunk);
            send.write_all(&chunk).unwrap();
        }
        send.finish().unwrap();
    });
    let reader = std::thread::spawn(move || {
        let mut recv = c.accept_uni().unwrap();
        let (mut expected, mut want, mut got, mut marks) = (Pattern::new(9), Vec::new(), 0u64, Vec::new());
        while let Some(chunk) = recv.read_chunk(1 << 20).unwrap() {
            want.resize(chunk.len(), 0);
            expected.fill(&mut want);
            assert_eq!(common::first_difference(&chunk, &want), None, "after {got} bytes");
            got += chunk.len() as u64;
            marks.push((t0.elapsed(), got));
        }
        (c, marks)
    });

    // Watch the sender until it is capped (at 5 s at the earliest), then
    // let it run 3 s more at the cap.
    let capped = loop {
        std::thread::sleep(Duration::from_millis(100));
        let a = s.stats().unwrap().adapter.expect("adaptation is on");
        if a.pacing_cap.is_some() || t0.elapsed() > Duration::from_secs(20) {
            break a;
        }
    };
    let capped_at = t0.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let (_c, marks) = reader.join().unwrap();
    eprintln!("sender capped after {capped_at:?}: {capped:?}");
    assert_eq!((capped.pacing_cap, capped.downs), (Some(CAP), 1), "{capped:?}");
    let last = capped.last.expect("a decision");
    assert_eq!((last.knob, last.direction), (AdapterKnob::Pacing, AdapterDirection::Down));
    assert!(last.reason.contains("loss above 2%"), "{}", last.reason);

    let rate = |from: Duration, to: Duration| {
        let at = |t| marks.iter().find(|m| m.0 >= t).map_or(0, |m| m.1);
        at(to).saturating_sub(at(from)) as f64 * 8.0 / (to - from).as_secs_f64()
    };
    let before = rate(Duration::from_secs(1), Duration::from_secs(4));
    let after = rate(capped_at + Duration::from_millis(500), capped_at + Duration::from_millis(2500));
    eprintln!("delivered {:.1} Mbit/s before the cap, {:.1} Mbit/s under it", before / 1e6, after / 1e6);
    // Goodput under a 20 Mbit/s wire cap: above it, the cap leaked; far
    // below, the pacing cost throughput.
    assert!(after <= CAP as f64 * 1.02 && after >= CAP as f64 * 0.8, "{:.1} Mbit/s under the cap", after / 1e6);
    assert!(before > CAP as f64 * 1.5, "the link carried only {:.1} Mbit/s before the cap", before / 1e6);
}
