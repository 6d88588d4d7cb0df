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

use crate::io::IoCapabilities;
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
    }
}
pub use uring::UringIo;
