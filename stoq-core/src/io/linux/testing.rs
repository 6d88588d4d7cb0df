//! Tests shared by the Linux backends: numbered datagrams sent in GSO
//! batches and received, split and checked byte for byte; each backend runs
//! them all through [`backend_tests!`].

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::io::{IoCounters, PacketIo, RxBatch, RxMeta, TxBatch};

/// Datagram `seq` of `len` bytes: the sequence number, then a fill byte.
pub fn datagram(seq: u32, len: usize, out: &mut [u8]) {
    out[..4].copy_from_slice(&seq.to_be_bytes());
    out[4..len].fill(seq as u8);
}

/// Receives until `want` datagrams arrived (or `patience` passes without
/// any) and returns (their sequence numbers in arrival order, metas seen).
pub fn drain(
    rx: &mut dyn PacketIo,
    want: usize,
    patience: Duration,
    sizes: impl Fn(u32) -> usize,
) -> (Vec<u32>, Vec<RxMeta>) {
    let caps = rx.capabilities();
    let mut batch = RxBatch::new(caps.rx_batch, caps.rx_slot_size);
    let (mut seqs, mut metas) = (Vec::new(), Vec::new());
    let mut deadline = Instant::now() + patience;
    while seqs.len() < want && Instant::now() < deadline {
        batch.clear();
        if rx.recv(&mut batch).unwrap() == 0 {
            rx.wait(Some(Duration::from_millis(20)), false).unwrap();
            continue;
        }
        deadline = Instant::now() + patience;
        for i in 0..batch.len() {
            let (buf, meta) = batch.get_mut(i);
            metas.push(meta);
            for d in buf.chunks(meta.segment_size) {
                let seq = u32::from_be_bytes(d[..4].try_into().unwrap());
                assert_eq!(d.len(), sizes(seq), "datagram {seq} length");
                assert!(d[4..].iter().all(|&b| b == seq as u8), "datagram {seq} bytes");
                seqs.push(seq);
            }
        }
    }
    (seqs, metas)
}

/// Sends `n` datagrams in GSO-coalesced batches, each batch followed by
/// draining the receiver so its socket buffer never overflows.
pub fn exchange(tx: &mut dyn PacketIo, rx: &mut dyn PacketIo, n: u32, size: impl Fn(u32) -> usize + Copy) -> Vec<u32> {
    let dst = rx.local_addr();
    let caps = tx.capabilities();
    let mut batch = TxBatch::new(caps.tx_batch, caps.max_gso_segments.max(64), 1452);
    let mut got = Vec::new();
    let mut seq = 0;
    while seq < n {
        let first = seq;
        while seq < n && !batch.is_full() {
            let len = size(seq);
            datagram(seq, len, batch.slot_mut());
            batch.commit(len, dst, tx.local_addr());
            seq += 1;
        }
        while !tx.send(&mut batch).unwrap() {
            tx.wait(Some(Duration::from_millis(10)), true).unwrap();
        }
        got.extend(drain(rx, (seq - first) as usize, Duration::from_secs(2), size).0);
    }
    got
}

/// Opens a backend on `addr`: the backend, its counters, its socket.
pub type Open = fn(&str) -> (Box<dyn PacketIo>, Arc<IoCounters>, RawFd);

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// 20,000 datagrams in GSO batches arrive once each, in order, intact, in
/// far fewer send calls than datagrams.
pub fn gso_and_gro_carry_every_datagram_exactly_once(open: Open) {
    let ((mut tx, tc, _), (mut rx, rc, _)) = (open("127.0.0.1:0"), open("127.0.0.1:0"));
    assert!(tx.capabilities().max_gso_segments > 1, "this kernel has UDP GSO (4.18+)");
    // Runs of equal sizes (GSO) broken by short tails and size changes.
    let size = |s: u32| if s % 17 == 16 { 100 + (s as usize % 900) } else { 1452 };
    let got = exchange(&mut *tx, &mut *rx, 20_000, size);
    assert_eq!(got, (0..20_000).collect::<Vec<_>>(), "in order, none lost or repeated");
    assert_eq!((load(&tc.tx_datagrams), load(&rc.rx_datagrams)), (20_000, 20_000));
    assert_eq!(load(&tc.tx_errors) + load(&rc.rx_errors), 0);
    assert!(load(&tc.tx_syscalls) * 20 < 20_000, "{} send calls", load(&tc.tx_syscalls));
    assert_eq!(load(&tc.gso_fallbacks), 0);
}

/// With UDP checksums off (SO_NO_CHECK) the kernel refuses GSO sends with
/// EINVAL, as a device without checksum offload does with EIO: the
/// datagrams are resent one by one and GSO stays off.
pub fn a_refused_gso_send_falls_back_without_losing_datagrams(open: Open) {
    let ((mut tx, tc, fd), (mut rx, _, _)) = (open("127.0.0.1:0"), open("127.0.0.1:0"));
    super::sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1 as libc::c_int).unwrap();
    let got = exchange(&mut *tx, &mut *rx, 5_000, |_| 1200);
    assert_eq!(got, (0..5_000).collect::<Vec<_>>());
    assert_eq!((load(&tc.gso_fallbacks), load(&tc.tx_datagrams)), (1, 5_000));
    assert_eq!(tx.capabilities().max_gso_segments, 1, "GSO stays off on this socket");
}

/// ECN marks cross both ways, and a wildcard socket learns each datagram's
/// exact destination.
pub fn ecn_and_destination_address_are_reported(open: Open) {
    let ((mut tx, _, _), (mut rx, rc, _)) = (open("127.0.0.1:0"), open("0.0.0.0:0"));
    let dst = SocketAddr::new([127, 0, 0, 1].into(), rx.local_addr().port());
    let mut batch = TxBatch::new(4, 1, 1452);
    for (seq, ecn) in [(0u32, 0b10u8), (1, 0b11)] {
        datagram(seq, 64, batch.slot_mut());
        batch.commit_with(64, dst, tx.local_addr(), None, ecn);
    }
    assert!(tx.send(&mut batch).unwrap());
    let (seqs, metas) = drain(&mut *rx, 2, Duration::from_secs(2), |_| 64);
    assert_eq!(seqs, [0, 1]);
    assert_eq!(metas.iter().map(|m| m.ecn).collect::<Vec<_>>(), [0b10, 0b11]);
    assert!(metas.iter().all(|m| m.dst == dst && m.src == tx.local_addr()), "{metas:?}");
    assert_eq!(load(&rc.rx_ecn_ce), 1);
}

/// A wildcard socket sends from the source address it is told (packet
/// info): 127.0.0.2 is on loopback.
pub fn a_wildcard_socket_sends_from_the_address_it_is_told(open: Open) {
    let ((mut tx, _, _), (mut rx, _, _)) = (open("0.0.0.0:0"), open("127.0.0.1:0"));
    let src = SocketAddr::new([127, 0, 0, 2].into(), tx.local_addr().port());
    let mut batch = TxBatch::new(4, 1, 1452);
    datagram(7, 100, batch.slot_mut());
    batch.commit(100, rx.local_addr(), src);
    assert!(tx.send(&mut batch).unwrap());
    let (_, metas) = drain(&mut *rx, 1, Duration::from_secs(2), |_| 100);
    assert_eq!(metas[0].src, src);
}

/// A message the kernel refuses (an IPv6 destination from an IPv4 socket:
/// EAFNOSUPPORT) is dropped and counted; the ones after it still go out.
pub fn a_send_to_an_unreachable_peer_is_dropped_and_the_rest_go_out(open: Open) {
    let ((mut tx, tc, _), (mut rx, _, _)) = (open("127.0.0.1:0"), open("127.0.0.1:0"));
    let mut batch = TxBatch::new(4, 1, 1452);
    for (seq, dst) in [(0, rx.local_addr()), (1, "[::1]:9".parse().unwrap()), (2, rx.local_addr())] {
        datagram(seq, 100, batch.slot_mut());
        batch.commit(100, dst, tx.local_addr());
    }
    assert!(tx.send(&mut batch).unwrap());
    assert!(batch.is_empty());
    let (seqs, _) = drain(&mut *rx, 2, Duration::from_secs(2), |_| 100);
    assert_eq!(seqs, [0, 2]);
    assert_eq!((load(&tc.tx_errors), load(&tc.tx_datagrams)), (1, 2));
}

/// Runs every shared test against one backend.
macro_rules! backend_tests {
    ($open:expr) => {
        #[test]
        fn gso_and_gro_carry_every_datagram_exactly_once() {
            crate::io::linux::testing::gso_and_gro_carry_every_datagram_exactly_once($open);
        }
        #[test]
        fn a_refused_gso_send_falls_back_without_losing_datagrams() {
            crate::io::linux::testing::a_refused_gso_send_falls_back_without_losing_datagrams($open);
        }
        #[test]
        fn ecn_and_destination_address_are_reported() {
            crate::io::linux::testing::ecn_and_destination_address_are_reported($open);
        }
        #[test]
        fn a_wildcard_socket_sends_from_the_address_it_is_told() {
            crate::io::linux::testing::a_wildcard_socket_sends_from_the_address_it_is_told($open);
        }
        #[test]
        fn a_send_to_an_unreachable_peer_is_dropped_and_the_rest_go_out() {
            crate::io::linux::testing::a_send_to_an_unreachable_peer_is_dropped_and_the_rest_go_out($open);
        }
    };
}
pub(crate) use backend_tests;
