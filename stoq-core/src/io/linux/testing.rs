//! Test helpers shared by the Linux backends' tests: numbered datagrams
//! sent in GSO batches and received, split and checked byte for byte.

use std::time::{Duration, Instant};

use crate::io::{PacketIo, RxBatch, RxMeta, TxBatch};

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
