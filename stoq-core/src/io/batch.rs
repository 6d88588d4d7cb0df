//! Receive and transmit batches: the unit of work crossing the [`PacketIo`]
//! boundary. Both own one contiguous buffer allocated up front and reused for
//! the life of the shard, so the hot path never allocates.
//!
//! [`PacketIo`]: super::PacketIo

use std::net::SocketAddr;
use std::time::Instant;

/// Largest payload one UDP GSO send may carry (64 KiB minus IPv6/UDP headers).
pub const MAX_GSO_BYTES: usize = 65_000;

/// What the backend learned about one received datagram (or GRO super-buffer).
#[derive(Debug, Clone, Copy)]
pub struct RxMeta {
    /// Bytes written into the slot.
    pub len: usize,
    /// Sender's address.
    pub src: SocketAddr,
    /// Local address the datagram arrived on (the socket's bound address when
    /// the backend cannot tell the exact destination).
    pub dst: SocketAddr,
    /// Size of each coalesced segment; equal to `len` without GRO.
    pub segment_size: usize,
    /// ECN codepoint from the IP header (0 when unknown).
    pub ecn: u8,
}

/// A batch of receive slots, filled by [`PacketIo::recv`](super::PacketIo::recv).
pub struct RxBatch {
    buf: Vec<u8>,
    slot_size: usize,
    meta: Vec<RxMeta>,
    capacity: usize,
}

/// An empty batch with no slots, which does not allocate (the shard swaps
/// it in while it borrows the real batch).
impl Default for RxBatch {
    fn default() -> Self {
        Self { buf: Vec::new(), slot_size: 0, meta: Vec::new(), capacity: 0 }
    }
}

impl RxBatch {
    /// `slots` receive buffers of `slot_size` bytes each.
    pub fn new(slots: usize, slot_size: usize) -> Self {
        assert!(slots > 0 && slot_size > 0, "an rx batch needs at least one non-empty slot");
        Self { buf: vec![0; slots * slot_size], slot_size, meta: Vec::with_capacity(slots), capacity: slots }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Size of each slot in bytes.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Number of filled slots.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// True when no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Forgets all filled slots.
    pub fn clear(&mut self) {
        self.meta.clear();
    }

    /// The next free slot for a backend to receive into, or `None` when full.
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        let i = self.meta.len();
        (i < self.capacity).then(|| &mut self.buf[i * self.slot_size..(i + 1) * self.slot_size])
    }

    /// Every unfilled slot, as one buffer of [`slot_size`](Self::slot_size)
    /// slots, for backends that receive several datagrams per call; they
    /// then [`commit`](Self::commit) the filled slots in order.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let start = self.meta.len() * self.slot_size;
        &mut self.buf[start..self.capacity * self.slot_size]
    }

    /// Marks the slot returned by [`next_slot`](Self::next_slot) as filled.
    pub fn commit(&mut self, meta: RxMeta) {
        debug_assert!(meta.len <= self.slot_size && self.meta.len() < self.capacity);
        self.meta.push(meta);
    }

    /// Filled slot `i`: its bytes (mutable, QUIC decrypts in place) and metadata.
    pub fn get_mut(&mut self, i: usize) -> (&mut [u8], RxMeta) {
        let m = self.meta[i];
        let start = i * self.slot_size;
        (&mut self.buf[start..start + m.len], m)
    }
}

/// One send operation: a datagram, or several equal-size segments to the same
/// peer that a GSO-capable backend hands to the kernel in one call (the last
/// segment may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Peer address.
    pub dst: SocketAddr,
    /// Local source address chosen by QUIC.
    pub src: SocketAddr,
    /// Offset of the first segment in the batch buffer.
    pub offset: usize,
    /// Total bytes over all segments.
    pub len: usize,
    /// Size of every segment but possibly the last.
    pub segment_size: usize,
    /// Number of segments.
    pub segments: usize,
    /// Earliest send time (QUIC pacing); a backend with kernel pacing passes
    /// it to the kernel, others send at once (the shard already waited).
    pub at: Option<Instant>,
    /// ECN codepoint for the IP header (0 = not ECN-capable).
    pub ecn: u8,
    sealed: bool,
}

/// A batch of outgoing datagrams, assembled by the shard straight from
/// `quiche::Connection::send` into one contiguous buffer and drained by
/// [`PacketIo::send`](super::PacketIo::send).
pub struct TxBatch {
    buf: Vec<u8>,
    transmits: Vec<Transmit>,
    max_transmits: usize,
    max_segments: usize,
    max_payload: usize,
    cursor: usize,
    sent: usize,
}

impl TxBatch {
    /// Room for `max_transmits` sends of up to `max_segments` packets each of at
    /// most `max_payload` bytes.
    pub fn new(max_transmits: usize, max_segments: usize, max_payload: usize) -> Self {
        assert!(max_transmits > 0 && max_segments > 0 && max_payload > 0, "empty tx batch");
        let max_segments = max_segments.min(MAX_GSO_BYTES / max_payload).max(1);
        Self {
            buf: vec![0; max_transmits * max_segments * max_payload],
            transmits: Vec::with_capacity(max_transmits),
            max_transmits,
            max_segments,
            max_payload,
            cursor: 0,
            sent: 0,
        }
    }

    /// Largest packet a slot holds.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// True when another packet might not fit: send the batch first.
    ///
    /// Conservative by design: at `max_transmits` the next packet might be
    /// for another peer and need a transmit of its own, and it is written
    /// before we know, so the batch counts as full even if the last
    /// transmit could still grow.
    pub fn is_full(&self) -> bool {
        self.cursor + self.max_payload > self.buf.len() || self.transmits.len() >= self.max_transmits
    }

    /// Where the next packet is to be written (`max_payload` bytes).
    ///
    /// Panics if the batch [`is_full`](Self::is_full).
    pub fn slot_mut(&mut self) -> &mut [u8] {
        assert!(!self.is_full(), "slot_mut on a full tx batch");
        &mut self.buf[self.cursor..self.cursor + self.max_payload]
    }

    /// Records a packet of `len` bytes written into the slot, coalescing it
    /// with the previous one into a GSO send when the peer, the source and
    /// the segment size allow.
    pub fn commit(&mut self, len: usize, dst: SocketAddr, src: SocketAddr) {
        self.commit_with(len, dst, src, None, 0);
    }

    /// [`commit`](Self::commit) with a pacing time and an ECN codepoint. A
    /// packet joins the previous transmit only with the same ECN codepoint;
    /// the transmit keeps the pacing time of its first packet (a GSO burst
    /// leaves at once).
    pub fn commit_with(&mut self, len: usize, dst: SocketAddr, src: SocketAddr, at: Option<Instant>, ecn: u8) {
        debug_assert!(len > 0 && len <= self.max_payload);
        let max_segments = self.max_segments;
        let extend = match self.transmits.last_mut() {
            Some(t)
                if !t.sealed
                    && t.segments < max_segments
                    && t.dst == dst
                    && t.src == src
                    && t.ecn == ecn
                    && len <= t.segment_size
                    && t.len + len <= MAX_GSO_BYTES =>
            {
                t.len += len;
                t.segments += 1;
                t.sealed = len < t.segment_size;
                true
            }
            _ => false,
        };
        if !extend {
            self.transmits.push(Transmit {
                dst,
                src,
                offset: self.cursor,
                len,
                segment_size: len,
                segments: 1,
                at,
                ecn,
                sealed: max_segments == 1,
            });
        }
        self.cursor += len;
    }

    /// Ends the current transmit: the next packet starts a new one (the
    /// shard seals at the connection's `send_quantum`, so one GSO burst
    /// never exceeds what the congestion controller allows at once).
    pub fn seal(&mut self) {
        if let Some(t) = self.transmits.last_mut() {
            t.sealed = true;
        }
    }

    /// Sends not yet handed to the kernel, oldest first.
    pub fn pending(&self) -> &[Transmit] {
        &self.transmits[self.sent..]
    }

    /// The bytes of one transmit from [`pending`](Self::pending).
    pub fn payload(&self, t: &Transmit) -> &[u8] {
        &self.buf[t.offset..t.offset + t.len]
    }

    /// Marks the first `n` pending transmits as sent; resets the batch once
    /// everything is out.
    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        debug_assert!(self.sent <= self.transmits.len());
        if self.sent == self.transmits.len() {
            self.transmits.clear();
            self.cursor = 0;
            self.sent = 0;
        }
    }

    /// Marks the first `n` segments of the oldest pending transmit as sent,
    /// for backends that split a transmit (no GSO, or GSO refused at run
    /// time) and got only part of it out.
    pub fn advance_segments(&mut self, n: usize) {
        let t = &mut self.transmits[self.sent];
        debug_assert!(n < t.segments, "advance() a transmit sent whole");
        let bytes = n * t.segment_size;
        t.offset += bytes;
        t.len -= bytes;
        t.segments -= n;
    }

    /// True when nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty()
    }

    /// Total packets (segments) waiting to be sent.
    pub fn pending_packets(&self) -> usize {
        self.pending().iter().map(|t| t.segments).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn push(b: &mut TxBatch, len: usize, port: u16, fill: u8) {
        b.slot_mut()[..len].fill(fill);
        b.commit(len, addr(port), addr(1));
    }

    #[test]
    fn equal_sizes_to_one_peer_coalesce_and_a_short_tail_seals() {
        let mut b = TxBatch::new(4, 8, 1200);
        push(&mut b, 1200, 9, 1);
        push(&mut b, 1200, 9, 2);
        push(&mut b, 700, 9, 3); // shorter tail joins, then seals
        push(&mut b, 1200, 9, 4); // new transmit
        push(&mut b, 1200, 10, 5); // other peer: new transmit
        let p = b.pending();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].segments, p[0].len, p[0].segment_size), (3, 3100, 1200));
        assert_eq!((p[1].segments, p[1].offset), (1, 3100));
        assert_eq!(p[2].dst, addr(10));
        let payload = b.payload(&p[0]);
        assert_eq!((payload[0], payload[1200], payload[2400], payload[3099]), (1, 2, 3, 3));
        assert_eq!(b.pending_packets(), 5);
    }

    #[test]
    fn larger_packet_never_joins_smaller_segments() {
        let mut b = TxBatch::new(4, 8, 1452);
        push(&mut b, 1000, 9, 0);
        push(&mut b, 1452, 9, 0);
        assert_eq!(b.pending().len(), 2);
    }

    #[test]
    fn without_gso_every_packet_is_its_own_transmit_and_fullness_is_exact() {
        let mut b = TxBatch::new(2, 1, 1452);
        push(&mut b, 1452, 9, 0);
        assert!(!b.is_full());
        push(&mut b, 1452, 9, 0);
        assert!(b.is_full());
        assert_eq!(b.pending().len(), 2);
        b.advance(1);
        assert_eq!(b.pending().len(), 1);
        b.advance(1);
        assert!(b.is_empty() && !b.is_full());
    }

    #[test]
    fn segment_count_respects_the_gso_byte_limit() {
        let mut b = TxBatch::new(2, 64, 1452);
        for _ in 0..(MAX_GSO_BYTES / 1452) {
            push(&mut b, 1452, 9, 0);
        }
        assert_eq!(b.pending().len(), 1);
        push(&mut b, 1452, 9, 0);
        assert_eq!(b.pending().len(), 2);
    }

    #[test]
    fn rx_batch_slots_fill_in_order() {
        let mut r = RxBatch::new(2, 16);
        r.next_slot().unwrap()[..3].copy_from_slice(b"abc");
        r.commit(RxMeta { len: 3, src: addr(1), dst: addr(2), segment_size: 3, ecn: 0 });
        r.next_slot().unwrap();
        r.commit(RxMeta { len: 16, src: addr(1), dst: addr(2), segment_size: 16, ecn: 0 });
        assert!(r.next_slot().is_none());
        assert_eq!(r.get_mut(0).0, b"abc");
        r.clear();
        assert!(r.is_empty());
    }
}
