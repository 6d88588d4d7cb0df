//! Send- and receive-batch assembly: the bookkeeping and copies between QUIC
//! and the packet backend.
//!
//! Throughput is in packet bytes. `tx/memcpy_baseline` copies the same bytes
//! into a flat buffer, the floor any batch assembly pays, so each `tx/*`
//! figure reads as a ratio against it.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stoq_core::cid::{self, CID_LEN};
use stoq_core::io::{RxBatch, RxMeta, TxBatch};

/// Packet size: a 1500-byte MTU less IPv6 (40) and UDP (8) headers.
const PACKET: usize = 1452;
/// Transmits per batch, as the shard sizes its send batch.
const TRANSMITS: usize = 64;
/// Segments per GSO transmit: the most 1452-byte packets under 65 000 bytes.
const GSO_SEGMENTS: usize = 44;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// Writes packets into `b` until it reports full, as the shard does between
/// sends, cycling through `peers`; returns how many it wrote.
fn fill(b: &mut TxBatch, template: &[u8], peers: &[SocketAddr], local: SocketAddr) -> usize {
    let mut n = 0;
    while !b.is_full() {
        b.slot_mut()[..template.len()].copy_from_slice(template);
        b.commit(template.len(), peers[n % peers.len()], local);
        n += 1;
    }
    n
}

/// Hands every pending transmit to a pretend backend and advances past them.
fn drain(b: &mut TxBatch) -> usize {
    let mut bytes = 0;
    let n = b.pending().len();
    for t in b.pending() {
        bytes += black_box(b.payload(t)).len();
    }
    b.advance(n);
    bytes
}

fn bench_tx(c: &mut Criterion) {
    let template: Vec<u8> = (0..PACKET).map(|i| i as u8).collect();
    let local = addr(4433);
    let one_peer = [addr(1)];
    let two_peers = [addr(1), addr(2)];
    let mut g = c.benchmark_group("tx");
    for (segments, label) in [(1, "no_gso"), (GSO_SEGMENTS, "gso44")] {
        for (peers, who) in [(&one_peer[..], "one_peer"), (&two_peers[..], "two_peers")] {
            let mut b = TxBatch::new(TRANSMITS, segments, PACKET);
            // A dry run tells how many packets one batch takes, so the
            // throughput counts what was really copied.
            let packets = fill(&mut b, &template, peers, local);
            drain(&mut b);
            assert!(b.is_empty());
            g.throughput(Throughput::Bytes((packets * PACKET) as u64));
            g.bench_function(BenchmarkId::new(label, who), |bench| {
                bench.iter(|| {
                    fill(&mut b, &template, peers, local);
                    drain(&mut b)
                })
            });
            if segments == GSO_SEGMENTS && peers.len() == 1 {
                let mut flat = vec![0u8; packets * PACKET];
                g.bench_function(BenchmarkId::new("memcpy_baseline", label), |bench| {
                    bench.iter(|| {
                        for slot in flat.chunks_exact_mut(PACKET) {
                            slot.copy_from_slice(black_box(&template));
                        }
                        black_box(&flat);
                    })
                });
            }
        }
    }
    g.finish();
}

fn bench_rx(c: &mut Criterion) {
    let mut template = vec![0x40];
    template.extend_from_slice(&[7; CID_LEN]);
    template.resize(PACKET, 0xa5);
    let meta = RxMeta { len: PACKET, src: addr(1), dst: addr(4433), segment_size: PACKET, ecn: 0 };
    let mut r = RxBatch::new(TRANSMITS, 1500);

    let mut g = c.benchmark_group("rx");
    g.throughput(Throughput::Bytes((TRANSMITS * PACKET) as u64));
    g.bench_function("fill_clear", |b| {
        b.iter(|| {
            while let Some(slot) = r.next_slot() {
                slot[..PACKET].copy_from_slice(black_box(&template));
                r.commit(meta);
            }
            let n = r.len();
            r.clear();
            n
        })
    });
    g.bench_function("fill_iterate_dcid", |b| {
        b.iter(|| {
            while let Some(slot) = r.next_slot() {
                slot[..PACKET].copy_from_slice(black_box(&template));
                r.commit(meta);
            }
            let mut sum = 0usize;
            for i in 0..r.len() {
                let (pkt, m) = r.get_mut(i);
                sum += m.len + cid::dcid(pkt, CID_LEN).map_or(0, |d| usize::from(d.dcid[0]));
            }
            r.clear();
            sum
        })
    });
    // One GRO super-buffer of 44 coalesced packets, split as the shard does.
    let mut gro = RxBatch::new(1, 65_535);
    let super_len = GSO_SEGMENTS * PACKET;
    g.throughput(Throughput::Bytes(super_len as u64));
    g.bench_function("gro_split_dcid", |b| {
        b.iter(|| {
            let slot = gro.next_slot().expect("one slot");
            for seg in slot[..super_len].chunks_exact_mut(PACKET) {
                seg.copy_from_slice(black_box(&template));
            }
            gro.commit(RxMeta { len: super_len, segment_size: PACKET, ..meta });
            let (buf, m) = gro.get_mut(0);
            let mut sum = 0usize;
            for pkt in buf.chunks_mut(m.segment_size) {
                sum += cid::dcid(pkt, CID_LEN).map_or(0, |d| usize::from(d.dcid[0]));
            }
            gro.clear();
            sum
        })
    });
    g.finish();
}

criterion_group!(benches, bench_tx, bench_rx);
criterion_main!(benches);
