//! Linux packet backends: `linux-batch` (`sendmmsg`/`recvmmsg` with UDP
//! GSO/GRO, ECN, packet info and `SO_TXTIME`) and `io_uring` (multishot
//! receive into a provided-buffer ring, linked `sendmsg` submissions).
//! Shared pieces: the control-message codec ([`cmsg`]), socket options
//! (`socket`) and the system-call wrappers (`sys`, which with `uring` are
//! the only modules here with `unsafe`).

pub mod cmsg;
mod mmsg;
mod plan;
mod socket;
pub(crate) mod sys;
#[cfg(test)]
mod testing;
mod uring;

pub use mmsg::LinuxBatchIo;

use std::net::SocketAddr;

use crate::io::{IoCapabilities, IoCounters, RxBatch, RxMeta};
use plan::SendPlan;

/// Segments per GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 or more).
pub const MAX_SEGMENTS: usize = 64;
/// A receive slot holds the largest GRO super-buffer (64 KiB), so nothing
/// is truncated.
const RX_SLOT: usize = 65_535;

/// What a Linux socket backend can do, from what its socket turned out to
/// support.
fn capabilities(plan: &SendPlan, gro: bool, (recv_buffer, send_buffer): (usize, usize)) -> IoCapabilities {
    IoCapabilities {
        max_gso_segments: if plan.gso { MAX_SEGMENTS } else { 1 },
        gro,
        ecn: true,
        kernel_pacing: plan.kernel_pacing(),
        rx_batch: plan.max(),
        tx_batch: plan.max(),
        rx_slot_size: RX_SLOT,
        recv_buffer,
        send_buffer,
        zero_copy: false,
    }
}
pub use uring::UringIo;

/// What one receive call took in, added to the counters once at its end.
/// Both Linux backends finish a received datagram the same way here.
#[derive(Default)]
struct RxTally {
    datagrams: u64,
    bytes: u64,
    ecn_ce: u64,
    errors: u64,
}

impl RxTally {
    /// Commits a `len`-byte datagram (already in the batch's next slot) with
    /// what its control messages said: GRO segment size, the destination
    /// address (the socket's own when not reported) and ECN.
    fn commit(&mut self, batch: &mut RxBatch, len: usize, src: SocketAddr, info: &cmsg::RecvInfo, local: &SocketAddr) {
        let segment_size = info.gro_segment.map_or(len, usize::from).clamp(1, len.max(1));
        let dst = info.dst_ip.map_or(*local, |ip| SocketAddr::new(sys::in_family_of(ip, local), local.port()));
        batch.commit(RxMeta { len, src, dst, segment_size, ecn: info.ecn });
        self.datagrams += len.div_ceil(segment_size) as u64;
        self.bytes += len as u64;
        self.ecn_ce += u64::from(info.ecn == 0b11);
    }

    /// Adds the totals to the backend's counters.
    fn add_to(&self, c: &IoCounters) {
        IoCounters::add(&c.rx_datagrams, self.datagrams);
        IoCounters::add(&c.rx_bytes, self.bytes);
        IoCounters::add(&c.rx_errors, self.errors);
        IoCounters::add(&c.rx_ecn_ce, self.ecn_ce);
    }
}
