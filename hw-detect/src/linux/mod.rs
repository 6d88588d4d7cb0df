//! Probes that ask the running Linux kernel: ethtool ioctls, netlink, hwloc,
//! io_uring and test sockets.

pub mod ethtool;
pub mod host;
pub mod netlink;
