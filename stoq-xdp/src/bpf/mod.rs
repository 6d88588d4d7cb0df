//! # bpf: STOQ's XDP program, its XSKMAP, and attaching them
//!
//! AF_XDP sockets receive only what an XDP program redirects to them. This
//! layer provides that program: it sends UDP datagrams to STOQ's ports
//! into the AF_XDP socket of the receive queue they arrived on
//! ([`XskMap`]), and everything else (ARP, neighbour discovery, TCP, other
//! UDP, IP fragments, frames it cannot parse) on to the kernel's stack.
//!
//! The program is our own, assembled in Rust from named instructions
//! ([`insn`]) and loaded with raw `bpf(2)` calls: no libbpf or libxdp to
//! build or link, no C toolchain or clang, no object file to ship. It is
//! about 60 instructions ([`stoq_filter`] lists its logic), small enough to
//! read as assembly, and the kernel's verifier checks every path of it at
//! load time (bounds, registers, the helper call); a rejection comes back
//! with the verifier's log ([`LoadError::Rejected`]).
//!
//! The AF_XDP backend uses it in three steps: [`StoqXdp::load`] creates the
//! map and loads the program; each socket, once bound to its queue, goes
//! into the map ([`XskMap::insert`]); then [`StoqXdp::attach`] puts the
//! program on the interface, detached again when the [`StoqXdp`] drops.
//!
//! ```no_run
//! use stoq_xdp::bpf::{Mechanism, StoqXdp, XdpMode};
//! # fn run(ifindex: u32, xsk_fd: i32) -> Result<(), Box<dyn std::error::Error>> {
//! let mut xdp = StoqXdp::load(&[443, 4433], 1518, 4)?; // ports, longest frame, 4 receive queues
//! xdp.map().insert(0, xsk_fd)?; // an AF_XDP socket bound to queue 0
//! let attached = xdp.attach(ifindex, "eth1", XdpMode::Native, Mechanism::Auto)?;
//! println!("XDP program {} on eth1 via {}", attached.prog_id(), attached.mechanism());
//! # Ok(()) }
//! ```
//!
//! Every operation has its error type ([`LoadError`], [`MapError`],
//! [`AttachError`], [`TestRunError`]) whose message says what to do:
//! `EPERM` asks for root (or `--backend io_uring`), an interface with an
//! XDP program already says so, a driver without native XDP suggests
//! generic mode. [`Program::test_run`] runs the program on a frame
//! (`BPF_PROG_TEST_RUN`) without any interface, for tests and diagnostics.
//!
//! All `unsafe` code is in the `sys` submodule (the `bpf(2)` wrapper and
//! the `union bpf_attr` layouts).

mod attach;
mod error;
pub mod insn;
mod map;
mod program;
#[allow(unsafe_code)]
mod sys;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_attach;

pub use attach::{Attachment, Mechanism, XdpMode, attach};
pub use error::{AttachError, LoadError, MapError, TestRunError};
pub use map::XskMap;
pub use program::{MAX_PORTS, MAX_REDIRECT_LEN, NoSocket, Program, stoq_filter};

/// What an XDP program returns (`enum xdp_action`, include/uapi/linux/bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum XdpAction {
    /// Drop, counting an error (the `xdp:xdp_exception` tracepoint fires).
    Aborted = 0,
    /// Drop.
    Drop = 1,
    /// Continue into the kernel's network stack.
    Pass = 2,
    /// Send back out of the interface it came in on.
    Tx = 3,
    /// Send where the program's redirect helper said: here, an AF_XDP socket.
    Redirect = 4,
}

impl XdpAction {
    /// The action a verdict number stands for, if any.
    pub fn from_verdict(verdict: u32) -> Option<Self> {
        [Self::Aborted, Self::Drop, Self::Pass, Self::Tx, Self::Redirect].into_iter().find(|a| *a as u32 == verdict)
    }
}

/// STOQ's XDP program, its XSKMAP, and (once attached) its place on one
/// interface. Dropping it detaches the program.
#[derive(Debug)]
pub struct StoqXdp {
    // Dropped first: the interface stops running the program before the
    // rest goes (each holds its own kernel reference, so order is tidiness).
    attachment: Option<Attachment>,
    program: Program,
    map: XskMap,
}

impl StoqXdp {
    /// Creates an XSKMAP for receive queues `0..queues` and loads the
    /// filter for UDP destination `ports` (1 to [`MAX_PORTS`]) and frames
    /// of at most `max_frame` bytes (the MTU plus the Ethernet header and a
    /// VLAN tag; see [`stoq_filter`]). STOQ packets on a queue without a
    /// socket pass to the kernel (and STOQ's companion UDP socket).
    pub fn load(ports: &[u16], max_frame: u32, queues: u32) -> Result<Self, LoadError> {
        Self::load_with(ports, max_frame, queues, NoSocket::Pass)
    }

    /// [`load`](Self::load), choosing what happens to STOQ packets on
    /// queues without a socket.
    pub fn load_with(ports: &[u16], max_frame: u32, queues: u32, no_socket: NoSocket) -> Result<Self, LoadError> {
        let map = XskMap::create(queues)?;
        let program = Program::stoq(ports, max_frame, &map, no_socket)?;
        Ok(StoqXdp { attachment: None, program, map })
    }

    /// The XSKMAP, to insert each AF_XDP socket at its queue index.
    pub fn map(&self) -> &XskMap {
        &self.map
    }

    /// The loaded program (its id; [`Program::test_run`]).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Attaches the program to interface `ifindex` (named `ifname`, for
    /// messages; looked up in the calling thread's network namespace). One
    /// interface at a time: an earlier attachment is detached first.
    pub fn attach(
        &mut self,
        ifindex: u32,
        ifname: &str,
        mode: XdpMode,
        mechanism: Mechanism,
    ) -> Result<&Attachment, AttachError> {
        self.attachment = None;
        Ok(self.attachment.insert(attach(&self.program, ifindex, ifname, mode, mechanism)?))
    }

    /// Where the program is attached, if it is.
    pub fn attachment(&self) -> Option<&Attachment> {
        self.attachment.as_ref()
    }

    /// Detaches the program (a no-op when it is not attached).
    pub fn detach(&mut self) {
        self.attachment = None;
    }
}
