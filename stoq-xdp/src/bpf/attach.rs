//! Attaching a program to an interface, and detaching it when the
//! [`Attachment`] drops.
//!
//! Two mechanisms:
//! - a BPF link (`BPF_LINK_CREATE`, attach type `BPF_XDP`, Linux 5.9+): the
//!   kernel detaches the program when the link's last descriptor closes,
//!   so also when the process dies, even by `SIGKILL`; nobody else can
//!   replace it meanwhile.
//! - rtnetlink (`RTM_SETLINK` with `IFLA_XDP`): works on older kernels, but
//!   the program stays attached after the process dies until someone runs
//!   `ip link set dev IF xdp off` (or `xdpgeneric off`). Drop detaches it
//!   only if it is still ours (`XDP_FLAGS_REPLACE` with
//!   `IFLA_XDP_EXPECTED_FD`, Linux 5.7+; before, after comparing ids).
//!
//! [`Mechanism::Auto`] tries the link and falls back to netlink when the
//! kernel answers `EINVAL`, as kernels without XDP links do.

use std::os::fd::{AsFd, OwnedFd};
use std::{fmt, io};

use hw_detect::linux::netlink::{NetlinkError, Rtnetlink};

use super::error::AttachError;
use super::program::{BPF_XDP, Program};
use super::sys;

// `XDP_FLAGS_*` (include/uapi/linux/if_link.h).
const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// Where in the receive path the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver, before any socket buffer exists (`XDP_FLAGS_DRV_MODE`;
    /// `ip link` shows `xdp`). Needs driver support; what AF_XDP is for.
    Native,
    /// After the kernel built a socket buffer (`XDP_FLAGS_SKB_MODE`; `ip
    /// link` shows `xdpgeneric`). Any interface; copies every packet.
    Generic,
}

impl XdpMode {
    fn flag(self) -> u32 {
        match self {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

/// How to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// A BPF link, or netlink on kernels without XDP links.
    Auto,
    /// A BPF link only (detached by the kernel when the process dies).
    Link,
    /// Netlink only (stays attached if the process dies without dropping).
    Netlink,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Auto => "BPF link or netlink",
            Mechanism::Link => "BPF link",
            Mechanism::Netlink => "netlink",
        })
    }
}

/// How an [`Attachment`] holds its program on the interface.
#[derive(Debug)]
enum Hold {
    /// The link's descriptor: closing it (or `BPF_LINK_DETACH`) detaches.
    Link(OwnedFd),
    /// The program (for `IFLA_XDP_EXPECTED_FD`) and a netlink socket in the
    /// interface's namespace, for detaching from any thread.
    Netlink { prog: OwnedFd, rtnl: Rtnetlink },
}

/// A program attached to an interface; dropping it detaches the program.
#[derive(Debug)]
pub struct Attachment {
    ifindex: u32,
    ifname: String,
    mode: XdpMode,
    prog_id: u32,
    hold: Hold,
}

impl Attachment {
    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's name, as given to [`attach`].
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The mode it runs in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The mechanism in use: [`Mechanism::Link`] or [`Mechanism::Netlink`].
    pub fn mechanism(&self) -> Mechanism {
        match self.hold {
            Hold::Link(_) => Mechanism::Link,
            Hold::Netlink { .. } => Mechanism::Netlink,
        }
    }

    /// The attached program's kernel id.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let (prog, rtnl) = match &mut self.hold {
            Hold::Link(link) => {
                // Closing the descriptor would detach too, but only once no
                // process holds a copy; one forked but not yet exec'd may.
                if let Err(e) = sys::link_detach(link.as_fd()) {
                    log::debug!("BPF_LINK_DETACH on {}: {e}; closing the link instead", self.ifname);
                }
                return;
            }
            Hold::Netlink { prog, rtnl } => (prog, rtnl),
        };
        let (ifindex, ifname, id) = (self.ifindex, &self.ifname, self.prog_id);
        let flags = self.mode.flag() | XDP_FLAGS_REPLACE;
        let result = match rtnl.link_set_xdp(ifindex, None, flags, Some(prog.as_fd())) {
            // Before Linux 5.7 there is no XDP_FLAGS_REPLACE: compare ids first.
            Err(e) if e.errno() == Some(libc::EINVAL) => detach_if_ours(rtnl, ifindex, self.mode, id),
            other => other,
        };
        match result {
            Ok(()) => log::debug!("XDP program {id} detached from {ifname}"),
            // The interface went away, and the program with it.
            Err(e) if e.errno() == Some(libc::ENODEV) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {
                log::warn!("XDP program {id} on {ifname} was replaced by another; leaving that one attached")
            }
            Err(e) => log::warn!(
                "could not detach XDP program {id} from {ifname} ({}{}); see `ip link show {ifname}`, and detach it \
                 with `ip link set dev {ifname} {} off` if it is still there",
                os_error(&e),
                e.kernel_message().map(|s| format!(": {s}")).unwrap_or_default(),
                if self.mode == XdpMode::Native { "xdp" } else { "xdpgeneric" },
            ),
        }
    }
}

/// Detaches the program of `mode` from `ifindex` if its id is `prog_id`
/// (for kernels without `XDP_FLAGS_REPLACE`; a race with another process
/// attaching in between is possible there, and only there).
pub(super) fn detach_if_ours(
    rtnl: &mut Rtnetlink,
    ifindex: u32,
    mode: XdpMode,
    prog_id: u32,
) -> Result<(), NetlinkError> {
    let progs = rtnl.link_xdp_progs(ifindex)?;
    let current = if mode == XdpMode::Native { progs.drv } else { progs.skb };
    if current != Some(prog_id) {
        log::warn!("XDP program {prog_id} was replaced on ifindex {ifindex} (now {current:?}); leaving it");
        return Ok(());
    }
    rtnl.link_set_xdp(ifindex, None, mode.flag(), None)
}

/// Attaches `prog` to interface `ifindex` (named `ifname`, for messages) in
/// `mode`, failing if the interface already runs an XDP program. The
/// interface is looked up in the calling thread's network namespace.
pub fn attach(
    prog: &Program,
    ifindex: u32,
    ifname: &str,
    mode: XdpMode,
    mechanism: Mechanism,
) -> Result<Attachment, AttachError> {
    let attachment = |hold| Attachment { ifindex, ifname: ifname.to_string(), mode, prog_id: prog.id(), hold };
    if ifindex == 0 {
        return Err(AttachError::NoSuchInterface { ifindex });
    }
    if mechanism != Mechanism::Netlink {
        let source = match sys::link_create(prog.as_fd(), ifindex, BPF_XDP, mode.flag()) {
            Ok(link) => return Ok(attachment(Hold::Link(link))),
            Err(source) => source,
        };
        let e = classify(ifindex, ifname, mode, Mechanism::Link, source, None);
        match (mechanism, e) {
            // EINVAL: no XDP links (before 5.9), or no such interface
            // (netlink tells which).
            (Mechanism::Link, AttachError::Kernel { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                let mut rtnl = open(ifname)?;
                return Err(match rtnl.link_xdp_progs(ifindex) {
                    Err(e) if e.errno() == Some(libc::ENODEV) => AttachError::NoSuchInterface { ifindex },
                    _ => AttachError::LinkRefused { ifname: ifname.to_string(), source },
                });
            }
            // Auto: any other failure goes on to netlink, which attaches on
            // kernels without XDP links and otherwise says why it cannot.
            (Mechanism::Auto, AttachError::Kernel { source, .. }) => {
                log::debug!("BPF_LINK_CREATE for XDP on {ifname}: {source}; trying netlink");
            }
            (_, e) => return Err(e),
        }
    }
    let mut rtnl = open(ifname)?;
    let prog_fd = prog.as_fd().try_clone_to_owned().map_err(|source| AttachError::Kernel {
        ifname: ifname.to_string(),
        mechanism: Mechanism::Netlink,
        source,
        kernel_says: String::new(),
    })?;
    rtnl.link_set_xdp(ifindex, Some(prog_fd.as_fd()), mode.flag() | XDP_FLAGS_UPDATE_IF_NOEXIST, None)
        .map_err(|e| classify(ifindex, ifname, mode, Mechanism::Netlink, os_error(&e), e.kernel_message()))?;
    Ok(attachment(Hold::Netlink { prog: prog_fd, rtnl }))
}

/// A route netlink socket in the calling thread's network namespace.
fn open(ifname: &str) -> Result<Rtnetlink, AttachError> {
    Rtnetlink::open().map_err(|e| AttachError::Kernel {
        ifname: ifname.to_string(),
        mechanism: Mechanism::Netlink,
        source: os_error(&e),
        kernel_says: String::new(),
    })
}

/// The OS error of a failed netlink request, as [`AttachError`] carries it.
fn os_error(e: &NetlinkError) -> io::Error {
    match e.errno() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// The [`AttachError`] for errno `source` of `mechanism`.
fn classify(
    ifindex: u32,
    ifname: &str,
    mode: XdpMode,
    mechanism: Mechanism,
    source: io::Error,
    kernel_says: Option<&str>,
) -> AttachError {
    let ifname = ifname.to_string();
    let kernel_says = kernel_says.map(|s| format!(" (the kernel says: {s})")).unwrap_or_default();
    match source.raw_os_error() {
        Some(libc::ENODEV) => AttachError::NoSuchInterface { ifindex },
        Some(libc::EPERM) => AttachError::Permission { ifname },
        Some(libc::EBUSY | libc::EEXIST) => AttachError::AlreadyAttached { ifname, kernel_says },
        Some(libc::EOPNOTSUPP) if mode == XdpMode::Native => AttachError::NativeUnsupported { ifname, kernel_says },
        _ => AttachError::Kernel { ifname, mechanism, source, kernel_says },
    }
}
