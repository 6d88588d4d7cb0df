//! Receive: Ethernet frame → addresses, ECN and the UDP payload's range.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;

use super::checksum::ones_sum;
use super::{
    ETH_HEADER_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, IPPROTO_UDP, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN, MacAddr, UDP_HEADER_LEN, VLAN_TAG_LEN,
};

/// A UDP datagram found in an Ethernet frame by [`parse_udp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpFrame {
    /// Ethernet source: the neighbour (or router) that sent the frame.
    pub src_mac: MacAddr,
    /// Ethernet destination: normally our own interface's address.
    pub dst_mac: MacAddr,
    /// VLAN ID (low 12 bits of the tag control information), if tagged.
    pub vlan: Option<u16>,
    /// Source address and port; IPv4 packets give `SocketAddr::V4`.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// ECN codepoint, 0..=3 (RFC 3168 §5).
    pub ecn: u8,
    /// Where the UDP payload lies in the frame.
    pub payload: Range<usize>,
}

impl UdpFrame {
    /// The payload within `frame` (the slice this was parsed from); empty if
    /// `frame` is another, shorter slice.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.payload.clone()).unwrap_or_default()
    }
}

/// Why [`parse_udp`] refused a frame. Each is a reason to drop it, or to
/// leave it to the kernel stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame ends inside a header or before the end of the IP packet.
    #[error("frame truncated: it ends inside the {what}")]
    Truncated {
        /// The header or packet that is cut short.
        what: &'static str,
    },
    /// The ethertype (after at most one VLAN tag) is neither IPv4 nor IPv6.
    #[error("Ethernet: ethertype {0:#06x} is not IPv4 or IPv6 (or more than one VLAN tag)")]
    NotIp(u16),
    /// The IP version field disagrees with the ethertype.
    #[error("IP: version field {found} in a frame whose ethertype says IPv{expected}")]
    BadIpVersion {
        /// The version the ethertype announced.
        expected: u8,
        /// The version field.
        found: u8,
    },
    /// The IPv4 header checksum is wrong.
    #[error("IPv4: bad header checksum")]
    BadIpv4Checksum,
    /// A length field is inconsistent with another or with the frame.
    #[error("bad length: {what}")]
    BadLength {
        /// Which length, and what is wrong with it.
        what: &'static str,
    },
    /// An IPv4 fragment, or an IPv6 packet with a fragment header.
    #[error("IP: fragment; fragments are for the kernel stack, which reassembles them")]
    Fragment,
    /// An IPv6 extension header other than a fragment header.
    #[error("IPv6: extension header {0} before the transport header; only the kernel stack handles those")]
    Ipv6ExtensionHeader(u8),
    /// The IP payload is not UDP.
    #[error("IP: protocol {0} is not UDP")]
    NotUdp(u8),
    /// An IPv4-mapped IPv6 address in an IPv6 header.
    #[error("IPv6: IPv4-mapped address on the wire (RFC 4291 §2.5.5.2); dropped")]
    Ipv4MappedAddress,
}

/// Parses a received Ethernet frame down to its UDP payload.
///
/// The UDP checksum is not verified (see the [module docs](super)). Never
/// panics and never allocates.
pub fn parse_udp(frame: &[u8]) -> Result<UdpFrame, FrameError> {
    const ETH: &str = "Ethernet header";
    let dst_mac = MacAddr(*take::<6>(frame, 0, ETH)?);
    let src_mac = MacAddr(*take::<6>(frame, 6, ETH)?);
    let mut ethertype = u16::from_be_bytes(*take::<2>(frame, 12, ETH)?);
    let mut l3 = ETH_HEADER_LEN;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        let &[t0, t1, e0, e1] = take::<VLAN_TAG_LEN>(frame, l3, "VLAN tag")?;
        vlan = Some(u16::from_be_bytes([t0, t1]) & 0x0fff);
        ethertype = u16::from_be_bytes([e0, e1]);
        l3 += VLAN_TAG_LEN;
    }
    let ip = match ethertype {
        ETHERTYPE_IPV4 => ipv4(frame, l3)?,
        ETHERTYPE_IPV6 => ipv6(frame, l3)?,
        other => return Err(FrameError::NotIp(other)),
    };

    // The UDP header must lie inside the IP packet, not in Ethernet padding.
    let packet = frame.get(..ip.end).ok_or(FrameError::Truncated { what: "IP packet" })?;
    let &[s0, s1, d0, d1, l0, l1, _, _] = take::<UDP_HEADER_LEN>(packet, ip.l4, "UDP header")?;
    let udp_len = usize::from(u16::from_be_bytes([l0, l1]));
    if udp_len < UDP_HEADER_LEN {
        return Err(FrameError::BadLength { what: "UDP length below the 8-byte header" });
    }
    if udp_len > ip.end - ip.l4 {
        return Err(FrameError::BadLength { what: "UDP length exceeds the IP payload" });
    }
    let (src_port, dst_port) = (u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1]));
    let (src, dst) = match ip.addrs {
        Addrs::V4(s, d) => (
            SocketAddrV4::new(Ipv4Addr::from_bits(s), src_port).into(),
            SocketAddrV4::new(Ipv4Addr::from_bits(d), dst_port).into(),
        ),
        Addrs::V6(s, d) => (
            SocketAddrV6::new(Ipv6Addr::from_bits(s), src_port, 0, 0).into(),
            SocketAddrV6::new(Ipv6Addr::from_bits(d), dst_port, 0, 0).into(),
        ),
    };
    Ok(UdpFrame { src_mac, dst_mac, vlan, src, dst, ecn: ip.ecn, payload: ip.l4 + UDP_HEADER_LEN..ip.l4 + udp_len })
}

/// What the IP layer yields: addresses, ECN, and where its payload lies.
struct Ip {
    addrs: Addrs,
    ecn: u8,
    /// Offset of the transport header.
    l4: usize,
    /// End of the IP packet; Ethernet padding may follow.
    end: usize,
}

/// Source and destination as integers: aligned, so they stay in registers
/// (byte arrays were shuffled through the stack and re-read with a
/// store-forwarding stall).
enum Addrs {
    V4(u32, u32),
    V6(u128, u128),
}

/// IPv4 header at `l3` (RFC 791 §3.1).
fn ipv4(frame: &[u8], l3: usize) -> Result<Ip, FrameError> {
    let &[ver_ihl, tos, len0, len1, _, _, frag0, frag1, _ttl, proto, _, _, s0, s1, s2, s3, d0, d1, d2, d3] =
        take::<IPV4_HEADER_LEN>(frame, l3, "IPv4 header")?;
    if ver_ihl >> 4 != 4 {
        return Err(FrameError::BadIpVersion { expected: 4, found: ver_ihl >> 4 });
    }
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(FrameError::BadLength { what: "IPv4 header length (IHL) below 5 words" });
    }
    let header = frame.get(l3..l3 + header_len).ok_or(FrameError::Truncated { what: "IPv4 options" })?;
    // A correct header, checksum field included, sums to negative zero.
    if ones_sum(header) != 0xffff {
        return Err(FrameError::BadIpv4Checksum);
    }
    let total_len = usize::from(u16::from_be_bytes([len0, len1]));
    if total_len < header_len {
        return Err(FrameError::BadLength { what: "IPv4 total length below the header length" });
    }
    if l3 + total_len > frame.len() {
        return Err(FrameError::Truncated { what: "IPv4 packet" });
    }
    // More-fragments flag or a fragment offset; DF and the reserved bit are
    // irrelevant here.
    if u16::from_be_bytes([frag0, frag1]) & 0x3fff != 0 {
        return Err(FrameError::Fragment);
    }
    if proto != IPPROTO_UDP {
        return Err(FrameError::NotUdp(proto));
    }
    Ok(Ip {
        addrs: Addrs::V4(u32::from_be_bytes([s0, s1, s2, s3]), u32::from_be_bytes([d0, d1, d2, d3])),
        ecn: tos & 0b11,
        l4: l3 + header_len,
        end: l3 + total_len,
    })
}

/// IPv6 header at `l3` (RFC 8200 §3).
fn ipv6(frame: &[u8], l3: usize) -> Result<Ip, FrameError> {
    const IPV6: &str = "IPv6 header";
    let &[ver_tc, tc_flow, _, _, len0, len1, next_header, _hop_limit] = take::<8>(frame, l3, IPV6)?;
    let src = u128::from_be_bytes(*take::<16>(frame, l3 + 8, IPV6)?);
    let dst = u128::from_be_bytes(*take::<16>(frame, l3 + 24, IPV6)?);
    if ver_tc >> 4 != 6 {
        return Err(FrameError::BadIpVersion { expected: 6, found: ver_tc >> 4 });
    }
    let l4 = l3 + IPV6_HEADER_LEN;
    let end = l4 + usize::from(u16::from_be_bytes([len0, len1]));
    if end > frame.len() {
        return Err(FrameError::Truncated { what: "IPv6 payload" });
    }
    match next_header {
        IPPROTO_UDP => {}
        44 => return Err(FrameError::Fragment),
        // RFC 8200 §4.1 and the IANA "IPv6 Extension Header Types" registry:
        // hop-by-hop, routing, destination options, ESP, AH, mobility, HIP,
        // shim6, experimental.
        0 | 43 | 60 | 50 | 51 | 135 | 139 | 140 | 253 | 254 => {
            return Err(FrameError::Ipv6ExtensionHeader(next_header));
        }
        other => return Err(FrameError::NotUdp(other)),
    }
    // ::ffff:0:0/96
    if src >> 32 == 0xffff || dst >> 32 == 0xffff {
        return Err(FrameError::Ipv4MappedAddress);
    }
    // The traffic class straddles the first two bytes; ECN is its low two
    // bits, bits 4-5 of the second byte.
    Ok(Ip { addrs: Addrs::V6(src, dst), ecn: (tc_flow >> 4) & 0b11, l4, end })
}

/// The `N` bytes of `buf` at `at`, or `Truncated { what }`.
fn take<'a, const N: usize>(buf: &'a [u8], at: usize, what: &'static str) -> Result<&'a [u8; N], FrameError> {
    buf.get(at..).and_then(<[u8]>::first_chunk).ok_or(FrameError::Truncated { what })
}
