//! Ethernet II / IPv4 / IPv6 / UDP framing: what sits in front of a QUIC
//! datagram in an AF_XDP frame.
//!
//! With AF_XDP the kernel's IP and UDP layers are bypassed, so this module
//! does their per-packet work:
//!
//! - **Receive.** [`parse_udp`] checks a frame that an RX descriptor points at
//!   and returns the addresses, the ECN codepoint and the payload's range
//!   inside the frame, so QUIC reads the datagram where it lies.
//! - **Transmit.** The QUIC stack writes the datagram straight into the UMEM
//!   frame at offset [`headers_len`]; [`write_headers`] then writes the
//!   Ethernet, IP and UDP headers in front of it, computing the UDP checksum
//!   in the same pass. The payload is never copied.
//!
//! Neither direction allocates, and no input makes them panic. The code is
//! safe Rust (`forbid(unsafe_code)`).
//!
//! # What is accepted
//!
//! - Ethernet II, with at most one VLAN tag (IEEE 802.1Q `0x8100` or 802.1ad
//!   `0x88a8`), as the XDP program also accepts. Bytes after the IP packet
//!   (Ethernet padding of short frames) are ignored.
//! - IPv4 (RFC 791 §3.1): version 4, IHL ≥ 5 (options are skipped), total
//!   length within the frame, header checksum verified (RFC 1071). Fragments
//!   are refused with [`FrameError::Fragment`]: the XDP program passes them to
//!   the kernel, which reassembles them.
//! - IPv6 (RFC 8200 §3): version 6, payload length within the frame, next
//!   header UDP. Extension headers (RFC 8200 §4) are refused with their own
//!   error, a fragment header (§4.5) with [`FrameError::Fragment`]. So are
//!   IPv4-mapped addresses, which must not appear on the wire (RFC 4291
//!   §2.5.5.2, RFC 4942 §2.2): [`write_headers`] would answer them over IPv4,
//!   to a different host.
//! - UDP (RFC 768): a length of at least 8 that fits in the IP payload. Bytes
//!   of the IP payload after the UDP length are ignored, as Linux does
//!   (`udp_rcv` trims to it).
//! - ECN is the low two bits of the IPv4 TOS / IPv6 traffic class (RFC 3168
//!   §5).
//!
//! **The UDP checksum is not verified on receive**, by design. A kernel sender
//! on a veth pair uses `CHECKSUM_PARTIAL` and leaves only the pseudo-header
//! sum in the field, physical NICs verify the checksum in hardware, and QUIC's
//! AEAD (RFC 9001 §5) rejects a corrupted payload anyway. On transmit the
//! checksum is always computed in software (mandatory for IPv6, RFC 8200 §8.1;
//! for IPv4 because AF_XDP has no checksum offload here), a computed 0 being
//! sent as `0xffff` (RFC 768).
//!
//! # Why written here rather than taken from a crate
//!
//! `etherparse` parses Ethernet/VLAN/IP/UDP into borrowed slices without
//! allocating, and can serialise headers. It fits the receive side nearly,
//! but not the policy: its slicer does not verify the IPv4 header checksum
//! and accepts IPv6 extension headers and fragments, so each of those checks
//! would be redone on top. On transmit its builder writes headers and then
//! copies the payload behind them, and its UDP checksum is a separate pass
//! over a payload slice; what we need is headers written in front of a
//! payload already in place, with the pseudo-header sum fused to our layout.
//! What remains of this module once those are removed is a few hundred lines
//! of fixed-offset reads and writes, cheaper to keep than a dependency and its
//! updates, and it is fuzzed (`fuzz/fuzz_targets/xdp_frame.rs`).
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use stoq_xdp::frame::{self, L2, MacAddr};
//!
//! let src: SocketAddr = "192.0.2.1:4433".parse()?;
//! let dst: SocketAddr = "198.51.100.7:50000".parse()?;
//! let l2 = L2 { src: MacAddr([2, 0, 0, 0, 0, 1]), dst: MacAddr([2, 0, 0, 0, 0, 2]), vlan: None };
//! let datagram = b"a QUIC datagram";
//!
//! // Where the QUIC stack would write its datagram, in the UMEM frame.
//! let mut umem_frame = [0u8; 2048];
//! let at = frame::headers_len(frame::is_ipv6_frame(&src, &dst)?, l2.vlan.is_some());
//! umem_frame[at..at + datagram.len()].copy_from_slice(datagram);
//!
//! let len = frame::write_headers(&mut umem_frame, &l2, src, dst, datagram.len(), 0b10, 1)?;
//! let rx = frame::parse_udp(&umem_frame[..len])?;
//! assert_eq!((rx.src, rx.dst, rx.ecn), (src, dst, 0b10));
//! assert_eq!(rx.payload(&umem_frame[..len]), datagram);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod checksum;
mod parse;
#[cfg(test)]
mod tests;
mod write;

use std::fmt;

pub use parse::{FrameError, UdpFrame, parse_udp};
pub use write::{L2, WriteError, headers_len, is_ipv6_frame, write_headers};

/// Length of an Ethernet II header: two addresses and the ethertype.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q / 802.1ad VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// The most [`write_headers`] puts in front of a payload (tagged IPv6):
/// headroom that fits every frame this module writes.
pub const MAX_HEADERS_LEN: usize = ETH_HEADER_LEN + VLAN_TAG_LEN + IPV6_HEADER_LEN + UDP_HEADER_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;

/// An Ethernet (EUI-48) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
