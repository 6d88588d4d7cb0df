//! AF_XDP framing: what `stoq_xdp::frame` costs per datagram when the
//! kernel's IP and UDP layers are bypassed.
//!
//! Throughput is in bytes of the frame (parse, write) or of the summed data
//! (checksum). `write_headers` includes the software UDP checksum over the
//! payload, so it reads against `checksum/ones_sum` of the same size. The
//! baseline is `checksum/memcpy`: copying the same bytes, measured in the same
//! run, so the checksum is stated as a multiple of one copy of the data. Set
//! `GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4294967295` to see the
//! copy without `rep movsb` on VMs where that path is slow.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stoq_xdp::frame::{self, L2, MacAddr, checksum};

/// A full 1500-byte IPv6 packet's UDP payload (1500 - 40 - 8); the usual
/// QUIC datagram on an Ethernet path.
const PAYLOAD: usize = 1452;
/// The same on a 9000-byte jumbo-frame path.
const JUMBO_PAYLOAD: usize = 8952;

const L2_HDR: L2 = L2 { src: MacAddr([2, 0, 0, 0, 0, 1]), dst: MacAddr([2, 0, 0, 0, 0, 2]), vlan: None };

fn addrs() -> [(&'static str, SocketAddr, SocketAddr); 2] {
    [
        ("ipv4", "192.0.2.1:4433".parse().unwrap(), "198.51.100.7:50000".parse().unwrap()),
        ("ipv6", "[2001:db8::1]:4433".parse().unwrap(), "[2001:db8::2]:50000".parse().unwrap()),
    ]
}

/// Bytes that are not all alike, so nothing is special-cased.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7919 % 251) as u8).collect()
}

/// A frame with `PAYLOAD` bytes of payload, written as the TX path would.
fn frame(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let at = frame::headers_len(src.is_ipv6(), false);
    let mut f = vec![0; at + PAYLOAD];
    f[at..].copy_from_slice(&data(PAYLOAD));
    frame::write_headers(&mut f, &L2_HDR, src, dst, PAYLOAD, 0b10, 1).expect("frame fits");
    f
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame/parse_udp");
    for (name, src, dst) in addrs() {
        let f = frame(src, dst);
        g.throughput(Throughput::Bytes(f.len() as u64));
        g.bench_function(BenchmarkId::new(name, PAYLOAD), |b| {
            b.iter(|| frame::parse_udp(black_box(&f)).map(|rx| rx.payload.len()))
        });
    }
    g.finish();
}

fn bench_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame/write_headers");
    for (name, src, dst) in addrs() {
        let mut f = frame(src, dst);
        g.throughput(Throughput::Bytes(f.len() as u64));
        g.bench_function(BenchmarkId::new(name, PAYLOAD), |b| {
            b.iter(|| frame::write_headers(black_box(&mut f), &L2_HDR, src, dst, PAYLOAD, 0b10, 1))
        });
    }
    g.finish();
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame/checksum");
    for len in [PAYLOAD, JUMBO_PAYLOAD] {
        let src = data(len);
        let mut dst = vec![0; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("ones_sum", len), |b| b.iter(|| checksum::ones_sum(black_box(&src))));
        g.bench_function(BenchmarkId::new("memcpy", len), |b| {
            b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_write, bench_checksum);
criterion_main!(benches);
