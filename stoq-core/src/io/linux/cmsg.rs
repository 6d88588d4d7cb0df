//! Ancillary data (control messages) for UDP sockets, encoded and decoded in
//! safe Rust over plain byte buffers.
//!
//! Both Linux backends need it: `sendmmsg`/`recvmmsg` fill a control buffer
//! per message, and io_uring's multishot receive hands back the same bytes
//! inside its own buffer layout, where libc's `CMSG_*` macros (which walk a
//! `msghdr`) do not apply. One bounds-checked codec serves both, never
//! panics on what the kernel (or a fuzzer) hands it, and needs no `unsafe`.
//!
//! Layout (`include/linux/socket.h`): each message is a `struct cmsghdr`
//! (`size_t cmsg_len; int cmsg_level; int cmsg_type;`) followed by its data;
//! both header and data are padded to the alignment of `size_t`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ALIGN: usize = std::mem::size_of::<usize>();
/// `sizeof(struct cmsghdr)`, already aligned.
const HDR: usize = align(std::mem::size_of::<usize>() + 8);

const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// `CMSG_SPACE(data)`: bytes one control message with `data` bytes occupies.
pub const fn space(data: usize) -> usize {
    HDR + align(data)
}

/// `CMSG_LEN(data)`: the `cmsg_len` value of a message with `data` bytes.
pub const fn len(data: usize) -> usize {
    HDR + data
}

/// Control buffer size that holds everything [`Encoder`] may write for one
/// datagram: GSO segment size, source address, ECN and a transmit time.
pub const SEND_SPACE: usize = space(2) + space(20) + space(4) + space(8);

/// Control buffer size for everything a receive may report: GRO segment
/// size, destination address (v4 and v6 for dual-stack sockets), TOS or
/// traffic class, and room for one message we do not ask for (such as
/// `SO_RXQ_OVFL`).
pub const RECV_SPACE: usize = space(4) + space(12) + space(20) + space(4) + space(4) + space(16);

// Levels and types (include/uapi/linux/{in.h,in6.h,udp.h}, asm-generic/socket.h).
const SOL_SOCKET: i32 = libc::SOL_SOCKET;
const SOL_IP: i32 = libc::IPPROTO_IP;
const SOL_IPV6: i32 = libc::IPPROTO_IPV6;
const SOL_UDP: i32 = libc::SOL_UDP;
const UDP_SEGMENT: i32 = libc::UDP_SEGMENT;
const UDP_GRO: i32 = libc::UDP_GRO;
const IP_PKTINFO: i32 = libc::IP_PKTINFO;
const IPV6_PKTINFO: i32 = libc::IPV6_PKTINFO;
const IP_TOS: i32 = libc::IP_TOS;
const IPV6_TCLASS: i32 = libc::IPV6_TCLASS;
/// `SCM_TXTIME` (= `SO_TXTIME`, asm-generic/socket.h; x86, arm, riscv).
pub(crate) const SCM_TXTIME: i32 = 61;

/// What the kernel reported about one received datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvInfo {
    /// GRO segment size when the buffer holds several coalesced datagrams.
    pub gro_segment: Option<u16>,
    /// The datagram's destination address (`IP_PKTINFO`/`IPV6_PKTINFO`).
    pub dst_ip: Option<IpAddr>,
    /// ECN codepoint from the TOS byte or traffic class (0 when absent).
    pub ecn: u8,
}

/// Decodes the control messages of one received datagram. Unknown messages
/// are skipped; a truncated or malformed tail ends decoding (what was read
/// before it is kept).
pub fn decode(mut control: &[u8]) -> RecvInfo {
    let mut info = RecvInfo::default();
    while control.len() >= HDR {
        let cmsg_len = usize::from_ne_bytes(control[..ALIGN].try_into().expect("ALIGN bytes"));
        let level = i32::from_ne_bytes(control[ALIGN..ALIGN + 4].try_into().expect("4 bytes"));
        let ty = i32::from_ne_bytes(control[ALIGN + 4..ALIGN + 8].try_into().expect("4 bytes"));
        if cmsg_len < HDR || cmsg_len > control.len() {
            break;
        }
        let data = &control[HDR..cmsg_len];
        match (level, ty) {
            (SOL_UDP, UDP_GRO) => info.gro_segment = read_int(data).and_then(|v| u16::try_from(v).ok()),
            (SOL_IP, IP_PKTINFO) if data.len() >= 12 => {
                // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                let a: [u8; 4] = data[8..12].try_into().expect("4 bytes");
                info.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(a)));
            }
            (SOL_IPV6, IPV6_PKTINFO) if data.len() >= 16 => {
                // struct in6_pktinfo { in6_addr addr; unsigned ifindex; }
                let a: [u8; 16] = data[..16].try_into().expect("16 bytes");
                info.dst_ip = Some(IpAddr::V6(Ipv6Addr::from(a)));
            }
            // IP_TOS arrives as one byte, IPV6_TCLASS as an int.
            (SOL_IP, IP_TOS) if !data.is_empty() => info.ecn = data[0] & 0b11,
            (SOL_IPV6, IPV6_TCLASS) => info.ecn = read_int(data).map_or(0, |v| (v & 0b11) as u8),
            _ => {}
        }
        let next = space(cmsg_len - HDR);
        if next >= control.len() {
            break;
        }
        control = &control[next..];
    }
    info
}

fn read_int(data: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

/// Writes control messages for one outgoing datagram into a buffer of at
/// least [`SEND_SPACE`] bytes.
pub struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Encoder<'a> {
    /// Starts an empty set of messages in `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    fn push(&mut self, level: i32, ty: i32, data: &[u8]) {
        let end = self.len + space(data.len());
        assert!(end <= self.buf.len(), "control buffer smaller than cmsg::SEND_SPACE");
        let m = &mut self.buf[self.len..end];
        m[..ALIGN].copy_from_slice(&len(data.len()).to_ne_bytes());
        m[ALIGN..ALIGN + 4].copy_from_slice(&level.to_ne_bytes());
        m[ALIGN + 4..ALIGN + 8].copy_from_slice(&ty.to_ne_bytes());
        m[ALIGN + 8..HDR].fill(0);
        m[HDR..HDR + data.len()].copy_from_slice(data);
        m[HDR + data.len()..].fill(0);
        self.len = end;
    }

    /// `UDP_SEGMENT`: the kernel splits the payload into datagrams of
    /// `size` bytes (the last may be shorter).
    pub fn gso_segment(&mut self, size: u16) {
        self.push(SOL_UDP, UDP_SEGMENT, &size.to_ne_bytes());
    }

    /// Source address for a socket bound to a wildcard address. An IPv4
    /// address (or v4-mapped one on a dual-stack socket) uses `IP_PKTINFO`.
    pub fn src_ip(&mut self, ip: IpAddr) {
        match ip_family(ip) {
            IpAddr::V4(v4) => {
                let mut d = [0u8; 12];
                d[4..8].copy_from_slice(&v4.octets()); // ipi_spec_dst
                self.push(SOL_IP, IP_PKTINFO, &d);
            }
            IpAddr::V6(v6) => {
                let mut d = [0u8; 20];
                d[..16].copy_from_slice(&v6.octets());
                self.push(SOL_IPV6, IPV6_PKTINFO, &d);
            }
        }
    }

    /// ECN codepoint for the IP header of a datagram to `dst`.
    pub fn ecn(&mut self, dst: IpAddr, ecn: u8) {
        let v = i32::from(ecn & 0b11);
        match ip_family(dst) {
            IpAddr::V4(_) => self.push(SOL_IP, IP_TOS, &v.to_ne_bytes()),
            IpAddr::V6(_) => self.push(SOL_IPV6, IPV6_TCLASS, &v.to_ne_bytes()),
        }
    }

    /// `SCM_TXTIME`: earliest departure, in `CLOCK_MONOTONIC` nanoseconds
    /// (needs `SO_TXTIME` on the socket and the `fq` qdisc to take effect).
    pub fn txtime(&mut self, ns: u64) {
        self.push(SOL_SOCKET, SCM_TXTIME, &ns.to_ne_bytes());
    }

    /// Bytes written (the `msg_controllen` to pass).
    pub fn finish(self) -> usize {
        self.len
    }
}

/// An address as the kernel sees it on the wire: v4-mapped IPv6 is IPv4.
fn ip_family(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn sizes_match_the_c_macros() {
        for n in [0u32, 1, 2, 4, 8, 12, 16, 20] {
            // SAFETY: pure arithmetic macros; libc marks them unsafe only for signature reasons.
            let (c_len, c_space) = unsafe { (libc::CMSG_LEN(n), libc::CMSG_SPACE(n)) };
            assert_eq!(len(n as usize), c_len as usize, "CMSG_LEN({n})");
            assert_eq!(space(n as usize), c_space as usize, "CMSG_SPACE({n})");
        }
    }

    /// Builds a control buffer as the kernel would, with raw level/type/data.
    fn kernel_msgs(msgs: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (level, ty, data) in msgs {
            let start = out.len();
            out.resize(start + space(data.len()), 0);
            let m = &mut out[start..];
            m[..ALIGN].copy_from_slice(&len(data.len()).to_ne_bytes());
            m[ALIGN..ALIGN + 4].copy_from_slice(&level.to_ne_bytes());
            m[ALIGN + 4..ALIGN + 8].copy_from_slice(&ty.to_ne_bytes());
            m[HDR..HDR + data.len()].copy_from_slice(data);
        }
        out
    }

    #[test]
    fn decodes_gro_pktinfo_and_tos() {
        let mut pktinfo = [0u8; 12];
        pktinfo[8..].copy_from_slice(&[10, 0, 0, 7]);
        let buf = kernel_msgs(&[
            (SOL_SOCKET, 40, &7u32.to_ne_bytes()), // SO_RXQ_OVFL: skipped
            (SOL_UDP, UDP_GRO, &1452i32.to_ne_bytes()),
            (SOL_IP, IP_PKTINFO, &pktinfo),
            (SOL_IP, IP_TOS, &[0b1011_1011]),
        ]);
        let info = decode(&buf);
        assert_eq!(info.gro_segment, Some(1452));
        assert_eq!(info.dst_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))));
        assert_eq!(info.ecn, 0b11);
    }

    #[test]
    fn decodes_ipv6_pktinfo_and_tclass() {
        let mut pktinfo = [0u8; 20];
        pktinfo[..16].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        let buf = kernel_msgs(&[(SOL_IPV6, IPV6_PKTINFO, &pktinfo), (SOL_IPV6, IPV6_TCLASS, &2i32.to_ne_bytes())]);
        let info = decode(&buf);
        assert_eq!(info.dst_ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!((info.ecn, info.gro_segment), (2, None));
    }

    #[test]
    fn malformed_input_ends_decoding_without_panicking() {
        let good = kernel_msgs(&[(SOL_UDP, UDP_GRO, &1200i32.to_ne_bytes())]);
        for cut in 0..good.len() {
            let info = decode(&good[..cut]);
            assert!(info.gro_segment.is_none() || cut >= len(4), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[..ALIGN].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(decode(&bad), RecvInfo::default());
        bad[..ALIGN].copy_from_slice(&3usize.to_ne_bytes()); // shorter than a header
        assert_eq!(decode(&bad), RecvInfo::default());
        // A GRO size that does not fit u16 is not a segment size.
        assert_eq!(decode(&kernel_msgs(&[(SOL_UDP, UDP_GRO, &70_000i32.to_ne_bytes())])).gro_segment, None);
    }

    #[test]
    fn encoder_output_round_trips_through_the_decoder_layout() {
        let mut buf = [0xAAu8; SEND_SPACE];
        let mut e = Encoder::new(&mut buf);
        e.gso_segment(1452);
        e.src_ip("::ffff:192.0.2.1".parse().unwrap());
        e.ecn("::ffff:192.0.2.9".parse().unwrap(), 1);
        e.txtime(123_456_789);
        let n = e.finish();
        assert_eq!(n, space(2) + space(12) + space(4) + space(8));
        // Walk it as the kernel would and check each message.
        let mut off = 0;
        let mut seen = Vec::new();
        while off < n {
            let l = usize::from_ne_bytes(buf[off..off + ALIGN].try_into().unwrap());
            let level = i32::from_ne_bytes(buf[off + ALIGN..off + ALIGN + 4].try_into().unwrap());
            let ty = i32::from_ne_bytes(buf[off + ALIGN + 4..off + ALIGN + 8].try_into().unwrap());
            seen.push((level, ty, buf[off + HDR..off + l].to_vec()));
            off += space(l - HDR);
        }
        assert_eq!(seen[0], (SOL_UDP, UDP_SEGMENT, 1452u16.to_ne_bytes().to_vec()));
        assert_eq!((seen[1].0, seen[1].1, &seen[1].2[4..8]), (SOL_IP, IP_PKTINFO, &[192, 0, 2, 1][..]));
        assert_eq!(seen[2], (SOL_IP, IP_TOS, 1i32.to_ne_bytes().to_vec()));
        assert_eq!(seen[3], (SOL_SOCKET, SCM_TXTIME, 123_456_789u64.to_ne_bytes().to_vec()));
        // Padding is zeroed, not left over from the buffer.
        assert_eq!(&buf[HDR + 2..space(2)], &[0; 6][..space(2) - HDR - 2]);
    }

    #[test]
    fn ipv6_source_uses_ipv6_pktinfo() {
        let mut buf = [0u8; SEND_SPACE];
        let mut e = Encoder::new(&mut buf);
        e.src_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
        e.ecn(IpAddr::V6(Ipv6Addr::LOCALHOST), 2);
        assert_eq!(e.finish(), space(20) + space(4));
        assert_eq!(i32::from_ne_bytes(buf[ALIGN + 4..ALIGN + 8].try_into().unwrap()), IPV6_PKTINFO);
        assert_eq!(&buf[HDR..HDR + 16], &Ipv6Addr::LOCALHOST.octets());
    }
}
