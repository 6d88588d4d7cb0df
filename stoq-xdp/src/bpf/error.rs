//! One error type per operation: loading (program and map), filling the
//! map, attaching, test runs. Messages say what to do about it.

use std::io;

use super::attach::Mechanism;
use super::insn::AsmError;
use super::program::MAX_PORTS;

/// Why loading the STOQ XDP program or creating its XSKMAP failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The port list is empty or longer than [`MAX_PORTS`].
    #[error(
        "the STOQ XDP filter serves 1 to {MAX_PORTS} UDP ports, got {0}; listen on fewer ports or use --backend io_uring"
    )]
    PortCount(usize),
    /// Port 0 was among the ports.
    #[error("UDP port 0 cannot be served over AF_XDP; listen on a fixed port")]
    PortZero,
    /// The XSKMAP was asked for zero entries.
    #[error("the XSKMAP needs one entry per receive queue, at least 1, got 0")]
    NoQueues,
    /// `EPERM`: no `CAP_BPF`/`CAP_NET_ADMIN` (or, before Linux 5.11, too
    /// small a locked-memory limit).
    #[error(
        "loading an XDP program needs CAP_BPF and CAP_NET_ADMIN (or root); run as root or use --backend io_uring \
         (on Linux before 5.11 also raise the locked-memory limit, `ulimit -l`)"
    )]
    Permission {
        /// What the kernel said.
        source: io::Error,
    },
    /// The kernel cannot create an XSKMAP.
    #[error(
        "this kernel cannot create an XSKMAP ({source}); AF_XDP needs Linux 4.18+ built with CONFIG_XDP_SOCKETS; \
         use --backend io_uring"
    )]
    NoXskMap {
        /// What the kernel said.
        source: io::Error,
    },
    /// The verifier refused the program; `log` is the end of its log.
    #[error(
        "the kernel's verifier rejected XDP program {name} ({source}); if it is STOQ's own, this is a bug in stoq-xdp: \
         please report it with the verifier's log, which ends:\n{log}"
    )]
    Rejected {
        /// The program's name.
        name: String,
        /// What the kernel returned.
        source: io::Error,
        /// The last lines of the verifier's log.
        log: String,
    },
    /// The program could not be assembled (a bug in stoq-xdp).
    #[error("assembling the XDP program failed: {0} (a bug in stoq-xdp)")]
    Assemble(#[from] AsmError),
    /// Any other failure of `what`.
    #[error("{what} failed: {source}")]
    Kernel {
        /// The `bpf(2)` command.
        what: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Why putting a socket into the XSKMAP, or taking it out, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The queue index is not below the map's size.
    #[error("queue {queue} is outside the XSKMAP's {entries} entries; size the map by the interface's receive queues")]
    QueueOutOfRange {
        /// The queue asked for.
        queue: u32,
        /// The map's size.
        entries: u32,
    },
    /// The descriptor is not an AF_XDP socket bound to a device queue.
    #[error(
        "descriptor {fd} for queue {queue} is not a bound AF_XDP socket ({source}); bind the socket to its \
         interface queue before putting it in the XSKMAP"
    )]
    NotXsk {
        /// The queue.
        queue: u32,
        /// The descriptor given.
        fd: i32,
        /// What the kernel said.
        source: io::Error,
    },
    /// Any other failure.
    #[error("XSKMAP {op} at queue {queue} failed: {source}")]
    Kernel {
        /// `insert` or `remove`.
        op: &'static str,
        /// The queue.
        queue: u32,
        /// What the kernel said.
        source: io::Error,
    },
}

/// Why attaching an XDP program to an interface failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// No interface has this index in the caller's network namespace.
    #[error("no network interface has index {ifindex} in this network namespace; check `ip link`")]
    NoSuchInterface {
        /// The index asked for.
        ifindex: u32,
    },
    /// Another XDP program (or a link) is attached, in this or the other mode.
    #[error(
        "interface {ifname} already has an XDP program attached (see `ip link show {ifname}`); detach it or \
         choose another interface{kernel_says}"
    )]
    AlreadyAttached {
        /// The interface.
        ifname: String,
        /// What the kernel added (extended ACK), or empty.
        kernel_says: String,
    },
    /// The driver cannot run XDP itself (`EOPNOTSUPP` in native mode).
    #[error("the driver of {ifname} has no native XDP; use generic mode{kernel_says}")]
    NativeUnsupported {
        /// The interface.
        ifname: String,
        /// What the kernel added (extended ACK), or empty.
        kernel_says: String,
    },
    /// `EPERM`.
    #[error(
        "attaching an XDP program to {ifname} needs CAP_NET_ADMIN and CAP_BPF (or root); run as root or use \
         --backend io_uring"
    )]
    Permission {
        /// The interface.
        ifname: String,
    },
    /// `BPF_LINK_CREATE` was asked for explicitly and the kernel answered
    /// `EINVAL`: it predates XDP links (Linux 5.9), or the driver refused.
    #[error(
        "the kernel refused to attach XDP to {ifname} through a BPF link ({source}): it predates XDP links \
         (Linux 5.9) or the driver refused the program; use the netlink mechanism, whose error says which"
    )]
    LinkRefused {
        /// The interface.
        ifname: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Any other failure. A BPF link cannot carry the kernel's reason; the
    /// netlink mechanism (or [`Mechanism::Auto`]) reports it.
    #[error("attaching XDP to {ifname} ({mechanism}) failed: {source}{kernel_says}{}", link_hint(*.mechanism))]
    Kernel {
        /// The interface.
        ifname: String,
        /// The mechanism that failed.
        mechanism: Mechanism,
        /// What the kernel said.
        source: io::Error,
        /// What the kernel added (extended ACK), or empty.
        kernel_says: String,
    },
}

/// Why a `BPF_PROG_TEST_RUN` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestRunError {
    /// The kernel refuses frames shorter than an Ethernet header.
    #[error("a test frame needs at least 14 bytes (an Ethernet header), got {0}")]
    TooShort(usize),
    /// The kernel refused the run (e.g. `ENODEV`: no such `ifindex`;
    /// `EINVAL`: no such queue, or a frame longer than a page).
    #[error("BPF_PROG_TEST_RUN failed: {source}")]
    Kernel {
        /// What the kernel said.
        source: io::Error,
    },
}

fn link_hint(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Link => "; the netlink mechanism reports the kernel's reason",
        _ => "",
    }
}
