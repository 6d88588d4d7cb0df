//! Socket options both Linux backends set, each probed on the real socket:
//! what the kernel refuses is turned off and reported, never assumed.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Instant;

use super::sys::{self, getsockopt_int, setsockopt};

/// What this socket turned out to support.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Features {
    /// `UDP_SEGMENT` accepted (Linux 4.18+).
    pub gso: bool,
    /// `UDP_GRO` enabled (Linux 5.0+).
    pub gro: bool,
    /// Kernel pacing: the clock pair that turns an `Instant` into the
    /// `CLOCK_MONOTONIC` nanoseconds `SCM_TXTIME` takes.
    pub txtime: Option<TxClock>,
}

/// Converts `Instant`s to `CLOCK_MONOTONIC` nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxClock {
    base: Instant,
    base_ns: u64,
}

impl TxClock {
    fn now() -> Self {
        Self { base: Instant::now(), base_ns: sys::monotonic_ns() }
    }

    pub fn ns(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.base).as_nanos();
        self.base_ns.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// Turns on packet info, TOS/traffic-class reporting, GRO and (when asked)
/// `SO_TXTIME`, and probes GSO. Only a refused `SO_TXTIME` is an error: the
/// operator asked for kernel pacing and would otherwise lose pacing silently.
pub(crate) fn enable(
    fd: RawFd,
    local: &SocketAddr,
    kernel_pacing: bool,
) -> Result<Features, (&'static str, io::Error)> {
    let on: libc::c_int = 1;
    // The local address a datagram arrived on and its ECN bits. A dual-stack
    // IPv6 socket needs the IPv4 options too, for v4-mapped traffic.
    let v4 = [(libc::IPPROTO_IP, libc::IP_PKTINFO), (libc::IPPROTO_IP, libc::IP_RECVTOS)];
    let v6 = [(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO), (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS)];
    for (level, name) in v4 {
        let r = setsockopt(fd, level, name, on);
        if local.is_ipv4() {
            r.map_err(|e| ("enabling IP_PKTINFO/IP_RECVTOS", e))?;
        }
    }
    if local.is_ipv6() {
        for (level, name) in v6 {
            setsockopt(fd, level, name, on).map_err(|e| ("enabling IPV6_RECVPKTINFO/IPV6_RECVTCLASS", e))?;
        }
    }
    // QUIC datagrams must not be fragmented (RFC 9000 §14): set DF and let
    // QUIC size its packets, ignoring the kernel's path-MTU guess.
    let (level, name, probe) = if local.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE)
    };
    if let Err(e) = setsockopt(fd, level, name, probe) {
        log::debug!("cannot set the don't-fragment bit: {e}");
    }
    if local.is_ipv6() {
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE);
    }
    let gso = getsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();
    let gro = setsockopt(fd, libc::SOL_UDP, libc::UDP_GRO, on).is_ok();
    if !gso || !gro {
        log::info!("kernel UDP offloads on this socket: GSO {gso}, GRO {gro}");
    }
    let txtime = if kernel_pacing {
        // struct sock_txtime (include/uapi/linux/net_tstamp.h).
        let cfg = libc::sock_txtime { clockid: libc::CLOCK_MONOTONIC, flags: 0 };
        setsockopt(fd, libc::SOL_SOCKET, sys::SO_TXTIME, cfg)
            .map_err(|e| ("enabling SO_TXTIME for kernel pacing (Linux 4.19+; turn kernel_pacing off)", e))?;
        Some(TxClock::now())
    } else {
        None
    };
    Ok(Features { gso, gro, txtime })
}
