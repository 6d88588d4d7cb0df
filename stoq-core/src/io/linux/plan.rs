//! Send planning shared by the Linux backends: how pending transmits become
//! kernel messages (one GSO message per transmit, or one per datagram once
//! GSO is off), what control messages each carries, and how a completed
//! prefix of messages maps back onto the batch. `linux-batch` hands the
//! messages to `sendmmsg`, `io_uring` to a chain of linked `SendMsg`s.

use std::io;
use std::net::SocketAddr;

use super::cmsg::Encoder;
use super::socket::{Features, TxClock};
use super::sys::{self, NAME_LEN};
use crate::io::{IoCounters, TxBatch};

/// One message to build: the planner says what, the backend says where.
pub(crate) struct Message<'b> {
    pub payload: &'b [u8],
    dst: SocketAddr,
    src: SocketAddr,
    segment_size: usize,
    segments: usize,
    ecn: u8,
    at: Option<std::time::Instant>,
    wildcard: bool,
    txtime: Option<TxClock>,
}

impl Message<'_> {
    /// Writes the message's address and control data; returns their lengths.
    pub fn encode(&self, name: &mut [u8; NAME_LEN], control: &mut [u8]) -> (usize, usize) {
        let name_len = sys::encode_sockaddr(self.dst, name);
        let mut enc = Encoder::new(control);
        if self.segments > 1 {
            enc.gso_segment(self.segment_size as u16);
        }
        if self.wildcard && !self.src.ip().is_unspecified() {
            enc.src_ip(self.src.ip());
        }
        if self.ecn != 0 {
            enc.ecn(self.dst.ip(), self.ecn);
        }
        if let (Some(clock), Some(at)) = (&self.txtime, self.at) {
            enc.txtime(clock.ns(at));
        }
        (name_len, enc.finish())
    }
}

/// What a failed send means for the batch.
pub(crate) enum Failure {
    /// The socket is full: wait for writability.
    Blocked,
    /// Try the same messages again (interrupted, or GSO just turned off).
    Retry,
    /// The message was dropped (counted); go on with the next.
    Dropped,
}

pub(crate) struct SendPlan {
    /// Per planned message: (segments, bytes).
    entries: Vec<(usize, usize)>,
    max: usize,
    /// GSO in use; cleared for good when the path refuses it.
    pub gso: bool,
    /// Bound to an unspecified address: messages name their source address.
    wildcard: bool,
    txtime: Option<TxClock>,
    backend: &'static str,
}

impl SendPlan {
    pub fn new(backend: &'static str, max: usize, local: &SocketAddr, features: &Features) -> Self {
        Self {
            entries: Vec::with_capacity(max),
            max,
            gso: features.gso,
            wildcard: local.ip().is_unspecified(),
            txtime: features.txtime,
            backend,
        }
    }

    /// Most transmits per call: the backend's batch size.
    pub fn max(&self) -> usize {
        self.max
    }

    pub fn kernel_pacing(&self) -> bool {
        self.txtime.is_some()
    }

    /// Calls `each(m, message)` for as many pending messages as fit (at most
    /// `max`), in order; returns how many.
    pub fn plan<'b>(&mut self, batch: &'b TxBatch, mut each: impl FnMut(usize, Message<'b>)) -> usize {
        self.entries.clear();
        'transmits: for t in batch.pending() {
            let per_msg = if self.gso { t.segments } else { 1 };
            for chunk in batch.payload(t).chunks(t.segment_size * per_msg) {
                let m = self.entries.len();
                if m == self.max {
                    break 'transmits;
                }
                let segments = chunk.len().div_ceil(t.segment_size);
                self.entries.push((segments, chunk.len()));
                each(
                    m,
                    Message {
                        payload: chunk,
                        dst: t.dst,
                        src: t.src,
                        segment_size: t.segment_size,
                        segments,
                        ecn: t.ecn,
                        at: t.at,
                        wildcard: self.wildcard,
                        txtime: self.txtime,
                    },
                );
            }
        }
        self.entries.len()
    }

    /// Marks planned messages `done` (starting at the batch's head) as out of
    /// the batch, counting them as sent.
    pub fn complete(&self, batch: &mut TxBatch, done: std::ops::Range<usize>, counters: &IoCounters) {
        let (mut datagrams, mut bytes) = (0, 0);
        let mut head_left = batch.pending().first().map_or(0, |t| t.segments);
        for &(segments, len) in &self.entries[done] {
            datagrams += segments as u64;
            bytes += len as u64;
            if segments == head_left {
                batch.advance(1);
                head_left = batch.pending().first().map_or(0, |t| t.segments);
            } else {
                batch.advance_segments(segments);
                head_left -= segments;
            }
        }
        IoCounters::add(&counters.tx_datagrams, datagrams);
        IoCounters::add(&counters.tx_bytes, bytes);
    }

    /// Decides what the failure of planned message `m` (the batch's head)
    /// means; drops it from the batch when nothing better can be done.
    pub fn failed(&mut self, m: usize, e: &io::Error, batch: &mut TxBatch, counters: &IoCounters) -> Failure {
        let segments = self.entries[m].0;
        match e.raw_os_error() {
            Some(libc::EAGAIN) => Failure::Blocked,
            Some(libc::EINTR) => Failure::Retry,
            Some(libc::EIO | libc::EINVAL) if self.gso && segments > 1 => {
                // GSO advertised but refused on this path: resend the same
                // transmit unsegmented, and keep GSO off from now on.
                log::warn!(
                    "{}: UDP GSO send to {} failed ({e}); falling back to one datagram per packet",
                    self.backend,
                    batch.pending()[0].dst
                );
                self.gso = false;
                IoCounters::add(&counters.gso_fallbacks, 1);
                Failure::Retry
            }
            _ => {
                // One undeliverable message (unreachable peer, oversize):
                // QUIC's loss recovery resends what mattered.
                log::debug!("{}: send to {} failed: {e}", self.backend, batch.pending()[0].dst);
                IoCounters::add(&counters.tx_errors, segments as u64);
                if segments == batch.pending()[0].segments {
                    batch.advance(1);
                } else {
                    batch.advance_segments(segments);
                }
                Failure::Dropped
            }
        }
    }
}
