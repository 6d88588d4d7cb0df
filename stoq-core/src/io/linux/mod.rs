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
mod uring;

pub use mmsg::LinuxBatchIo;
pub use uring::UringIo;
