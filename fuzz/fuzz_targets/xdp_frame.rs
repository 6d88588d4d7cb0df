//! `stoq_xdp::frame::parse_udp` on arbitrary bytes (what an AF_XDP RX
//! descriptor points at): never panics; a payload it returns lies inside the
//! frame; and writing the parsed addresses, ECN, VLAN and payload back with
//! `write_headers` gives a frame that parses to the same, with a UDP checksum
//! that verifies.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use stoq_xdp::frame::{self, L2, checksum::Checksum};

fuzz_target!(|data: &[u8]| {
    let Ok(rx) = frame::parse_udp(data) else { return };
    assert!(rx.payload.start <= rx.payload.end && rx.payload.end <= data.len(), "{rx:?}");
    assert!(rx.ecn <= 0b11 && rx.vlan.is_none_or(|v| v <= 0x0fff), "{rx:?}");
    let payload = &data[rx.payload.clone()];

    let l2 = L2 { src: rx.src_mac, dst: rx.dst_mac, vlan: rx.vlan };
    let ipv6 = frame::is_ipv6_frame(&rx.src, &rx.dst).expect("a parsed frame has one address family");
    assert_eq!(ipv6, rx.src.is_ipv6(), "parse_udp returned an IPv4-mapped address");
    let at = frame::headers_len(ipv6, rx.vlan.is_some());
    let mut tx = vec![0; at + payload.len()];
    tx[at..].copy_from_slice(payload);
    let len = frame::write_headers(&mut tx, &l2, rx.src, rx.dst, payload.len(), rx.ecn, 0)
        .expect("what parsed fits in a frame");
    assert_eq!(len, tx.len());

    let again = frame::parse_udp(&tx).expect("a written frame parses");
    assert_eq!((again.src, again.dst, again.ecn, again.vlan), (rx.src, rx.dst, rx.ecn, rx.vlan));
    assert_eq!((again.src_mac, again.dst_mac), (rx.src_mac, rx.dst_mac));
    assert_eq!(&tx[again.payload.clone()], payload);

    // Over the pseudo-header and the UDP header and payload, a correct
    // checksum sums to negative zero (RFC 768).
    let udp = &tx[again.payload.start - frame::UDP_HEADER_LEN..];
    let mut sum = Checksum::new();
    for addr in [again.src, again.dst] {
        match addr {
            SocketAddr::V4(a) => sum.add_bytes(&a.ip().octets()),
            SocketAddr::V6(a) => sum.add_bytes(&a.ip().octets()),
        };
    }
    sum.add_u16(17).add_u16(udp.len() as u16).add_bytes(udp);
    assert_eq!(sum.sum(), 0xffff, "UDP checksum of {tx:02x?}");
});
