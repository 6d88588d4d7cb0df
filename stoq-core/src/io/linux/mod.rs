//! Linux packet backends: `linux-batch` (`sendmmsg`/`recvmmsg` with UDP
//! GSO/GRO, ECN, packet info and `SO_TXTIME`) and `io_uring`. Shared
//! pieces: the control-message codec ([`cmsg`]) and the system-call
//! wrappers (`sys`, the only module here with `unsafe` outside io_uring).

pub mod cmsg;
mod mmsg;
mod socket;
pub(crate) mod sys;

pub use mmsg::LinuxBatchIo;
