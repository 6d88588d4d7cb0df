//! `TxBatch` fullness as the shard relies on it: fill until `is_full`, then
//! send. A backend sized for `max_transmits` must never be handed more.

use std::net::SocketAddr;

use stoq_core::io::TxBatch;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

fn fill(b: &mut TxBatch, peers: &[SocketAddr]) -> usize {
    let mut n = 0;
    while !b.is_full() {
        b.slot_mut()[..1452].fill(n as u8);
        b.commit(1452, peers[n % peers.len()], addr(4433));
        n += 1;
    }
    n
}

#[test]
fn one_peer_with_gso_fills_every_transmit_but_the_last() {
    let mut b = TxBatch::new(64, 44, 1452);
    // The last transmit stays a single packet: at the transmit limit the
    // batch counts as full, because the next packet might be for another
    // peer and it is written before its peer is known.
    assert_eq!(fill(&mut b, &[addr(1)]), 63 * 44 + 1);
    assert_eq!(b.pending().len(), 64);
    assert!(b.pending()[..63].iter().all(|t| t.segments == 44));
}

#[test]
fn without_gso_a_batch_is_max_transmits_packets_whatever_the_peers() {
    let mut b = TxBatch::new(64, 1, 1452);
    assert_eq!(fill(&mut b, &[addr(1), addr(2)]), 64);
    assert_eq!(b.pending().len(), 64);
}

#[test]
fn alternating_peers_with_gso_never_exceed_max_transmits() {
    let mut b = TxBatch::new(64, 44, 1452);
    fill(&mut b, &[addr(1), addr(2)]);
    assert!(b.pending().len() <= 64, "{} transmits in a batch of 64", b.pending().len());
}
