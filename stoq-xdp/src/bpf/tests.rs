//! Instruction encodings and the assembler; the STOQ filter run on
//! hand-built frames with `BPF_PROG_TEST_RUN` (root, no interface needed);
//! load and map errors.
//!
//! The filter is loaded with [`NoSocket::Drop`] and an empty XSKMAP, so a
//! frame it matches comes back `XDP_DROP` and one it lets through
//! `XDP_PASS`.

use std::os::fd::AsFd;

use super::insn::{Alu, Asm, AsmError, Cond, Insn, Reg, Size};
use super::*;

pub(super) const STOQ: u16 = 4433;
const MATCHED: u32 = XdpAction::Drop as u32;
const PASS: u32 = XdpAction::Pass as u32;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const QINQ: u16 = 0x88a8;
const DOT1Q: u16 = 0x8100;
const UDP: u8 = 17;
const TCP: u8 = 6;
const ICMPV6: u8 = 58;
/// IPv4 flags and fragment offset: Don't Fragment, More Fragments.
const DF: u16 = 0x4000;
const MF: u16 = 0x2000;

// ---- frames ----

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Ethernet header with VLAN tags `tags` (their TPIDs), then `ethertype`.
fn eth(tags: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    for tpid in tags {
        f.extend(tpid.to_be_bytes());
        f.extend(100u16.to_be_bytes()); // VLAN 100
    }
    f.extend(ethertype.to_be_bytes());
    f
}

fn udp(dst: u16, payload: &[u8]) -> Vec<u8> {
    cat(&[&50000u16.to_be_bytes(), &dst.to_be_bytes(), &(8 + payload.len() as u16).to_be_bytes(), &[0, 0], payload])
}

/// A TCP SYN to `dst`.
fn tcp(dst: u16) -> Vec<u8> {
    cat(&[&50000u16.to_be_bytes(), &dst.to_be_bytes(), &[0, 0, 0, 1], &[0; 4], &[0x50, 0x02, 0xff, 0xff], &[0; 4]])
}

/// IPv4 header of `ihl` words (the field as given; `options` fill it) and
/// flags/fragment offset `frag`, then `l4`.
fn ipv4(ihl: u8, proto: u8, frag: u16, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let total = (20 + options.len() + l4.len()) as u16;
    let fixed = [&[0x40 | ihl, 0][..], &total.to_be_bytes(), &[0x12, 0x34], &frag.to_be_bytes(), &[64, proto, 0, 0]];
    cat(&[&fixed.concat(), &[10, 0, 0, 1], &[10, 0, 0, 2], options, l4])
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut src = [0u8; 16];
    src[..2].copy_from_slice(&[0xfd, 0]);
    let mut dst = src;
    src[15] = 1;
    dst[15] = 2;
    cat(&[&[0x60, 0, 0, 0], &(l4.len() as u16).to_be_bytes(), &[next, 64], &src, &dst, l4])
}

/// `frame` with the first byte of its IP header (after a 14-byte Ethernet
/// header) replaced.
fn with_version(mut frame: Vec<u8>, first: u8) -> Vec<u8> {
    frame[14] = first;
    frame
}

pub(super) fn v4(dst: u16) -> Vec<u8> {
    cat(&[&eth(&[], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(dst, b"quic"))])
}

fn v6(dst: u16) -> Vec<u8> {
    cat(&[&eth(&[], ETH_P_IPV6), &ipv6(UDP, &udp(dst, b"quic"))])
}

// ---- the filter under BPF_PROG_TEST_RUN ----

/// The STOQ filter for `ports` (with its map, which it needs alive), or
/// `None` when not root.
fn filter(ports: &[u16], no_socket: NoSocket) -> Option<StoqXdp> {
    if !stoq_testbed::root_or_skip("BPF_PROG_TEST_RUN of the STOQ filter") {
        return None;
    }
    Some(StoqXdp::load_with(ports, MAX_REDIRECT_LEN, 4, no_socket).unwrap_or_else(|e| panic!("{e}")))
}

fn verdict(xdp: &StoqXdp, frame: &[u8]) -> u32 {
    xdp.program().test_run(frame).unwrap_or_else(|e| panic!("test run of {} bytes: {e}", frame.len()))
}

#[test]
fn stoq_udp_over_ipv4_and_ipv6_matches() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    assert_eq!(verdict(&xdp, &v4(STOQ)), MATCHED);
    assert_eq!(verdict(&xdp, &v6(STOQ)), MATCHED);
    // DF is not a fragment; a UDP header without payload is still UDP.
    assert_eq!(verdict(&xdp, &cat(&[&eth(&[], ETH_P_IP), &ipv4(5, UDP, DF, &[], &udp(STOQ, b"q"))])), MATCHED);
    assert_eq!(verdict(&xdp, &cat(&[&eth(&[], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(STOQ, b""))])), MATCHED);
    // Production: no socket on the queue, so the kernel gets it.
    let Some(production) = filter(&[STOQ], NoSocket::Pass) else { return };
    assert_eq!(verdict(&production, &v4(STOQ)), PASS);
    assert_eq!(verdict(&production, &v6(STOQ)), PASS);
}

#[test]
fn frames_longer_than_the_limit_pass() {
    // A 1500-byte MTU with a VLAN tag: GSO super-packets are longer.
    if !stoq_testbed::root_or_skip("BPF_PROG_TEST_RUN of the STOQ filter") {
        return;
    }
    let xdp = StoqXdp::load_with(&[STOQ], 1518, 4, NoSocket::Drop).unwrap();
    let frames = |payload: usize| {
        let p = vec![7u8; payload];
        [
            cat(&[&eth(&[], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(STOQ, &p))]),
            cat(&[&eth(&[DOT1Q], ETH_P_IPV6), &ipv6(UDP, &udp(STOQ, &p))]),
        ]
    };
    for f in frames(1400) {
        // Exactly the limit still matches; one byte more passes.
        let mut f = f;
        f.resize(1518, 0);
        assert_eq!(verdict(&xdp, &f), MATCHED, "a {}-byte frame", f.len());
        f.push(0);
        assert_eq!(verdict(&xdp, &f), PASS, "a {}-byte frame", f.len());
    }
    // Two 1452-byte QUIC packets in one GSO super-packet.
    for f in frames(2 * 1452) {
        assert_eq!(verdict(&xdp, &f), PASS, "a {}-byte GSO frame", f.len());
    }
}

#[test]
fn each_configured_port_matches_and_only_those() {
    let ports = [443, 4433, 8443, 9000, 9001, 9002, 9003, 65535];
    let Some(xdp) = filter(&ports, NoSocket::Drop) else { return };
    for port in ports {
        assert_eq!(verdict(&xdp, &v4(port)), MATCHED, "IPv4 port {port}");
        assert_eq!(verdict(&xdp, &v6(port)), MATCHED, "IPv6 port {port}");
    }
    for port in [53, 442, 444, 4434, 8080, 9004, 65534, 1] {
        assert_eq!(verdict(&xdp, &v4(port)), PASS, "IPv4 port {port}");
        assert_eq!(verdict(&xdp, &v6(port)), PASS, "IPv6 port {port}");
    }
    // The source port does not count.
    let mut from_stoq = v4(53);
    from_stoq[34..36].copy_from_slice(&STOQ.to_be_bytes());
    assert_eq!(verdict(&xdp, &from_stoq), PASS);
}

#[test]
fn other_traffic_passes() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    let arp = cat(&[&eth(&[], ETH_P_ARP), &[0, 1, 8, 0, 6, 4, 0, 1], &[0; 20]]);
    // Neighbour solicitation: ICMPv6 type 135.
    let ns = cat(&[&eth(&[], ETH_P_IPV6), &ipv6(ICMPV6, &cat(&[&[135, 0, 0, 0], &[0; 4], &[0xfd; 16]]))]);
    let cases = [
        ("ARP", arp),
        ("ICMPv6 neighbour solicitation", ns),
        ("TCP over IPv4 to the STOQ port", cat(&[&eth(&[], ETH_P_IP), &ipv4(5, TCP, 0, &[], &tcp(STOQ))])),
        ("TCP over IPv6 to the STOQ port", cat(&[&eth(&[], ETH_P_IPV6), &ipv6(TCP, &tcp(STOQ))])),
        ("an unknown EtherType", cat(&[&eth(&[], 0x88b5), &[0; 46]])),
        ("IPv4 with version 6", with_version(v4(STOQ), 0x65)),
        ("IPv6 with version 4", with_version(v6(STOQ), 0x40)),
    ];
    for (what, frame) in cases {
        assert_eq!(verdict(&xdp, &frame), PASS, "{what}");
    }
}

#[test]
fn ipv4_options_are_skipped_by_ihl() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    for ihl in [6u8, 7, 15] {
        let options = vec![1u8; (usize::from(ihl) - 5) * 4]; // NOPs
        let frame = cat(&[&eth(&[], ETH_P_IP), &ipv4(ihl, UDP, 0, &options, &udp(STOQ, b"quic"))]);
        assert_eq!(verdict(&xdp, &frame), MATCHED, "IHL {ihl}");
    }
    // Options that look like a UDP header to the STOQ port: the port that
    // counts is the one after them.
    let options = cat(&[&50000u16.to_be_bytes(), &STOQ.to_be_bytes()]);
    let frame = cat(&[&eth(&[], ETH_P_IP), &ipv4(6, UDP, 0, &options, &udp(53, b"quic"))]);
    assert_eq!(verdict(&xdp, &frame), PASS);
    // IHL below 5 is malformed, even where IHL * 4 bytes on lies the STOQ
    // port (in the total length, the source or the destination address).
    for ihl in [0u8, 3, 4] {
        let mut frame = cat(&[&eth(&[], ETH_P_IP), &ipv4(ihl, UDP, 0, &[], &udp(STOQ, b"quic"))]);
        let port_at = 14 + usize::from(ihl) * 4 + 2;
        frame[port_at..port_at + 2].copy_from_slice(&STOQ.to_be_bytes());
        assert_eq!(verdict(&xdp, &frame), PASS, "IHL {ihl}");
    }
}

#[test]
fn fragments_pass_for_the_kernel_to_reassemble() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    for (what, frag) in
        [("first (MF)", MF), ("middle (MF, offset)", MF | 185), ("last (offset)", 185), ("DF, offset", DF | 1)]
    {
        let frame = cat(&[&eth(&[], ETH_P_IP), &ipv4(5, UDP, frag, &[], &udp(STOQ, b"quic"))]);
        assert_eq!(verdict(&xdp, &frame), PASS, "{what} fragment");
    }
    // IPv6 fragments come behind a Fragment extension header (44).
    let frag = cat(&[&[UDP, 0, 0, 1], &[0, 0, 0, 7], &udp(STOQ, b"quic")]);
    assert_eq!(verdict(&xdp, &cat(&[&eth(&[], ETH_P_IPV6), &ipv6(44, &frag)])), PASS);
}

#[test]
fn one_vlan_tag_is_skipped() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    for tpid in [DOT1Q, QINQ] {
        let tagged_v4 = cat(&[&eth(&[tpid], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(STOQ, b"quic"))]);
        let tagged_v6 = cat(&[&eth(&[tpid], ETH_P_IPV6), &ipv6(UDP, &udp(STOQ, b"quic"))]);
        assert_eq!(verdict(&xdp, &tagged_v4), MATCHED, "IPv4 behind {tpid:#x}");
        assert_eq!(verdict(&xdp, &tagged_v6), MATCHED, "IPv6 behind {tpid:#x}");
        let other = cat(&[&eth(&[tpid], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(53, b"quic"))]);
        assert_eq!(verdict(&xdp, &other), PASS, "port 53 behind {tpid:#x}");
        let arp = cat(&[&eth(&[tpid], ETH_P_ARP), &[0, 1, 8, 0, 6, 4, 0, 1], &[0; 20]]);
        assert_eq!(verdict(&xdp, &arp), PASS, "ARP behind {tpid:#x}");
    }
    // Two tags (QinQ) are more than the filter reads.
    let double = cat(&[&eth(&[QINQ, DOT1Q], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(STOQ, b"quic"))]);
    assert_eq!(verdict(&xdp, &double), PASS);
}

#[test]
fn ipv6_extension_headers_pass() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    // Hop-by-hop (0) with a PadN option, then UDP to the STOQ port.
    let hop_by_hop = cat(&[&[UDP, 0, 1, 4, 0, 0, 0, 0], &udp(STOQ, b"quic")]);
    assert_eq!(verdict(&xdp, &cat(&[&eth(&[], ETH_P_IPV6), &ipv6(0, &hop_by_hop)])), PASS);
    // Destination options (60).
    assert_eq!(verdict(&xdp, &cat(&[&eth(&[], ETH_P_IPV6), &ipv6(60, &hop_by_hop)])), PASS);
}

/// Every prefix of a matching frame passes until the UDP header is
/// complete, and matches from there: no read goes past the end, and no
/// bounds check is off by one.
#[test]
fn truncated_frames_pass() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Drop) else { return };
    let with_options = cat(&[&eth(&[], ETH_P_IP), &ipv4(15, UDP, 0, &[1; 40], &udp(STOQ, b"quic"))]);
    let cases = [
        ("IPv4", v4(STOQ), 14 + 20 + 8),
        ("IPv4, IHL 15", with_options, 14 + 60 + 8),
        ("IPv6", v6(STOQ), 14 + 40 + 8),
        ("IPv4, VLAN", cat(&[&eth(&[DOT1Q], ETH_P_IP), &ipv4(5, UDP, 0, &[], &udp(STOQ, b"quic"))]), 18 + 20 + 8),
        ("IPv6, VLAN", cat(&[&eth(&[QINQ], ETH_P_IPV6), &ipv6(UDP, &udp(STOQ, b"quic"))]), 18 + 40 + 8),
    ];
    for (what, frame, udp_end) in cases {
        // The kernel runs nothing shorter than an Ethernet header.
        for len in 14..=frame.len() {
            let want = if len < udp_end { PASS } else { MATCHED };
            assert_eq!(verdict(&xdp, &frame[..len]), want, "{what} cut to {len} bytes");
        }
    }
    for len in [0, 1, 13] {
        let e = xdp.program().test_run(&v4(STOQ)[..len]).unwrap_err();
        assert!(matches!(e, TestRunError::TooShort(l) if l == len), "{e:?}");
    }
}

// ---- loading ----

#[test]
fn port_lists_are_checked_before_loading() {
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let fd = devnull.as_fd();
    assert!(matches!(stoq_filter(&[], MAX_REDIRECT_LEN, fd, NoSocket::Pass), Err(LoadError::PortCount(0))));
    let nine: Vec<u16> = (1000..1009).collect();
    let e = stoq_filter(&nine, MAX_REDIRECT_LEN, fd, NoSocket::Pass).unwrap_err();
    assert!(matches!(e, LoadError::PortCount(9)), "{e:?}");
    assert!(e.to_string().contains("1 to 8 UDP ports"), "{e}");
    assert!(matches!(stoq_filter(&[443, 0], MAX_REDIRECT_LEN, fd, NoSocket::Pass), Err(LoadError::PortZero)));
    // Duplicates count once: one comparison per distinct port.
    let jeqs = |insns: &[Insn]| insns.iter().filter(|i| i.to_bytes()[0] == 0x15).count();
    let once = stoq_filter(&[443], MAX_REDIRECT_LEN, fd, NoSocket::Pass).unwrap();
    let twelve = stoq_filter(&[443; 12], MAX_REDIRECT_LEN, fd, NoSocket::Pass).unwrap();
    assert_eq!(jeqs(&once), jeqs(&twelve));
    let eight = stoq_filter(&[1, 2, 3, 4, 5, 6, 7, 8, 8], MAX_REDIRECT_LEN, fd, NoSocket::Pass).unwrap();
    assert_eq!(jeqs(&eight), jeqs(&once) + 7);
}

#[test]
fn verifier_rejections_carry_its_log() {
    if !stoq_testbed::root_or_skip("loading XDP programs") {
        return;
    }
    use Reg::*;
    let unchecked_read = [Insn::ldx(Size::W, R2, R1, 0), Insn::ldx(Size::B, R0, R2, 0), Insn::exit()];
    let no_return_value = [Insn::exit()];
    let jump_out = [Insn::ja(5), Insn::exit()];
    for (insns, said) in [
        (&unchecked_read[..], "invalid access to packet"),
        (&no_return_value[..], "R0 !read_ok"),
        (&jump_out[..], "jump out of range"),
    ] {
        let e = Program::load("bad", insns).unwrap_err();
        let LoadError::Rejected { ref log, ref name, .. } = e else { panic!("{e:?}") };
        assert!(log.contains(said), "{said:?} not in {log}");
        assert_eq!(name, "bad");
        assert!(e.to_string().contains("verifier rejected XDP program bad"), "{e}");
    }
}

#[test]
fn loaded_programs_have_ids_and_names() {
    let Some(xdp) = filter(&[STOQ], NoSocket::Pass) else { return };
    let other = Program::load("a b/c-d.e_f-ghijklmnopq", &[Insn::mov64_imm(Reg::R0, 1), Insn::exit()]).unwrap();
    assert!(xdp.program().id() > 0 && other.id() > 0 && other.id() != xdp.program().id());
    assert_eq!((xdp.program().name(), other.name()), ("stoq_xdp", "abcd.e_fghijklm"));
    assert_eq!(other.test_run(&v4(STOQ)).unwrap(), XdpAction::Drop as u32);
}

#[test]
fn map_checks_queues_and_sockets() {
    assert!(matches!(XskMap::create(0), Err(LoadError::NoQueues)));
    if !stoq_testbed::root_or_skip("XSKMAP") {
        return;
    }
    let map = XskMap::create(4).unwrap();
    assert_eq!(map.entries(), 4);
    let e = map.insert(4, 0).unwrap_err();
    assert!(matches!(e, MapError::QueueOutOfRange { queue: 4, entries: 4 }), "{e:?}");
    assert!(matches!(map.remove(9), Err(MapError::QueueOutOfRange { queue: 9, .. })));
    // A UDP socket, a file, no descriptor at all: none is an AF_XDP socket.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    for fd in [udp.as_raw_fd(), file.as_raw_fd(), -1, 99_999] {
        let e = map.insert(1, fd).unwrap_err();
        assert!(matches!(e, MapError::NotXsk { queue: 1, .. }), "fd {fd}: {e:?}");
        assert!(e.to_string().contains("not a bound AF_XDP socket"), "{e}");
    }
    map.remove(1).expect("removing from an empty slot");
}

#[test]
fn actions_have_their_uapi_numbers() {
    let all = [XdpAction::Aborted, XdpAction::Drop, XdpAction::Pass, XdpAction::Tx, XdpAction::Redirect];
    for (n, a) in all.into_iter().enumerate() {
        assert_eq!(a as u32, n as u32);
        assert_eq!(XdpAction::from_verdict(n as u32), Some(a));
    }
    assert_eq!(XdpAction::from_verdict(5), None);
}

// ---- encodings ----

/// Bytes as the kernel's macros build them (include/linux/filter.h,
/// include/uapi/linux/bpf_common.h): opcode = class | op/size | mode/source,
/// then `src_reg << 4 | dst_reg` (little-endian bitfields), offset, imm.
#[cfg(target_endian = "little")]
#[test]
fn instructions_encode_as_the_kernel_defines_them() {
    use Reg::*;
    let cases: [(Insn, [u8; 8]); 22] = [
        // BPF_ALU64 0x07 | BPF_MOV 0xb0 | BPF_K 0x00
        (Insn::mov64_imm(R0, 2), [0xb7, 0x00, 0, 0, 2, 0, 0, 0]),
        (Insn::mov64_imm(R3, -1), [0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        // | BPF_X 0x08
        (Insn::mov64_reg(R4, R2), [0xbf, 0x24, 0, 0, 0, 0, 0, 0]),
        (Insn::alu64_imm(Alu::Add, R4, 14), [0x07, 0x04, 0, 0, 14, 0, 0, 0]),
        (Insn::alu64_imm(Alu::And, R5, 0x0f), [0x57, 0x05, 0, 0, 0x0f, 0, 0, 0]),
        (Insn::alu64_imm(Alu::Lsh, R5, 2), [0x67, 0x05, 0, 0, 2, 0, 0, 0]),
        (Insn::alu64_imm(Alu::Rsh, R0, 4), [0x77, 0x00, 0, 0, 4, 0, 0, 0]),
        (Insn::alu64_reg(Alu::Add, R4, R5), [0x0f, 0x54, 0, 0, 0, 0, 0, 0]),
        (Insn::alu64_reg(Alu::Xor, R9, R10), [0xaf, 0xa9, 0, 0, 0, 0, 0, 0]),
        // BPF_ALU 0x04 | BPF_END 0xd0 | BPF_TO_BE 0x08, imm = width
        (Insn::be16(R5), [0xdc, 0x05, 0, 0, 16, 0, 0, 0]),
        (Insn::be32(R1), [0xdc, 0x01, 0, 0, 32, 0, 0, 0]),
        // BPF_LDX 0x01 | BPF_MEM 0x60 | BPF_W 0x00 / BPF_H 0x08 / BPF_B 0x10 / BPF_DW 0x18
        (Insn::ldx(Size::W, R2, R1, 0), [0x61, 0x12, 0, 0, 0, 0, 0, 0]),
        (Insn::ldx(Size::W, R7, R1, 16), [0x61, 0x17, 16, 0, 0, 0, 0, 0]),
        (Insn::ldx(Size::H, R5, R2, 12), [0x69, 0x25, 12, 0, 0, 0, 0, 0]),
        (Insn::ldx(Size::B, R0, R4, 9), [0x71, 0x40, 9, 0, 0, 0, 0, 0]),
        (Insn::ldx(Size::Dw, R1, R10, -8), [0x79, 0xa1, 0xf8, 0xff, 0, 0, 0, 0]),
        // BPF_JMP 0x05 | BPF_JGT 0x20 | BPF_X; | BPF_JEQ 0x10 | BPF_K; BPF_JLT 0xa0
        (Insn::jmp_reg(Cond::Gt, R4, R3, 5), [0x2d, 0x34, 5, 0, 0, 0, 0, 0]),
        (Insn::jmp_imm(Cond::Eq, R5, 0x8100, -3), [0x15, 0x05, 0xfd, 0xff, 0x00, 0x81, 0, 0]),
        (Insn::jmp_imm(Cond::Lt, R5, 5, 1), [0xa5, 0x05, 1, 0, 5, 0, 0, 0]),
        (Insn::ja(2), [0x05, 0x00, 2, 0, 0, 0, 0, 0]),
        // BPF_JMP | BPF_CALL 0x80, imm = BPF_FUNC_redirect_map (51); BPF_EXIT 0x90
        (Insn::call(51), [0x85, 0x00, 0, 0, 51, 0, 0, 0]),
        (Insn::exit(), [0x95, 0x00, 0, 0, 0, 0, 0, 0]),
    ];
    for (insn, bytes) in cases {
        assert_eq!(insn.to_bytes(), bytes, "{insn:?}");
    }
    // BPF_LD 0x00 | BPF_DW 0x18 | BPF_IMM 0x00, src_reg BPF_PSEUDO_MAP_FD (1),
    // the descriptor in the first imm, the second slot all zero.
    let [lo, hi] = Insn::ld_map_fd(R1, 7);
    assert_eq!((lo.to_bytes(), hi.to_bytes()), ([0x18, 0x11, 0, 0, 7, 0, 0, 0], [0; 8]));
}

#[test]
fn labels_compute_jump_offsets() {
    use Reg::*;
    let mut a = Asm::new();
    let [top, end] = [a.label(), a.label()];
    a.bind(top);
    a.push([Insn::mov64_imm(R0, 0)]); // 0
    a.jmp_imm(Cond::Eq, R0, 1, end); // 1: forward over 2..=5
    a.push(Insn::ld_map_fd(R1, 3)); // 2, 3: two slots
    a.jmp_reg(Cond::Ne, R0, R1, top); // 4: back to 0
    a.ja(end); // 5
    a.bind(end);
    a.push([Insn::exit()]); // 6
    let insns = a.finish().unwrap();
    assert_eq!(insns.len(), 7);
    assert_eq!(insns[1], Insn::jmp_imm(Cond::Eq, R0, 1, 4));
    assert_eq!(insns[4], Insn::jmp_reg(Cond::Ne, R0, R1, -5));
    assert_eq!(insns[5], Insn::ja(0));
}

#[test]
fn assembler_mistakes_are_errors() {
    let mut a = Asm::new();
    let never = a.label();
    a.ja(never);
    assert_eq!(a.finish(), Err(AsmError::Unbound { at: 0, label: 0 }));

    let mut a = Asm::new();
    let twice = a.label();
    a.bind(twice);
    a.bind(twice);
    assert_eq!(a.finish(), Err(AsmError::Rebound(0)));

    // Another assembler's label.
    let mut other = Asm::new();
    let [_, foreign] = [other.label(), other.label()];
    let mut a = Asm::new();
    a.bind(foreign);
    a.ja(foreign);
    assert!(matches!(a.finish(), Err(AsmError::Unbound { label: 1, .. })));

    let mut a = Asm::new();
    let far = a.label();
    a.ja(far);
    a.push(std::iter::repeat_n(Insn::exit(), 40_000));
    a.bind(far);
    assert_eq!(a.finish(), Err(AsmError::TooFar { at: 0, distance: 40_000 }));
}
