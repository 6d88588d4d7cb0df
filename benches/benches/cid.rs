//! Destination-CID parsing and routing: the work a shard does for every
//! received datagram before QUIC sees it.
//!
//! Throughput is in packets (elements). `route/dcid_only` parses the same
//! packets as the lookups without touching the map, so the cost of the
//! `CidKey` + `HashMap` step reads as the difference from that baseline.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stoq_core::cid::{self, CID_LEN, CidGenerator, CidKey};

/// Connections in the routing table.
const CONNECTIONS: usize = 10_000;
/// Packets routed per iteration.
const PACKETS: usize = 1024;
/// Bytes kept of each routed packet: `dcid` only reads the header.
const HEADER_BYTES: usize = 64;

/// A 1-RTT packet (RFC 9000 §17.3.1): flags, DCID, then protected bytes.
fn short_header(dcid: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![0x40];
    p.extend_from_slice(dcid);
    p.resize(len, 0xa5);
    p
}

/// A v1 Initial (RFC 9000 §17.2.2): flags, version, DCID, SCID, empty token,
/// length, then protected bytes.
fn long_header(dcid: &[u8], scid: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![0xc0, 0, 0, 0, 1, dcid.len() as u8];
    p.extend_from_slice(dcid);
    p.push(scid.len() as u8);
    p.extend_from_slice(scid);
    p.push(0); // token length
    let rest = (len - p.len() - 2) as u16;
    p.extend_from_slice(&(0x4000 | rest).to_be_bytes()); // 2-byte varint length
    p.resize(len, 0xa5);
    p
}

fn bench_dcid(c: &mut Criterion) {
    let mut g = c.benchmark_group("cid/dcid");
    g.throughput(Throughput::Elements(1));
    let short = short_header(&[7; CID_LEN], 1200);
    let long = long_header(&[7; CID_LEN], &[9; CID_LEN], 1200);
    g.bench_function("short_header", |b| b.iter(|| cid::dcid(black_box(&short), CID_LEN).map(|d| d.dcid.len())));
    g.bench_function("long_header", |b| b.iter(|| cid::dcid(black_box(&long), CID_LEN).map(|d| d.dcid.len())));
    g.finish();
}

fn packets_for(cids: impl Iterator<Item = [u8; CID_LEN]>) -> Vec<[u8; HEADER_BYTES]> {
    cids.map(|c| short_header(&c, HEADER_BYTES).try_into().expect("HEADER_BYTES long")).collect()
}

fn route(routes: &HashMap<CidKey, usize>, pkt: &[u8]) -> Option<usize> {
    let d = cid::dcid(pkt, CID_LEN).ok()?;
    routes.get(&CidKey::new(d.dcid)?).copied()
}

fn bench_route(c: &mut Criterion) {
    let mut generator = CidGenerator::new(3);
    let ids: Vec<[u8; CID_LEN]> = (0..CONNECTIONS).map(|_| generator.generate()).collect();
    let routes: HashMap<CidKey, usize> =
        ids.iter().enumerate().map(|(i, id)| (CidKey::new(id).expect("CID_LEN <= 20"), i)).collect();
    assert_eq!(routes.len(), CONNECTIONS, "generated connection IDs collided");

    // Spread the hits over the whole table (7919 is prime, so coprime with
    // 10 000) rather than hammering one cache-hot entry.
    let hits = packets_for((0..PACKETS).map(|i| ids[i * 7919 % CONNECTIONS]));
    let mut stranger = CidGenerator::new(3);
    let misses = packets_for(
        std::iter::repeat_with(|| stranger.generate())
            .filter(|id| !routes.contains_key(&CidKey::new(id).expect("CID_LEN <= 20")))
            .take(PACKETS),
    );

    let mut g = c.benchmark_group("cid/route_10k");
    g.throughput(Throughput::Elements(PACKETS as u64));
    g.bench_function("dcid_only", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in black_box(&hits) {
                n += cid::dcid(p, CID_LEN).map_or(0, |d| usize::from(d.dcid[0]));
            }
            n
        })
    });
    g.bench_function("hit", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in black_box(&hits) {
                n += route(&routes, p).expect("every hit packet routes");
            }
            n
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in black_box(&misses) {
                n += usize::from(route(&routes, p).is_none());
            }
            n
        })
    });
    g.finish();
}

fn bench_generate(c: &mut Criterion) {
    let mut g = c.benchmark_group("cid/generate");
    g.throughput(Throughput::Elements(1));
    let mut generator = CidGenerator::new(1);
    g.bench_function("generate", |b| b.iter(|| generator.generate()));
    g.finish();
}

criterion_group!(benches, bench_dcid, bench_route, bench_generate);
criterion_main!(benches);
