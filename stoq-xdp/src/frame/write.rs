//! Transmit: Ethernet, IP and UDP headers written in front of a payload that
//! is already in place.

use std::net::{Ipv4Addr, SocketAddr};

use super::checksum::Checksum;
use super::{
    ETH_HEADER_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, IPPROTO_UDP, IPV4_HEADER_LEN, IPV6_HEADER_LEN,
    MacAddr, UDP_HEADER_LEN, VLAN_TAG_LEN,
};

/// TTL / hop limit of sent packets: the Linux default (`ip_default_ttl`).
const HOP_LIMIT: u8 = 64;
/// IPv4 "don't fragment": QUIC never relies on fragmentation (RFC 9000 §14).
const IPV4_DF: u16 = 0x4000;
/// Largest UDP payload whose IPv4 total length fits in 16 bits.
const MAX_IPV4_PAYLOAD: usize = u16::MAX as usize - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// Largest UDP payload whose IPv6 payload length fits in 16 bits (no
/// jumbograms).
const MAX_IPV6_PAYLOAD: usize = u16::MAX as usize - UDP_HEADER_LEN;

/// The link-layer part of an outgoing frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct L2 {
    /// Our interface's address.
    pub src: MacAddr,
    /// The next hop's address (the peer on-link, else the gateway).
    pub dst: MacAddr,
    /// 802.1Q VLAN ID (0..=4095) to tag the frame with, priority 0.
    pub vlan: Option<u16>,
}

/// Why [`write_headers`] could not frame a datagram. Each is a bug in the
/// caller or a misconfigured path, not something the peer can cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// One address is IPv4 (or IPv4-mapped IPv6) and the other real IPv6.
    #[error("IP: cannot send from {src} to {dst}: the address families differ")]
    FamilyMismatch {
        /// The source address given.
        src: SocketAddr,
        /// The destination address given.
        dst: SocketAddr,
    },
    /// The frame buffer cannot hold the headers and the payload.
    #[error("frame buffer of {have} bytes too small: headers and payload need {need}")]
    BufferTooSmall {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// The payload does not fit in the IP length fields.
    #[error("UDP payload of {len} bytes too large for the IP length field (at most {max})")]
    PayloadTooLarge {
        /// The payload length given.
        len: usize,
        /// The largest payload for this address family.
        max: usize,
    },
    /// The ECN codepoint does not fit in two bits.
    #[error("IP: ECN codepoint {0} out of range (0..=3)")]
    BadEcn(u8),
    /// The VLAN ID does not fit in twelve bits.
    #[error("Ethernet: VLAN ID {0} out of range (0..=4095)")]
    BadVlan(u16),
}

/// Bytes of headers in front of the payload: Ethernet (14), a VLAN tag (4)
/// if `vlan`, IPv4 (20) or IPv6 (40), UDP (8).
pub const fn headers_len(ipv6: bool, vlan: bool) -> usize {
    ETH_HEADER_LEN
        + if vlan { VLAN_TAG_LEN } else { 0 }
        + if ipv6 { IPV6_HEADER_LEN } else { IPV4_HEADER_LEN }
        + UDP_HEADER_LEN
}

/// Whether a datagram from `src` to `dst` goes out as IPv6 (else IPv4), for
/// [`headers_len`]. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a
/// dual-stack socket reports for IPv4 peers) count as IPv4.
pub fn is_ipv6_frame(src: &SocketAddr, dst: &SocketAddr) -> Result<bool, WriteError> {
    Ok(matches!(ip_pair(src, dst)?, IpPair::V6(..)))
}

/// Source and destination as integers (`to_bits`): aligned, so they pass in
/// registers rather than as byte arrays re-read from the stack.
enum IpPair {
    V4(u32, u32),
    V6(u128, u128),
}

#[inline]
fn ip_pair(src: &SocketAddr, dst: &SocketAddr) -> Result<IpPair, WriteError> {
    // Matching on `SocketAddr` itself rather than on `IpAddr::to_canonical`
    // keeps the addresses in registers (the enum round trip cost a
    // store-forwarding stall per packet).
    match (ipv4_of(src), ipv4_of(dst), src, dst) {
        (Some(s), Some(d), _, _) => Ok(IpPair::V4(s.to_bits(), d.to_bits())),
        (None, None, SocketAddr::V6(s), SocketAddr::V6(d)) => Ok(IpPair::V6(s.ip().to_bits(), d.ip().to_bits())),
        _ => Err(WriteError::FamilyMismatch { src: *src, dst: *dst }),
    }
}

/// The IPv4 address of `addr`, also when written IPv4-mapped.
#[inline]
fn ipv4_of(addr: &SocketAddr) -> Option<Ipv4Addr> {
    match addr {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped(),
    }
}

/// Writes the Ethernet, IP and UDP headers of a datagram from `src` to `dst`
/// whose payload already lies at `frame[h..h + payload_len]`, where `h` is
/// [`headers_len`] for this frame, and returns the frame's length
/// `h + payload_len`.
///
/// IPv4 goes out with DF set, TTL 64, the given identification (any value
/// will do for a datagram that is never fragmented, RFC 6864 §4.1) and its
/// header checksum; IPv6 with hop limit 64 and flow label 0. `ecn` (0..=3)
/// fills the low bits of the TOS / traffic class, with DSCP 0. The UDP
/// checksum is computed over the pseudo-header and payload, 0 being sent as
/// `0xffff` (RFC 768; RFC 8200 §8.1).
pub fn write_headers(
    frame: &mut [u8],
    l2: &L2,
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
    ecn: u8,
    ipv4_id: u16,
) -> Result<usize, WriteError> {
    let ips = ip_pair(&src, &dst)?;
    if ecn > 0b11 {
        return Err(WriteError::BadEcn(ecn));
    }
    let vlan = match l2.vlan {
        Some(id) if id > 0x0fff => return Err(WriteError::BadVlan(id)),
        vlan => vlan,
    };
    let (ipv6, max) = match ips {
        IpPair::V4(..) => (false, MAX_IPV4_PAYLOAD),
        IpPair::V6(..) => (true, MAX_IPV6_PAYLOAD),
    };
    if payload_len > max {
        return Err(WriteError::PayloadTooLarge { len: payload_len, max });
    }
    let total = headers_len(ipv6, vlan.is_some()) + payload_len;
    let too_small = WriteError::BufferTooSmall { need: total, have: frame.len() };
    let frame = frame.get_mut(..total).ok_or(too_small)?;

    // Ethernet II, and the 802.1Q tag between the addresses and the ethertype.
    let mut rest = put(frame, l2.dst.0).ok_or(too_small)?;
    rest = put(rest, l2.src.0).ok_or(too_small)?;
    if let Some(id) = vlan {
        // Tag control information: priority 0, DEI 0, the VLAN ID.
        rest = put(rest, ETHERTYPE_VLAN.to_be_bytes()).ok_or(too_small)?;
        rest = put(rest, id.to_be_bytes()).ok_or(too_small)?;
    }
    let ethertype = if ipv6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
    rest = put(rest, ethertype.to_be_bytes()).ok_or(too_small)?;

    // Both limits above keep these within 16 bits.
    let udp_len = (UDP_HEADER_LEN + payload_len) as u16;
    // The pseudo-header (RFC 768; RFC 8200 §8.1) sums the same for both
    // families: the addresses, the protocol and the UDP length, zero-padded.
    let mut sum = Checksum::new();
    rest = match ips {
        IpPair::V4(s, d) => {
            sum.add_u32(s).add_u32(d);
            ipv4_header(rest, s, d, udp_len, ecn, ipv4_id).ok_or(too_small)?
        }
        IpPair::V6(s, d) => {
            sum.add_u128(s).add_u128(d);
            // RFC 8200 §3: version 6, traffic class = DSCP 0 and ECN, flow
            // label 0, payload length, next header, hop limit, addresses.
            let [l0, l1] = udp_len.to_be_bytes();
            rest = put(rest, [0x60, ecn << 4, 0, 0, l0, l1, IPPROTO_UDP, HOP_LIMIT]).ok_or(too_small)?;
            rest = put(rest, s.to_be_bytes()).ok_or(too_small)?;
            put(rest, d.to_be_bytes()).ok_or(too_small)?
        }
    };
    sum.add_u16(IPPROTO_UDP.into()).add_u16(udp_len);

    let (udp, payload) = rest.split_first_chunk_mut::<UDP_HEADER_LEN>().ok_or(too_small)?;
    let (sport, dport) = (src.port(), dst.port());
    sum.add_u16(sport).add_u16(dport).add_u16(udp_len).add_bytes(payload);
    let udp_checksum = match sum.finish() {
        0 => 0xffff,
        c => c,
    };
    let [s0, s1] = sport.to_be_bytes();
    let [d0, d1] = dport.to_be_bytes();
    let [l0, l1] = udp_len.to_be_bytes();
    let [c0, c1] = udp_checksum.to_be_bytes();
    *udp = [s0, s1, d0, d1, l0, l1, c0, c1];
    Ok(total)
}

/// Writes an IPv4 header without options (RFC 791 §3.1), checksum included,
/// at the front of `buf` and returns the rest.
fn ipv4_header(buf: &mut [u8], src: u32, dst: u32, udp_len: u16, ecn: u8, id: u16) -> Option<&mut [u8]> {
    let version_tos = 0x4500 | u16::from(ecn);
    let total_len = IPV4_HEADER_LEN as u16 + udp_len;
    let ttl_proto = u16::from_be_bytes([HOP_LIMIT, IPPROTO_UDP]);
    // Summed from the field values rather than read back from the frame, and
    // written as 32-bit words: a wide load of bytes just stored one by one
    // stalls on store forwarding.
    let sum = Checksum::new()
        .add_u16(version_tos)
        .add_u16(total_len)
        .add_u16(id)
        .add_u16(IPV4_DF)
        .add_u16(ttl_proto)
        .add_u32(src)
        .add_u32(dst)
        .finish();
    let word = |hi: u16, lo: u16| (u32::from(hi) << 16 | u32::from(lo)).to_be_bytes();
    let buf = put(buf, word(version_tos, total_len))?;
    let buf = put(buf, word(id, IPV4_DF))?;
    let buf = put(buf, word(ttl_proto, sum))?;
    let buf = put(buf, src.to_be_bytes())?;
    put(buf, dst.to_be_bytes())
}

/// Writes `bytes` at the front of `buf` and returns the rest, or `None` if
/// `buf` is shorter than `N`.
fn put<const N: usize>(buf: &mut [u8], bytes: [u8; N]) -> Option<&mut [u8]> {
    let (head, rest) = buf.split_first_chunk_mut::<N>()?;
    *head = bytes;
    Some(rest)
}
