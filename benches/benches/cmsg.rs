//! Control messages per datagram: building the send side (GSO segment size,
//! source address, ECN, departure time) and parsing what `recvmmsg` or
//! io_uring returns (GRO size, destination address, TOS). Paid once per
//! send or receive message, so the figures read against the ~1-2 µs of a
//! `sendmmsg`/`recvmmsg` call they ride on.

#[cfg(target_os = "linux")]
mod linux {
    use std::hint::black_box;
    use std::net::IpAddr;

    use criterion::Criterion;
    use stoq_core::io::linux::cmsg::{self, Encoder};

    /// A receive control buffer as Linux lays it out (include/linux/socket.h):
    /// UDP_GRO, IP_PKTINFO and IP_TOS.
    fn kernel_control() -> Vec<u8> {
        let word = std::mem::size_of::<usize>();
        let mut out = Vec::new();
        for (level, ty, data) in [
            (libc::SOL_UDP, libc::UDP_GRO, 1452i32.to_ne_bytes().to_vec()),
            (libc::IPPROTO_IP, libc::IP_PKTINFO, vec![1, 0, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]),
            (libc::IPPROTO_IP, libc::IP_TOS, vec![0x02]),
        ] {
            let start = out.len();
            out.resize(start + cmsg::space(data.len()), 0);
            out[start..start + word].copy_from_slice(&cmsg::len(data.len()).to_ne_bytes());
            out[start + word..start + word + 4].copy_from_slice(&level.to_ne_bytes());
            out[start + word + 4..start + word + 8].copy_from_slice(&ty.to_ne_bytes());
            let hdr = cmsg::len(0);
            out[start + hdr..start + hdr + data.len()].copy_from_slice(&data);
        }
        out
    }

    pub fn bench_cmsg(c: &mut Criterion) {
        let mut g = c.benchmark_group("cmsg");
        let src: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let dst: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        let mut buf = [0u8; cmsg::SEND_SPACE];
        g.bench_function("encode_gso_src_ecn_txtime", |b| {
            b.iter(|| {
                let mut e = Encoder::new(&mut buf);
                e.gso_segment(black_box(1452));
                e.src_ip(black_box(src));
                e.ecn(dst, black_box(1));
                e.txtime(black_box(1_000_000));
                e.finish()
            })
        });
        g.bench_function("encode_gso_only", |b| {
            b.iter(|| {
                let mut e = Encoder::new(&mut buf);
                e.gso_segment(black_box(1452));
                e.finish()
            })
        });
        let control = kernel_control();
        assert_eq!(cmsg::decode(&control).gro_segment, Some(1452));
        g.bench_function("decode_gro_pktinfo_tos", |b| b.iter(|| cmsg::decode(black_box(&control))));
        g.finish();
    }
}

#[cfg(target_os = "linux")]
criterion::criterion_group!(benches, linux::bench_cmsg);
#[cfg(target_os = "linux")]
criterion::criterion_main!(benches);

/// The control-message codec is Linux-only.
#[cfg(not(target_os = "linux"))]
fn main() {}
