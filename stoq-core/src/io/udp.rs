//! What the socket backends share: binding a UDP socket with the requested
//! buffers, and readiness waiting (a mio poller with the socket and a waker
//! registered, and writable interest only while a send is blocked, so an
//! idle shard is not woken by an always-writable socket).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use super::{SocketOptions, Wake};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

pub(crate) struct Readiness {
    poll: Poll,
    events: Events,
    waker: Arc<MioWaker>,
    writable_interest: bool,
}

struct MioWaker(Waker);

impl Wake for MioWaker {
    fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

impl Readiness {
    /// Registers `socket` for readability. Errors name the failing step.
    pub fn new(socket: &mut UdpSocket) -> Result<Self, (&'static str, io::Error)> {
        let poll = Poll::new().map_err(|e| ("creating the poller", e))?;
        poll.registry().register(socket, SOCKET, Interest::READABLE).map_err(|e| ("registering the socket", e))?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| ("creating the waker", e))?;
        Ok(Self { poll, events: Events::with_capacity(8), waker: Arc::new(MioWaker(waker)), writable_interest: false })
    }

    pub fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    /// See [`PacketIo::wait`](super::PacketIo::wait).
    pub fn wait(&mut self, socket: &mut UdpSocket, timeout: Option<Duration>, want_writable: bool) -> io::Result<()> {
        if want_writable != self.writable_interest {
            let interest = if want_writable { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            self.poll.registry().reregister(socket, SOCKET, interest)?;
            self.writable_interest = want_writable;
        }
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            r => r,
        }
    }
}

/// Binds a non-blocking UDP socket with the requested buffers and returns it
/// with the buffer sizes the kernel granted (receive, send). An IPv6
/// wildcard address also accepts IPv4 (as v4-mapped addresses) where the
/// host allows dual-stack sockets.
pub(crate) fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<(std::net::UdpSocket, (usize, usize))> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Best effort: some hosts force v6-only; then the socket serves IPv6 only.
        let _ = socket.set_only_v6(false);
    }
    let granted = set_buffers(&socket, opts);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok((socket.into(), granted))
}

/// Asks for the buffer sizes; past `net.core.{r,w}mem_max` only a process
/// with CAP_NET_ADMIN gets more (the FORCE options). Returns what the kernel
/// granted, and says so when it is less than asked.
fn set_buffers(socket: &socket2::Socket, opts: &SocketOptions) -> (usize, usize) {
    // Linux reports twice the size asked for (bookkeeping overhead included).
    let granted = |s: &socket2::Socket| (s.recv_buffer_size().unwrap_or(0) / 2, s.send_buffer_size().unwrap_or(0) / 2);
    let _ = socket.set_recv_buffer_size(opts.recv_buffer);
    let _ = socket.set_send_buffer_size(opts.send_buffer);
    let (mut r, mut s) = granted(socket);
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = socket.as_raw_fd();
        let force = |name, want: usize| {
            let v = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
            super::linux::sys::setsockopt(fd, libc::SOL_SOCKET, name, v)
        };
        let forced_r = r < opts.recv_buffer && force(libc::SO_RCVBUFFORCE, opts.recv_buffer).is_ok();
        let forced_s = s < opts.send_buffer && force(libc::SO_SNDBUFFORCE, opts.send_buffer).is_ok();
        if forced_r || forced_s {
            (r, s) = granted(socket);
        }
    }
    if r < opts.recv_buffer || s < opts.send_buffer {
        log::warn!(
            "socket buffers clamped by the kernel: asked receive {} send {}, got {r} and {s} bytes; \
             raise net.core.rmem_max/wmem_max or run with CAP_NET_ADMIN",
            opts.recv_buffer,
            opts.send_buffer
        );
    }
    (r, s)
}

/// Errors that describe one peer's path, not the socket.
pub(crate) fn is_per_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
