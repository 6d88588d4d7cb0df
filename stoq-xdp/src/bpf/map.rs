//! [`XskMap`]: the `BPF_MAP_TYPE_XSKMAP` through which the filter hands a
//! packet to the AF_XDP socket of the queue it arrived on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use super::error::{LoadError, MapError};
use super::sys;

/// `BPF_MAP_TYPE_XSKMAP` (`enum bpf_map_type`, include/uapi/linux/bpf.h).
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_ANY` (include/uapi/linux/bpf.h): create or replace.
const BPF_ANY: u64 = 0;

/// An XSKMAP: key the receive queue index (`u32`), value an AF_XDP socket.
/// The kernel holds a reference to each socket in it; a socket that closes
/// leaves the map by itself.
#[derive(Debug)]
pub struct XskMap {
    fd: OwnedFd,
    entries: u32,
}

impl XskMap {
    /// A map for queues `0..entries` (size it by the interface's receive
    /// queues).
    pub fn create(entries: u32) -> Result<Self, LoadError> {
        if entries == 0 {
            return Err(LoadError::NoQueues);
        }
        let fd = sys::map_create_u32(BPF_MAP_TYPE_XSKMAP, entries, "stoq_xsks").map_err(|source| {
            match source.raw_os_error() {
                Some(libc::EPERM) => LoadError::Permission { source },
                // An unknown map type.
                Some(libc::EINVAL) => LoadError::NoXskMap { source },
                _ => LoadError::Kernel { what: "BPF_MAP_CREATE", source },
            }
        })?;
        Ok(XskMap { fd, entries })
    }

    /// Its number of entries.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Sends packets of receive queue `queue` to AF_XDP socket `xsk`, which
    /// must be bound to that queue (the kernel checks on each packet, and
    /// drops mismatches). Replaces any socket there.
    pub fn insert(&self, queue: u32, xsk: RawFd) -> Result<(), MapError> {
        self.check(queue)?;
        // The kernel resolves the descriptor itself; a wrong one is an
        // error, not memory unsafety.
        let value = u32::try_from(xsk).map_err(|_| MapError::NotXsk {
            queue,
            fd: xsk,
            source: std::io::Error::from_raw_os_error(libc::EBADF),
        })?;
        sys::map_update_u32(self.fd.as_fd(), queue, value, BPF_ANY).map_err(|source| match source.raw_os_error() {
            Some(libc::EBADF | libc::ENOTSOCK | libc::EOPNOTSUPP) => MapError::NotXsk { queue, fd: xsk, source },
            _ => MapError::Kernel { op: "insert", queue, source },
        })
    }

    /// Takes queue `queue`'s socket out (no error when there is none):
    /// its packets then take the filter's no-socket action.
    pub fn remove(&self, queue: u32) -> Result<(), MapError> {
        self.check(queue)?;
        sys::map_delete_u32(self.fd.as_fd(), queue).map_err(|source| MapError::Kernel { op: "remove", queue, source })
    }

    fn check(&self, queue: u32) -> Result<(), MapError> {
        if queue >= self.entries {
            return Err(MapError::QueueOutOfRange { queue, entries: self.entries });
        }
        Ok(())
    }
}

impl AsFd for XskMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
