//! The system calls the Linux backends make that neither std nor mio wrap:
//! `sendmmsg`, `recvmmsg`, `setsockopt`/`getsockopt` with raw option values,
//! and the `CLOCK_MONOTONIC` reading `SO_TXTIME` needs. Each wrapper is one
//! `unsafe` block returning `io::Result`; everything else in the backends
//! (address and control-message encoding) is safe code over byte buffers.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// `SO_TXTIME` (asm-generic/socket.h; x86, arm, riscv).
pub const SO_TXTIME: i32 = 61;

/// Room for the largest socket address we use (`struct sockaddr_in6`).
pub const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();

/// A reusable array of `struct mmsghdr` (include/linux/socket.h).
pub struct MsgHeaders(Vec<libc::mmsghdr>, Vec<libc::iovec>);

// SAFETY: the raw pointers inside are written immediately before each
// syscall to point into buffers the caller borrows for that call, and are
// never dereferenced by us; moving the arrays to another thread is as safe
// as moving the integers they hold.
unsafe impl Send for MsgHeaders {}

impl MsgHeaders {
    /// `n` zeroed headers, each with one iovec.
    pub fn new(n: usize) -> Self {
        // SAFETY: all-zero is a valid mmsghdr and iovec (null pointers, zero lengths).
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let zero_iov: libc::iovec = unsafe { std::mem::zeroed() };
        Self(vec![zero_hdr; n], vec![zero_iov; n])
    }

    /// Points message `i` at a payload, an address and a control buffer.
    /// `name` and `control` may be empty.
    pub fn set(&mut self, i: usize, payload: *mut u8, payload_len: usize, name: &mut [u8], control: &mut [u8]) {
        self.1[i] = libc::iovec { iov_base: payload.cast(), iov_len: payload_len };
        let h = &mut self.0[i].msg_hdr;
        h.msg_name = if name.is_empty() { std::ptr::null_mut() } else { name.as_mut_ptr().cast() };
        h.msg_namelen = name.len() as libc::socklen_t;
        h.msg_iov = &mut self.1[i];
        h.msg_iovlen = 1;
        h.msg_control = if control.is_empty() { std::ptr::null_mut() } else { control.as_mut_ptr().cast() };
        h.msg_controllen = control.len() as _;
        h.msg_flags = 0;
        self.0[i].msg_len = 0;
    }

    /// After `recvmmsg`: (payload bytes, address bytes, control bytes, flags) of message `i`.
    #[allow(clippy::unnecessary_cast)] // msg_controllen is socklen_t on musl
    pub fn received(&self, i: usize) -> (usize, usize, usize, i32) {
        let m = &self.0[i];
        (m.msg_len as usize, m.msg_hdr.msg_namelen as usize, m.msg_hdr.msg_controllen as usize, m.msg_hdr.msg_flags)
    }

    /// `sendmmsg(2)` of the first `n` messages, non-blocking. Returns how
    /// many were sent; an error means the first one was not.
    pub fn sendmmsg(&mut self, fd: RawFd, n: usize) -> io::Result<usize> {
        let n = n.min(self.0.len());
        // SAFETY: the first `n` headers were filled by `set` with pointers
        // into buffers the caller keeps borrowed until this returns.
        let r = unsafe { libc::sendmmsg(fd, self.0.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
    }

    /// `recvmmsg(2)` into the first `n` messages, non-blocking.
    pub fn recvmmsg(&mut self, fd: RawFd, n: usize) -> io::Result<usize> {
        let n = n.min(self.0.len());
        // SAFETY: as for `sendmmsg`; the kernel writes at most the lengths
        // given in each header.
        let r = unsafe {
            libc::recvmmsg(fd, self.0.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
    }
}

/// `setsockopt(2)` with a plain-data value.
pub fn setsockopt<T: Copy>(fd: RawFd, level: i32, name: i32, value: T) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (&value as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `getsockopt(2)` of an `int` option.
pub fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut len) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(value) }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock std's `Instant` reads on
/// Linux, and the one `SO_TXTIME` is set to use.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is valid for writes; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// Socket addresses as bytes (include/uapi/linux/in.h, in6.h): family in host
// order, port and address in network order.

/// Writes `addr` as a `sockaddr_in`/`sockaddr_in6` into `buf`; returns its length.
pub fn encode_sockaddr(addr: SocketAddr, buf: &mut [u8; NAME_LEN]) -> usize {
    buf.fill(0);
    match addr {
        SocketAddr::V4(a) => {
            buf[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            buf[2..4].copy_from_slice(&a.port().to_be_bytes());
            buf[4..8].copy_from_slice(&a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            buf[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            buf[2..4].copy_from_slice(&a.port().to_be_bytes());
            buf[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
            buf[8..24].copy_from_slice(&a.ip().octets());
            buf[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            NAME_LEN
        }
    }
}

/// Reads a `sockaddr_in`/`sockaddr_in6` the kernel wrote (`len` bytes).
pub fn decode_sockaddr(buf: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(buf.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(buf.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = buf.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(buf.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)))
        }
        _ => None,
    }
}

/// An IP in the family of a socket bound to `local` (IPv4 on a dual-stack
/// IPv6 socket is reported v4-mapped, as the peer address is).
pub fn in_family_of(ip: IpAddr, local: &SocketAddr) -> IpAddr {
    match (ip, local) {
        (IpAddr::V4(v4), SocketAddr::V6(_)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in ["127.0.0.1:4433", "[::1]:9", "[fe80::1%3]:443", "[::ffff:10.0.0.1]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut buf = [0u8; NAME_LEN];
            let n = encode_sockaddr(a, &mut buf);
            assert_eq!(decode_sockaddr(&buf[..n]), Some(a));
        }
        assert_eq!(decode_sockaddr(&[0u8; 3]), None);
        assert_eq!(decode_sockaddr(&[0xffu8; NAME_LEN]), None);
    }
}
