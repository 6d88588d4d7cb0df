//! Kernel pacing: with `SocketOptions::kernel_pacing` the linux-batch
//! backend hands each transmit's departure time to the kernel (SO_TXTIME),
//! and the `fq` qdisc holds the datagram until then. Runs in a network
//! namespace of its own (root; CI), on that namespace's loopback. Kernels
//! built without `sch_fq` (this project's VM is one) cannot show the delay:
//! that test says so; the socket-option test runs everywhere.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stoq_core::io::{self, BackendKind, IoCounters, PacketIo, RxBatch, SocketOptions, TxBatch};
use stoq_testbed::NetnsPair;

fn open(kernel_pacing: bool) -> Box<dyn PacketIo> {
    let opts = SocketOptions { kernel_pacing, ..SocketOptions::default() };
    io::open(BackendKind::LinuxBatch, "127.0.0.1:0".parse().unwrap(), &opts, Arc::new(IoCounters::default()))
        .expect("open linux-batch with SO_TXTIME")
}

/// Sends one datagram due `delay` from now and returns how long it took to arrive.
fn one_way(tx: &mut dyn PacketIo, rx: &mut dyn PacketIo, delay: Duration) -> Duration {
    let mut batch = TxBatch::new(1, 1, 1200);
    batch.slot_mut()[..100].fill(7);
    let start = Instant::now();
    batch.commit_with(100, rx.local_addr(), tx.local_addr(), Some(start + delay), 0);
    assert!(tx.send(&mut batch).unwrap());
    let mut r = RxBatch::new(1, 2048);
    while r.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "datagram never arrived");
        rx.wait(Some(Duration::from_millis(20)), false).unwrap();
        rx.recv(&mut r).unwrap();
    }
    assert_eq!(r.get_mut(0).0, &[7; 100][..]);
    start.elapsed()
}

#[test]
fn kernel_pacing_sets_so_txtime_and_says_so() {
    let (tx, plain) = (open(true), open(false));
    assert!(tx.capabilities().kernel_pacing);
    assert!(!plain.capabilities().kernel_pacing);
}

#[test]
fn fq_holds_a_datagram_until_its_departure_time() {
    let Some(net) = NetnsPair::create() else { return };
    let ns = net.names[0].clone();
    let out = Command::new("tc").args(["-n", &ns, "qdisc", "add", "dev", "lo", "root", "fq"]).output().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown"), "tc qdisc add fq: {err}");
        eprintln!("SKIPPED: this kernel has no fq qdisc (sch_fq), so SO_TXTIME times cannot take effect here");
        return;
    }
    net.run_in(0, || {
        let (mut tx, mut rx) = (open(true), open(false));
        assert!(tx.capabilities().kernel_pacing && !rx.capabilities().kernel_pacing);
        let paced = one_way(&mut *tx, &mut *rx, Duration::from_millis(200));
        assert!(paced >= Duration::from_millis(190), "left at {paced:?}, before its time");
        let now = one_way(&mut *tx, &mut *rx, Duration::ZERO);
        assert!(now < Duration::from_millis(100), "an on-time datagram waited {now:?}");
    })
    .join()
    .unwrap();
}

/// Shard pacing: BBRv2 gives packets departure times (quiche 0.30 does not
/// pace CUBIC or Reno). Capped at 8 Mbit/s (1 MB/s), a packet is due about every
/// 1.2 ms, past the shard's 1 ms timer granularity, so the shard must hold
/// packets until their time: the transfer stays byte-exact and cannot beat
/// the cap (quiche allows 1.25 times it, plus an initial burst).
#[test]
fn the_shard_holds_packets_until_their_pacing_time() {
    const LEN: usize = 1 << 20;
    for kind in BackendKind::SOCKETS.iter().copied() {
        let server = common::server_with(common::localhost(), |e| {
            e.backend = kind;
            e.transport.congestion_control = stoq_core::CongestionControl::Bbr2;
            e.transport.max_pacing_rate = Some(8_000_000);
        });
        let client = common::client_with(common::localhost(), |e| e.backend = kind);
        let (c, s) = common::pair(&server, &client);
        let start = Instant::now();
        let writer = std::thread::spawn(move || {
            let mut send = s.open_uni().unwrap();
            send.write_all(&common::pattern(7, LEN)).unwrap();
            send.finish().unwrap();
            s
        });
        let got = c.accept_uni().unwrap().read_to_end(LEN + 1).unwrap();
        let took = start.elapsed();
        writer.join().unwrap();
        assert_eq!(common::first_difference(&got, &common::pattern(7, LEN)), None, "{kind}");
        let holds = server.stats().paced_holds;
        assert!(holds > 100, "{kind}: only {holds} packets were paced");
        assert!(took >= Duration::from_millis(600), "{kind}: 1 MiB in {took:?} beats a 1.25 MB/s cap");
    }
}
