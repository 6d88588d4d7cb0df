use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::checksum::{self, Checksum, ones_sum};
use super::*;

/// xorshift64* (Vigna 2016): small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// RFC 1071 §1 written out word by word, end-around carry at every step.
fn reference_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
        if sum > 0xffff {
            sum -= 0xffff;
        }
    }
    sum as u16
}

const L2_PLAIN: L2 = L2 { src: MacAddr([2, 0, 0, 0, 0, 1]), dst: MacAddr([2, 0, 0, 0, 0, 2]), vlan: None };
const L2_TAGGED: L2 = L2 { vlan: Some(42), ..L2_PLAIN };

fn v4() -> (SocketAddr, SocketAddr) {
    ("192.0.2.1:4433".parse().unwrap(), "198.51.100.7:50000".parse().unwrap())
}

fn v6() -> (SocketAddr, SocketAddr) {
    ("[2001:db8::1]:4433".parse().unwrap(), "[2001:db8::2]:443".parse().unwrap())
}

/// A frame as the transmit path builds it: payload in place, then headers.
fn build(l2: &L2, src: SocketAddr, dst: SocketAddr, payload: &[u8], ecn: u8) -> Vec<u8> {
    let at = headers_len(is_ipv6_frame(&src, &dst).unwrap(), l2.vlan.is_some());
    let mut frame = vec![0xee; at + payload.len() + 7]; // spare bytes must stay untouched
    frame[at..at + payload.len()].copy_from_slice(payload);
    let len = write_headers(&mut frame, l2, src, dst, payload.len(), ecn, 0x1234).unwrap();
    assert_eq!(len, at + payload.len());
    assert_eq!(frame[len..], [0xee; 7]);
    frame.truncate(len);
    frame
}

/// The UDP checksum checked from scratch with the reference sum: over the
/// pseudo-header, header and payload, a correct checksum sums to 0xffff.
fn udp_checksum_verifies(frame: &[u8], rx: &UdpFrame) -> bool {
    let udp = &frame[rx.payload.start - UDP_HEADER_LEN..rx.payload.end];
    let mut pseudo = Vec::new();
    for addr in [rx.src, rx.dst] {
        match addr {
            SocketAddr::V4(a) => pseudo.extend_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => pseudo.extend_from_slice(&a.ip().octets()),
        }
    }
    pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(udp);
    udp[6..8] != [0, 0] && reference_sum(&pseudo) == 0xffff
}

/// Recomputes the IPv4 header checksum after a test edited the header.
fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    frame[l3 + 10..l3 + 12].fill(0);
    let c = !reference_sum(&frame[l3..l3 + ihl]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

// ---- checksum ----

#[test]
fn checksum_matches_reference_at_every_length_and_offset() {
    let mut rng = Rng(0x5eed_f001);
    let data = rng.bytes(2003);
    for len in 0..=2000 {
        for offset in 0..=3 {
            let d = &data[offset..offset + len];
            assert_eq!(ones_sum(d), reference_sum(d), "length {len} at offset {offset}");
            assert_eq!(checksum::checksum(d), !reference_sum(d), "length {len} at offset {offset}");
        }
    }
}

#[test]
fn checksum_of_all_ones_and_zeros() {
    for len in [0, 1, 2, 7, 8, 9, 1452, 8952] {
        assert_eq!(ones_sum(&vec![0; len]), 0, "{len} zeros");
        let ones = vec![0xff; len];
        assert_eq!(ones_sum(&ones), reference_sum(&ones), "{len} 0xff bytes");
    }
}

#[test]
fn checksum_in_pieces_of_odd_lengths() {
    let mut rng = Rng(0x5eed_f002);
    for case in 0..2000 {
        let len = rng.below(300);
        let data = rng.bytes(len);
        let want = reference_sum(&data);
        let mut sum = Checksum::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(rng.below(rest.len().min(17)) + 1);
            match *piece {
                // Also through the word helpers, at odd and even positions.
                [a, b] if case % 2 == 0 => sum.add_u16(u16::from_be_bytes([a, b])),
                [a, b, c, d] if case % 2 == 0 => sum.add_u32(u32::from_be_bytes([a, b, c, d])),
                _ => sum.add_bytes(piece),
            };
            rest = tail;
        }
        assert_eq!(sum.sum(), want, "case {case}: {data:02x?}");
        assert_eq!(sum.finish(), !want);
    }
}

#[test]
fn checksum_known_vectors() {
    // RFC 1071 §3: the example bytes sum to ddf2.
    assert_eq!(ones_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
    // A captured IPv4 header (UDP, 192.168.0.1 -> 192.168.0.199) whose
    // checksum field holds b861.
    let mut header = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];
    assert_eq!(checksum::checksum(&header), 0, "a correct header checks to 0");
    header[10..12].fill(0);
    assert_eq!(checksum::checksum(&header), 0xb861);
}

// ---- hand-built frames (RFC 791, RFC 8200, RFC 768 layouts) ----

/// An IPv4 frame written byte by byte; both checksums computed separately
/// (Python, with the RFC 1071 definition).
const HAND_IPV4: [u8; 47] = [
    2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet: dst, src, IPv4
    0x45, 0x02, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00, // version/IHL, ECN 2, length 33, id, DF
    0x40, 0x11, 0x3c, 0x5a, 192, 0, 2, 1, 198, 51, 100, 7, // TTL 64, UDP, checksum, addresses
    0x11, 0x51, 0xc3, 0x50, 0x00, 0x0d, 0xfb, 0x23, // UDP 4433 -> 50000, length 13, checksum
    b'h', b'e', b'l', b'l', b'o',
];

/// An IPv6 frame written byte by byte, UDP checksum computed separately.
const HAND_IPV6: [u8; 67] = [
    2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, // Ethernet: dst, src, IPv6
    0x60, 0x10, 0x00, 0x00, 0x00, 0x0d, 0x11, 0x40, // version 6, ECN 1, payload 13, UDP, hop limit 64
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // 2001:db8::2
    0x11, 0x51, 0x01, 0xbb, 0x00, 0x0d, 0x4d, 0x81, // UDP 4433 -> 443, length 13, checksum
    b'h', b'e', b'l', b'l', b'o',
];

#[test]
fn writes_the_hand_built_frames() {
    let (src, dst) = v4();
    assert_eq!(build(&L2_PLAIN, src, dst, b"hello", 2), HAND_IPV4);
    let (src, dst) = v6();
    assert_eq!(build(&L2_PLAIN, src, dst, b"hello", 1), HAND_IPV6);
}

#[test]
fn parses_the_hand_built_frames() {
    let rx = parse_udp(&HAND_IPV4).unwrap();
    assert_eq!((rx.src, rx.dst, rx.ecn, rx.vlan), (v4().0, v4().1, 2, None));
    assert_eq!((rx.src_mac, rx.dst_mac), (L2_PLAIN.src, L2_PLAIN.dst));
    assert_eq!(rx.payload(&HAND_IPV4), b"hello");
    assert!(udp_checksum_verifies(&HAND_IPV4, &rx));
    let rx = parse_udp(&HAND_IPV6).unwrap();
    assert_eq!((rx.src, rx.dst, rx.ecn, rx.vlan), (v6().0, v6().1, 1, None));
    assert_eq!(rx.payload(&HAND_IPV6), b"hello");
    assert!(udp_checksum_verifies(&HAND_IPV6, &rx));
}

// ---- round trips ----

#[test]
fn round_trips() {
    let mut rng = Rng(0x5eed_f003);
    let mapped = |a: SocketAddr| match a {
        SocketAddr::V4(a) => SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()),
        other => other,
    };
    let (s4, d4) = v4();
    let (s6, d6) = v6();
    // (src, dst as given, what parse_udp reports)
    let pairs = [(s4, d4, s4, d4), (s6, d6, s6, d6), (mapped(s4), mapped(d4), s4, d4), (s4, mapped(d4), s4, d4)];
    for (src, dst, want_src, want_dst) in pairs {
        for l2 in [L2_PLAIN, L2_TAGGED, L2 { vlan: Some(0x0fff), ..L2_PLAIN }] {
            for ecn in 0..=3 {
                for len in [0, 1, 2, 3, 1200, 1452, 8952] {
                    let payload = rng.bytes(len);
                    let frame = build(&l2, src, dst, &payload, ecn);
                    let rx = parse_udp(&frame).unwrap_or_else(|e| panic!("{src} -> {dst}, {len} bytes: {e}"));
                    assert_eq!((rx.src, rx.dst, rx.ecn, rx.vlan), (want_src, want_dst, ecn, l2.vlan));
                    assert_eq!((rx.src_mac, rx.dst_mac), (l2.src, l2.dst));
                    assert_eq!(rx.payload.end, frame.len());
                    assert_eq!(rx.payload(&frame), payload);
                    assert!(udp_checksum_verifies(&frame, &rx), "{src} -> {dst}, {len} bytes");
                }
            }
        }
    }
}

#[test]
fn round_trips_the_largest_payloads() {
    let mut rng = Rng(0x5eed_f004);
    for ((src, dst), max) in [(v4(), 65_507), (v6(), 65_527)] {
        let payload = rng.bytes(max);
        let frame = build(&L2_TAGGED, src, dst, &payload, 3);
        let rx = parse_udp(&frame).unwrap();
        assert_eq!(rx.payload(&frame), payload);
        assert!(udp_checksum_verifies(&frame, &rx));
        let mut buf = vec![0; frame.len() + 1];
        assert_eq!(
            write_headers(&mut buf, &L2_TAGGED, src, dst, max + 1, 0, 0),
            Err(WriteError::PayloadTooLarge { len: max + 1, max })
        );
    }
}

#[test]
fn a_computed_zero_udp_checksum_is_sent_as_ffff() {
    // Choose the last two payload bytes so that the sum comes to 0xffff:
    // the checksum then computes to 0, which UDP sends as 0xffff.
    let (src, dst) = v4();
    let mut payload = *b"quic\0\0";
    let first = build(&L2_PLAIN, src, dst, &payload, 0);
    let sum = !u16::from_be_bytes([first[40], first[41]]);
    payload[4..].copy_from_slice(&(!sum).to_be_bytes());
    let frame = build(&L2_PLAIN, src, dst, &payload, 0);
    assert_eq!(frame[40..42], [0xff, 0xff]);
    assert!(udp_checksum_verifies(&frame, &parse_udp(&frame).unwrap()));
}

// ---- what parse_udp accepts and refuses ----

#[test]
fn every_prefix_of_a_valid_frame_is_an_error() {
    let (s4, d4) = v4();
    let (s6, d6) = v6();
    let mut frames = vec![HAND_IPV4.to_vec(), HAND_IPV6.to_vec()];
    for l2 in [L2_PLAIN, L2_TAGGED] {
        frames.push(build(&l2, s4, d4, &[7; 100], 1));
        frames.push(build(&l2, s6, d6, &[7; 100], 1));
    }
    frames.push(with_ipv4_options(&HAND_IPV4, &[1, 1, 1, 0, 0x94, 4, 0, 0]));
    for frame in frames {
        assert!(parse_udp(&frame).is_ok());
        for n in 0..frame.len() {
            assert!(parse_udp(&frame[..n]).is_err(), "prefix of {n} of {frame:02x?}");
        }
    }
}

/// `frame` (untagged IPv4) with `options` inserted after the fixed header.
fn with_ipv4_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f.splice(34..34, options.iter().copied());
    f[14] = 0x40 | (5 + options.len() / 4) as u8;
    let total = u16::from_be_bytes([f[16], f[17]]) + options.len() as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut f, 14);
    f
}

#[test]
fn ipv4_options_are_skipped() {
    for options in [&[1u8, 1, 1, 0][..], &[0x94, 4, 0, 0], &[1; 40]] {
        let frame = with_ipv4_options(&HAND_IPV4, options);
        let rx = parse_udp(&frame).unwrap();
        assert_eq!(rx.payload.start, 42 + options.len());
        assert_eq!(rx.payload(&frame), b"hello");
        assert_eq!((rx.src, rx.dst), v4());
    }
}

#[test]
fn ethernet_padding_is_ignored() {
    // A 47-byte frame padded to the 60-byte Ethernet minimum.
    let mut frame = HAND_IPV4.to_vec();
    frame.resize(60, 0);
    assert_eq!(parse_udp(&frame).unwrap().payload, 42..47);
    let mut frame = HAND_IPV6.to_vec();
    frame.resize(100, 0xaa);
    assert_eq!(parse_udp(&frame).unwrap().payload, 62..67);
}

#[test]
fn udp_surplus_inside_the_ip_payload_is_ignored() {
    // UDP length 10 of an IP payload of 13: two payload bytes.
    let mut frame = HAND_IPV4;
    frame[38..40].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(parse_udp(&frame).unwrap().payload(&frame), b"he");
}

#[test]
fn both_vlan_tag_types_are_read() {
    let (src, dst) = v4();
    let mut frame = build(&L2 { vlan: Some(0x123), ..L2_PLAIN }, src, dst, b"x", 0);
    assert_eq!(frame[12..16], [0x81, 0x00, 0x01, 0x23]);
    frame[12..14].copy_from_slice(&[0x88, 0xa8]);
    frame[14] |= 0xe0; // priority 7: not part of the VLAN ID
    let rx = parse_udp(&frame).unwrap();
    assert_eq!((rx.vlan, rx.payload(&frame)), (Some(0x123), &b"x"[..]));
}

/// Applies `edit` to a copy of `frame` and parses it.
fn parse_edited(frame: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Result<UdpFrame, FrameError> {
    let mut f = frame.to_vec();
    edit(&mut f);
    parse_udp(&f)
}

#[test]
fn ethernet_and_ip_errors() {
    let v4 = &HAND_IPV4[..];
    let v6 = &HAND_IPV6[..];
    assert_eq!(parse_edited(v4, |f| f[12..14].copy_from_slice(&[0x08, 0x06])), Err(FrameError::NotIp(0x0806)));
    // A second VLAN tag is not looked through.
    let double_tag = |f: &mut Vec<u8>| {
        f.splice(12..12, [0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2]);
    };
    assert_eq!(parse_edited(v4, double_tag), Err(FrameError::NotIp(0x8100)));
    assert_eq!(parse_edited(v4, |f| f[14] = 0x65), Err(FrameError::BadIpVersion { expected: 4, found: 6 }));
    assert_eq!(parse_edited(v6, |f| f[14] = 0x45), Err(FrameError::BadIpVersion { expected: 6, found: 4 }));
    assert!(matches!(
        parse_edited(v4, |f| f[12..14].copy_from_slice(&[0x86, 0xdd])),
        Err(FrameError::Truncated { .. })
    ));
}

#[test]
fn ipv4_errors() {
    let frame = &HAND_IPV4[..];
    let fixed = |edit: fn(&mut Vec<u8>)| {
        parse_edited(frame, |f| {
            edit(f);
            fix_ipv4_checksum(f, 14);
        })
    };
    for ihl in 0..5 {
        let mut f = frame.to_vec();
        f[14] = 0x40 | ihl;
        assert!(matches!(parse_udp(&f), Err(FrameError::BadLength { .. })), "IHL {ihl}");
    }
    assert_eq!(parse_edited(frame, |f| f[24] ^= 1), Err(FrameError::BadIpv4Checksum));
    assert_eq!(parse_edited(frame, |f| f[33] ^= 0x80), Err(FrameError::BadIpv4Checksum));
    // An IHL of 15 in a frame that has no 60-byte header.
    assert_eq!(parse_edited(frame, |f| f[14] = 0x4f), Err(FrameError::Truncated { what: "IPv4 options" }));
    // More fragments; a fragment offset; DF alone and the reserved bit are fine.
    assert_eq!(fixed(|f| f[20] = 0x20), Err(FrameError::Fragment));
    assert_eq!(fixed(|f| f[20..22].copy_from_slice(&[0x00, 0xb9])), Err(FrameError::Fragment));
    assert!(fixed(|f| f[20] = 0x80).is_ok());
    assert_eq!(fixed(|f| f[23] = 6), Err(FrameError::NotUdp(6)));
    assert!(matches!(fixed(|f| f[17] = 19), Err(FrameError::BadLength { .. })));
    assert_eq!(fixed(|f| f[17] = 34), Err(FrameError::Truncated { what: "IPv4 packet" }));
    // The IP packet ends inside the UDP header.
    assert_eq!(fixed(|f| f[17] = 27), Err(FrameError::Truncated { what: "UDP header" }));
}

#[test]
fn ipv6_errors() {
    let frame = &HAND_IPV6[..];
    for next in [0, 43, 60, 50, 51, 135] {
        assert_eq!(parse_edited(frame, |f| f[20] = next), Err(FrameError::Ipv6ExtensionHeader(next)), "{next}");
    }
    assert_eq!(parse_edited(frame, |f| f[20] = 44), Err(FrameError::Fragment));
    assert_eq!(parse_edited(frame, |f| f[20] = 58), Err(FrameError::NotUdp(58)));
    assert_eq!(parse_edited(frame, |f| f[19] = 14), Err(FrameError::Truncated { what: "IPv6 payload" }));
    let mapped = Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped().octets();
    assert_eq!(parse_edited(frame, |f| f[22..38].copy_from_slice(&mapped)), Err(FrameError::Ipv4MappedAddress));
    assert_eq!(parse_edited(frame, |f| f[38..54].copy_from_slice(&mapped)), Err(FrameError::Ipv4MappedAddress));
    // IPv4-compatible (deprecated, not mapped) addresses are ordinary IPv6.
    let compat = Ipv6Addr::from_bits(0xc000_0209).octets();
    assert!(parse_edited(frame, |f| f[22..38].copy_from_slice(&compat)).is_ok());
}

#[test]
fn udp_length_errors() {
    for (frame, at) in [(&HAND_IPV4[..], 38), (&HAND_IPV6[..], 58)] {
        for (len, ok) in [(0, false), (7, false), (8, true), (13, true), (14, false), (0xffff, false)] {
            let got = parse_edited(frame, |f| f[at..at + 2].copy_from_slice(&u16::to_be_bytes(len)));
            assert_eq!(got.is_ok(), ok, "UDP length {len}: {got:?}");
            if !ok {
                assert!(matches!(got, Err(FrameError::BadLength { .. })), "UDP length {len}: {got:?}");
            }
        }
    }
}

#[test]
fn mutated_frames_never_panic_nor_escape_the_frame() {
    let mut rng = Rng(0x5eed_f005);
    let (src, dst) = v6();
    let bases = [HAND_IPV4.to_vec(), HAND_IPV6.to_vec(), build(&L2_TAGGED, src, dst, &[1; 64], 2)];
    let mut ok = 0;
    for case in 0..100_000 {
        let mut f = bases[case % bases.len()].clone();
        for _ in 0..=rng.below(3) {
            let i = rng.below(f.len());
            f[i] = rng.next() as u8;
        }
        f.truncate(f.len() - rng.below(4));
        if let Ok(rx) = parse_udp(&f) {
            assert!(rx.payload.start <= rx.payload.end && rx.payload.end <= f.len(), "{f:02x?}");
            assert!(rx.ecn <= 3 && rx.vlan.is_none_or(|v| v <= 0x0fff));
            ok += 1;
        }
    }
    assert!(ok > 1_000, "only {ok} mutated frames parsed: the test exercises little");
}

// ---- what write_headers refuses ----

#[test]
fn write_errors() {
    let (s4, d4) = v4();
    let (s6, d6) = v6();
    let mut buf = [0u8; 200];
    let mut write = |src, dst, len, l2: &L2, ecn| write_headers(&mut buf, l2, src, dst, len, ecn, 0);
    for (src, dst) in [(s4, d6), (s6, d4)] {
        assert_eq!(write(src, dst, 10, &L2_PLAIN, 0), Err(WriteError::FamilyMismatch { src, dst }));
        assert_eq!(is_ipv6_frame(&src, &dst), Err(WriteError::FamilyMismatch { src, dst }));
    }
    let mapped = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().into(), 1);
    assert!(matches!(write(mapped, d6, 10, &L2_PLAIN, 0), Err(WriteError::FamilyMismatch { .. })));
    assert_eq!(is_ipv6_frame(&mapped, &d4), Ok(false));
    assert_eq!(is_ipv6_frame(&s6, &d6), Ok(true));

    // 200 bytes hold exactly 66 + 134.
    assert_eq!(write(s6, d6, 134, &L2_TAGGED, 0), Ok(200));
    assert_eq!(write(s6, d6, 135, &L2_TAGGED, 0), Err(WriteError::BufferTooSmall { need: 201, have: 200 }));
    assert_eq!(write(s4, d4, 158, &L2_PLAIN, 0), Ok(200));
    assert_eq!(write(s4, d4, 159, &L2_PLAIN, 0), Err(WriteError::BufferTooSmall { need: 201, have: 200 }));
    assert!(matches!(write(s4, d4, usize::MAX, &L2_PLAIN, 0), Err(WriteError::PayloadTooLarge { .. })));
    assert_eq!(write(s4, d4, 10, &L2_PLAIN, 4), Err(WriteError::BadEcn(4)));
    assert_eq!(write(s4, d4, 10, &L2 { vlan: Some(0x1000), ..L2_PLAIN }, 0), Err(WriteError::BadVlan(0x1000)));
    assert_eq!(
        write_headers(&mut [], &L2_PLAIN, s4, d4, 0, 0, 0),
        Err(WriteError::BufferTooSmall { need: 42, have: 0 })
    );
}

#[test]
fn header_lengths() {
    assert_eq!(headers_len(false, false), 42);
    assert_eq!(headers_len(false, true), 46);
    assert_eq!(headers_len(true, false), 62);
    assert_eq!(headers_len(true, true), MAX_HEADERS_LEN);
    assert_eq!(MAX_HEADERS_LEN, 66);
}
