//! Connection ID layout and zero-allocation destination-CID parsing.
//!
//! Every connection ID that a STOQ endpoint chooses for itself is
//! [`CID_LEN`] bytes long:
//!
//! ```text
//! byte  0        1 ..= 7
//!      +-------+--------------------------+
//!      | shard |  random (CSPRNG)         |
//!      +-------+--------------------------+
//! ```
//!
//! The first byte names the shard that owns the connection, so any packet can
//! be steered by its destination connection ID alone (by the shard router
//! here, and later by a classic BPF program attached to an `SO_REUSEPORT`
//! group, which reads byte [`SHARD_BYTE_OFFSET`] of the DCID: packet offset
//! `1 + SHARD_BYTE_OFFSET` in a short-header packet). This module is the one
//! place that layout is defined.
//!
//! [`dcid`] reads the destination connection ID of a packet without
//! allocating (RFC 8999 §5 for the version-independent layout), which is what
//! the shard does for every received packet before it looks up the
//! connection.

use rand::RngCore;

/// Length in bytes of the connection IDs STOQ issues.
pub const CID_LEN: usize = 8;

/// Offset, within a STOQ connection ID, of the byte holding the shard index.
pub const SHARD_BYTE_OFFSET: usize = 0;

/// Longest connection ID QUIC v1 allows (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;

const QUIC_V1: u32 = 1;

/// Why a packet's destination connection ID could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The datagram was empty.
    #[error("empty datagram")]
    Empty,
    /// The datagram ended before the destination connection ID did.
    #[error("datagram truncated before the end of the destination connection ID")]
    Truncated,
    /// A QUIC v1 long header announced a connection ID longer than 20 bytes.
    #[error("QUIC v1 long header announces a {0}-byte connection ID (at most 20 allowed)")]
    CidTooLong(u8),
}

/// What [`dcid`] found at the front of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketDcid<'a> {
    /// The destination connection ID bytes.
    pub dcid: &'a [u8],
    /// True for a long-header packet (Initial, Handshake, 0-RTT, Retry, or
    /// version negotiation).
    pub long_header: bool,
}

/// Reads the destination connection ID of a QUIC packet.
///
/// Short-header packets carry no length, so `short_dcid_len` says how long the
/// receiver's own connection IDs are (always [`CID_LEN`] for STOQ).
pub fn dcid(packet: &[u8], short_dcid_len: usize) -> Result<PacketDcid<'_>, HeaderError> {
    let first = *packet.first().ok_or(HeaderError::Empty)?;
    if first & 0x80 == 0 {
        let dcid = packet.get(1..1 + short_dcid_len).ok_or(HeaderError::Truncated)?;
        return Ok(PacketDcid { dcid, long_header: false });
    }
    // Long header: flags(1) version(4) dcid_len(1) dcid(..)
    let len = *packet.get(5).ok_or(HeaderError::Truncated)?;
    // QUIC v1 caps CIDs at 20 bytes and such packets must be dropped; other
    // versions may use up to 255, and a server should still read them to
    // answer with Version Negotiation (RFC 9000 §17.2).
    let version = packet.get(1..5).ok_or(HeaderError::Truncated)?;
    if usize::from(len) > MAX_CID_LEN && version == QUIC_V1.to_be_bytes() {
        return Err(HeaderError::CidTooLong(len));
    }
    let dcid = packet.get(6..6 + usize::from(len)).ok_or(HeaderError::Truncated)?;
    Ok(PacketDcid { dcid, long_header: true })
}

/// Returns the shard index carried by a STOQ connection ID, if it is one.
pub fn shard_of(cid: &[u8]) -> Option<u8> {
    (cid.len() == CID_LEN).then(|| cid[SHARD_BYTE_OFFSET])
}

/// A connection ID as a fixed-size, copyable, hashable map key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidKey {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl CidKey {
    /// Makes a key from connection ID bytes; `None` if longer than 20 bytes.
    pub fn new(cid: &[u8]) -> Option<Self> {
        if cid.len() > MAX_CID_LEN {
            return None;
        }
        let mut bytes = [0; MAX_CID_LEN];
        bytes[..cid.len()].copy_from_slice(cid);
        Some(Self { len: cid.len() as u8, bytes })
    }

    /// The connection ID bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for CidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Issues connection IDs for one shard.
pub struct CidGenerator {
    shard: u8,
    rng: rand::rngs::StdRng,
}

impl CidGenerator {
    /// A generator for the given shard, seeded from the operating system.
    pub fn new(shard: u8) -> Self {
        use rand::SeedableRng;
        Self { shard, rng: rand::rngs::StdRng::from_os_rng() }
    }

    /// A fresh connection ID owned by this generator's shard.
    pub fn generate(&mut self) -> [u8; CID_LEN] {
        let mut cid = [0; CID_LEN];
        self.rng.fill_bytes(&mut cid);
        cid[SHARD_BYTE_OFFSET] = self.shard;
        cid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_header_dcid_is_fixed_length() {
        let pkt = [0x40, 1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0xbb];
        let d = dcid(&pkt, CID_LEN).unwrap();
        assert!(!d.long_header);
        assert_eq!(d.dcid, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(dcid(&pkt[..5], CID_LEN), Err(HeaderError::Truncated));
    }

    #[test]
    fn long_header_dcid_uses_its_length_byte() {
        let mut pkt = vec![0xc0, 0, 0, 0, 1, 3, 9, 8, 7, 0];
        let d = dcid(&pkt, CID_LEN).unwrap();
        assert!(d.long_header);
        assert_eq!(d.dcid, &[9, 8, 7]);
        pkt[5] = 21;
        pkt.resize(6 + 21, 0);
        assert_eq!(dcid(&pkt, CID_LEN), Err(HeaderError::CidTooLong(21)));
        pkt[4] = 2; // another version may use long CIDs
        assert_eq!(dcid(&pkt, CID_LEN).unwrap().dcid.len(), 21);
        pkt.truncate(10);
        pkt[5] = 10;
        assert_eq!(dcid(&pkt, CID_LEN), Err(HeaderError::Truncated));
        assert_eq!(dcid(&[], CID_LEN), Err(HeaderError::Empty));
    }

    #[test]
    fn generated_ids_carry_the_shard_and_differ() {
        let mut g = CidGenerator::new(7);
        let (a, b) = (g.generate(), g.generate());
        assert_eq!(shard_of(&a), Some(7));
        assert_eq!(shard_of(&b), Some(7));
        assert_ne!(a, b);
        assert_eq!(shard_of(&a[..4]), None);
    }

    #[test]
    fn key_round_trips_and_rejects_oversize() {
        let k = CidKey::new(&[1, 2, 3]).unwrap();
        assert_eq!(k.as_bytes(), &[1, 2, 3]);
        assert_ne!(k, CidKey::new(&[1, 2, 3, 0]).unwrap());
        assert!(CidKey::new(&[0; 21]).is_none());
    }
}
