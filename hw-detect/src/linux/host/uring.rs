//! io_uring as this process can use it: a small ring and
//! `IORING_REGISTER_PROBE` list the opcodes, and opening STOQ's own io_uring
//! backend decides whether STOQ can use it (so the answer covers everything
//! the backend checks, not a copy of that list that could drift).

use std::io;
use std::sync::Arc;

use io_uring::{IoUring, Probe, opcode};
use nix::errno::Errno;
use stoq_core::io::{BackendKind, IoCounters, SocketOptions};

use crate::{IoUringSupport, Known};

/// Names for the io_uring opcodes, using the `io-uring` crate's type names.
/// Where the crate has several types for one opcode (e.g. `Recv` and
/// `RecvMulti`), the name is the plain operation's. Naming only: whether
/// each is supported comes from the kernel's probe.
pub(super) const OPCODE_NAMES: &[(u8, &str)] = &[
    (opcode::Nop::CODE, "Nop"),
    (opcode::Readv::CODE, "Readv"),
    (opcode::Writev::CODE, "Writev"),
    (opcode::Fsync::CODE, "Fsync"),
    (opcode::ReadFixed::CODE, "ReadFixed"),
    (opcode::WriteFixed::CODE, "WriteFixed"),
    (opcode::PollAdd::CODE, "PollAdd"),
    (opcode::PollRemove::CODE, "PollRemove"),
    (opcode::SyncFileRange::CODE, "SyncFileRange"),
    (opcode::SendMsg::CODE, "SendMsg"),
    (opcode::RecvMsg::CODE, "RecvMsg"),
    (opcode::Timeout::CODE, "Timeout"),
    (opcode::TimeoutRemove::CODE, "TimeoutRemove"),
    (opcode::Accept::CODE, "Accept"),
    (opcode::AsyncCancel::CODE, "AsyncCancel"),
    (opcode::LinkTimeout::CODE, "LinkTimeout"),
    (opcode::Connect::CODE, "Connect"),
    (opcode::Fallocate::CODE, "Fallocate"),
    (opcode::OpenAt::CODE, "OpenAt"),
    (opcode::Close::CODE, "Close"),
    (opcode::FilesUpdate::CODE, "FilesUpdate"),
    (opcode::Statx::CODE, "Statx"),
    (opcode::Read::CODE, "Read"),
    (opcode::Write::CODE, "Write"),
    (opcode::Fadvise::CODE, "Fadvise"),
    (opcode::Madvise::CODE, "Madvise"),
    (opcode::Send::CODE, "Send"),
    (opcode::Recv::CODE, "Recv"),
    (opcode::OpenAt2::CODE, "OpenAt2"),
    (opcode::EpollCtl::CODE, "EpollCtl"),
    (opcode::Splice::CODE, "Splice"),
    (opcode::ProvideBuffers::CODE, "ProvideBuffers"),
    (opcode::RemoveBuffers::CODE, "RemoveBuffers"),
    (opcode::Tee::CODE, "Tee"),
    (opcode::Shutdown::CODE, "Shutdown"),
    (opcode::RenameAt::CODE, "RenameAt"),
    (opcode::UnlinkAt::CODE, "UnlinkAt"),
    (opcode::MkDirAt::CODE, "MkDirAt"),
    (opcode::SymlinkAt::CODE, "SymlinkAt"),
    (opcode::LinkAt::CODE, "LinkAt"),
    (opcode::MsgRingData::CODE, "MsgRing"),
    (opcode::FSetXattr::CODE, "FSetXattr"),
    (opcode::SetXattr::CODE, "SetXattr"),
    (opcode::FGetXattr::CODE, "FGetXattr"),
    (opcode::GetXattr::CODE, "GetXattr"),
    (opcode::Socket::CODE, "Socket"),
    (opcode::UringCmd16::CODE, "UringCmd"),
    (opcode::SendZc::CODE, "SendZc"),
    (opcode::SendMsgZc::CODE, "SendMsgZc"),
    (opcode::ReadMulti::CODE, "ReadMulti"),
    (opcode::WaitId::CODE, "WaitId"),
    (opcode::FutexWait::CODE, "FutexWait"),
    (opcode::FutexWake::CODE, "FutexWake"),
    (opcode::FutexWaitV::CODE, "FutexWaitV"),
    (opcode::FixedFdInstall::CODE, "FixedFdInstall"),
    (opcode::Ftruncate::CODE, "Ftruncate"),
    (opcode::Bind::CODE, "Bind"),
    (opcode::Listen::CODE, "Listen"),
    (opcode::RecvZc::CODE, "RecvZc"),
    (opcode::EpollWait::CODE, "EpollWait"),
    (opcode::ReadvFixed::CODE, "ReadvFixed"),
    (opcode::WritevFixed::CODE, "WritevFixed"),
    (opcode::Pipe::CODE, "Pipe"),
];

/// The name of an io_uring opcode, if the `io-uring` crate defines it.
pub(super) fn opcode_name(code: u8) -> Option<&'static str> {
    OPCODE_NAMES.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

/// The io_uring opcodes this kernel supports and whether STOQ's io_uring
/// backend opens here. A kernel without io_uring, or one that forbids it to
/// this process, is a known answer: no opcodes, not usable, and why.
pub fn io_uring() -> Known<IoUringSupport> {
    let ring = match IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => return setup_failed(&e),
    };
    let mut missing = Vec::new();
    let mut probe = Probe::new();
    let opcodes = match ring.submitter().register_probe(&mut probe) {
        Ok(()) => supported_opcodes(|code| probe.is_supported(code)),
        Err(e) => {
            // Before Linux 5.6 the kernel cannot list its opcodes.
            missing.push(format!("IORING_REGISTER_PROBE: {}", errno_text(&e)));
            Vec::new()
        }
    };
    drop(ring);

    let counters = Arc::new(IoCounters::default());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let usable_by_stoq = match stoq_core::io::open(BackendKind::IoUring, addr, &SocketOptions::default(), counters) {
        Ok(_backend) => true,
        Err(e) => {
            missing.push(e.to_string());
            false
        }
    };
    Known::Known(IoUringSupport { opcodes, usable_by_stoq, missing })
}

/// `io_uring_setup` failed: `ENOSYS`, `EPERM` and `EACCES` mean io_uring is
/// absent or forbidden (a known answer); anything else leaves it unknown.
pub(super) fn setup_failed(e: &io::Error) -> Known<IoUringSupport> {
    match e.raw_os_error() {
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => Known::Known(IoUringSupport {
            opcodes: Vec::new(),
            usable_by_stoq: false,
            missing: vec![format!(
                "io_uring_setup: {} (kernel without io_uring, or disabled by kernel.io_uring_disabled / seccomp)",
                errno_text(e)
            )],
        }),
        _ => Known::Unknown(format!("io_uring_setup: {}", errno_text(e))),
    }
}

/// Names of the supported opcodes, in opcode order; an opcode the crate does
/// not name is listed as `opcode <n>`.
pub(super) fn supported_opcodes(is_supported: impl Fn(u8) -> bool) -> Vec<String> {
    (0..=u8::MAX)
        .filter(|&code| is_supported(code))
        .map(|code| opcode_name(code).map_or_else(|| format!("opcode {code}"), str::to_owned))
        .collect()
}

/// "Operation not permitted" for an OS error, else the error's own text.
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}
