//! Raw datagrams (no QUIC) through `XdpIo` on a veth pair, to a plain
//! kernel UDP socket on the other end: both receive paths (AF_XDP for what
//! the program redirects, the companion socket for IPv4 fragments, which it
//! passes) report the same addresses, and what the backend sends arrives
//! byte for byte. Needs root (CI is root).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stoq_core::io::{IoCounters, PacketIo, RxBatch, SocketOptions, TxBatch};
use stoq_testbed::NetnsPair;
use stoq_xdp::{XdpConfig, XdpIo};

/// Receives until one datagram arrives (or five seconds pass).
fn recv_one(io: &mut XdpIo, batch: &mut RxBatch) -> (Vec<u8>, SocketAddr, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        batch.clear();
        if io.recv(batch).unwrap() > 0 {
            let (buf, meta) = batch.get_mut(0);
            return (buf.to_vec(), meta.src, meta.dst);
        }
        io.wait(Some(Duration::from_millis(50)), false).unwrap();
    }
    panic!("nothing arrived");
}

#[test]
fn both_receive_paths_agree_and_sends_arrive_intact() {
    let Some(net) = NetnsPair::create() else { return };
    let counters = Arc::new(IoCounters::default());
    // Bound to the wildcard: the destination comes from the frame on the
    // AF_XDP path and from packet info on the kernel path.
    let cfg = XdpConfig::new(&net.links[0]);
    let mut io = net
        .run_scoped(0, || XdpIo::open(&cfg, "0.0.0.0:0".parse().unwrap(), &SocketOptions::default(), counters.clone()))
        .expect("AF_XDP on veth");
    let port = io.local_addr().port();
    let me = SocketAddr::new(net.addrs[0], port);
    let peer = net.run_scoped(1, || UdpSocket::bind((net.addrs[1], 0))).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut batch = RxBatch::new(8, 65_535);

    let small: Vec<u8> = (0..1200u32).map(|i| (i * 7) as u8).collect();
    peer.send_to(&small, me).unwrap();
    let (got, src, dst) = recv_one(&mut io, &mut batch);
    assert_eq!((got, src, dst), (small.clone(), peer.local_addr().unwrap(), me));
    assert_eq!(counters.rx_kernel_path.load(Ordering::Relaxed), 0, "a 1200-byte datagram takes the AF_XDP path");

    // 3000 bytes: two IPv4 fragments, which the program passes.
    let big: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
    peer.send_to(&big, me).unwrap();
    let (got, src, dst) = recv_one(&mut io, &mut batch);
    assert_eq!((got, src, dst), (big, peer.local_addr().unwrap(), me));
    assert_eq!(counters.rx_kernel_path.load(Ordering::Relaxed), 1, "fragments take the kernel path");

    // Sends: one datagram, then a run of equal ones as one transmit.
    let mut tx = TxBatch::new(4, 64, 1452);
    for (i, len) in [1452usize, 1452, 1452, 700].into_iter().enumerate() {
        tx.slot_mut()[..len].fill(i as u8 + 1);
        tx.commit(len, peer.local_addr().unwrap(), me);
    }
    assert!(io.send(&mut tx).unwrap(), "the backend took the whole batch");
    assert!(tx.is_empty());
    let mut buf = [0u8; 2048];
    for (i, len) in [1452usize, 1452, 1452, 700].into_iter().enumerate() {
        let (n, from) = peer.recv_from(&mut buf).expect("the datagram arrives");
        assert_eq!((n, from), (len, me), "datagram {i}");
        assert!(buf[..n].iter().all(|&b| b == i as u8 + 1), "datagram {i} intact");
    }
    assert_eq!(counters.tx_datagrams.load(Ordering::Relaxed), 4);
}

#[test]
fn every_receive_queue_gets_a_socket_and_nothing_is_lost_between_them() {
    // Two queues each way: the peer's transmit queue picks our receive
    // queue, so datagrams from several sockets spread over both.
    let Some(net) = NetnsPair::create_with_queues(2, 2) else { return };
    let counters = Arc::new(IoCounters::default());
    let cfg = XdpConfig::new(&net.links[0]);
    let mut io = net
        .run_scoped(0, || {
            XdpIo::open(&cfg, SocketAddr::new(net.addrs[0], 0), &SocketOptions::default(), counters.clone())
        })
        .expect("AF_XDP on a two-queue veth");
    assert_eq!(io.queues(), [(0, false), (1, false)], "one copy-mode socket per receive queue");
    let me = io.local_addr();
    let peers: Vec<UdpSocket> =
        (0..8).map(|_| net.run_scoped(1, || UdpSocket::bind((net.addrs[1], 0))).unwrap()).collect();
    let mut expected = std::collections::BTreeSet::new();
    for round in 0..25u8 {
        for (i, p) in peers.iter().enumerate() {
            let msg = [round, i as u8, 0xA5];
            p.send_to(&msg, me).unwrap();
            expected.insert(msg.to_vec());
        }
    }
    let mut batch = RxBatch::new(32, 65_535);
    let mut got = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < expected.len() && Instant::now() < deadline {
        batch.clear();
        for i in 0..io.recv(&mut batch).unwrap() {
            got.insert(batch.get_mut(i).0.to_vec());
        }
        io.wait(Some(Duration::from_millis(20)), false).unwrap();
    }
    assert_eq!(got, expected, "every datagram arrived once");
    assert_eq!(counters.rx_kernel_path.load(Ordering::Relaxed), 0, "all through the AF_XDP sockets");
}
