//! Host-wide probes: CPU topology (hwloc), io_uring (a real ring and STOQ's
//! own backend), UDP GSO/GRO (a test socket), this process's capabilities
//! (`capget`) and interface addresses (`getifaddrs`).
//!
//! Each probe asks the running kernel rather than a version table: a kernel
//! may backport features, and seccomp, sysctls and dropped capabilities change
//! what this process can do on any version. What cannot be asked comes back
//! as [`Known::Unknown`] naming the call that failed.

mod cpu;
mod uring;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use caps::{CapSet, Capability};
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socket, sockopt};

use crate::{Known, Privileges, UdpOffloads};

pub use cpu::cpu_topology;
pub use uring::io_uring;

/// Whether this kernel accepts `UDP_SEGMENT` (GSO) and `UDP_GRO` on a UDP
/// socket. `ENOPROTOOPT` is a known "no"; any other failure is unknown.
pub fn udp_offloads() -> UdpOffloads {
    // The options are per socket and independent of the address, so an
    // unbound socket answers the question without depending on `lo` being up
    // (it is down in a fresh network namespace).
    let sock = match socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None) {
        Ok(s) => s,
        Err(e) => {
            return UdpOffloads::unknown(format!("creating a test UDP socket: {}", e.desc()));
        }
    };
    // 1200 bytes: a valid segment size on every kernel that has UDP_SEGMENT.
    let gso = offload_answer("UDP_SEGMENT", setsockopt(&sock, sockopt::UdpGsoSegment, &1200));
    let gro = offload_answer("UDP_GRO", setsockopt(&sock, sockopt::UdpGroSegment, &true));
    UdpOffloads { gso, gro }
}

/// Turns a `setsockopt` result into an answer: accepted, not known to this
/// kernel, or a failure that says nothing about support.
fn offload_answer(option: &str, result: nix::Result<()>) -> Known<bool> {
    match result {
        Ok(()) => Known::Known(true),
        Err(Errno::ENOPROTOOPT) => Known::Known(false),
        Err(e) => Known::Unknown(format!("setsockopt {option} on a test UDP socket: {} ({e})", e.desc())),
    }
}

/// The capabilities STOQ's backends need, from this thread's effective set
/// (`capget`).
pub fn privileges() -> Known<Privileges> {
    match caps::read(None, CapSet::Effective) {
        Ok(set) => Known::Known(Privileges {
            net_admin: set.contains(&Capability::CAP_NET_ADMIN),
            net_raw: set.contains(&Capability::CAP_NET_RAW),
            bpf: set.contains(&Capability::CAP_BPF),
            sys_admin: set.contains(&Capability::CAP_SYS_ADMIN),
        }),
        Err(e) => Known::Unknown(format!("capget (effective set): {e}")),
    }
}

/// IPv4 and IPv6 addresses by interface name (`getifaddrs`), each list sorted
/// and without duplicates. Every interface `getifaddrs` reports is present,
/// with an empty list if it has no IP address.
pub fn addresses() -> Result<HashMap<String, Vec<IpAddr>>, io::Error> {
    let mut by_name: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for entry in nix::ifaddrs::getifaddrs().map_err(io::Error::from)? {
        let ip = entry.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        let list = by_name.entry(entry.interface_name).or_default();
        list.extend(ip);
    }
    for list in by_name.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(by_name)
}

#[cfg(test)]
mod tests;
