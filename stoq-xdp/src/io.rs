//! [`XdpIo`]: STOQ's [`PacketIo`] over AF_XDP sockets, one per NIC queue,
//! beside a companion kernel UDP socket on the same port.
//!
//! Receive: each XSK's RX ring holds the frames our XDP program redirected
//! (STOQ's UDP port, IPv4 or IPv6); they are parsed ([`frame::parse_udp`])
//! and their payloads copied into the shard's batch, and the frames go
//! straight back to the fill ring. Then the companion socket is drained:
//! it receives what the program passed to the kernel (IPv4 fragments,
//! packets on a queue without an XSK, anything sent while the program was
//! being attached), so nothing addressed to STOQ is lost.
//!
//! Transmit: for each transmit the next hop comes from the kernel's route
//! and neighbour tables ([`NextHops`]); each segment is copied into a free
//! UMEM frame behind Ethernet, IP and UDP headers written in place
//! ([`frame::write_headers`], UDP checksum in software) and queued on the
//! TX ring, which is kicked once per batch. A destination whose neighbour
//! is not resolved yet, or whose route leaves by another interface, goes
//! through the companion socket instead: the kernel delivers it and
//! resolves the neighbour as it does, so no packet is held or dropped.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use stoq_core::io::{BackendKind, IoCapabilities, IoCounters, PacketIo, RxBatch, RxMeta, SocketOptions, TxBatch, Wake};

use crate::bpf;
use crate::frame::{self, L2, MacAddr};
use crate::neigh::{NextHop, NextHops};
use crate::sys;
use crate::xsk::{BindMode, Xsk};
use crate::{AttachMode, XdpConfig, XdpError, ZeroCopy};

/// Segments one transmit may carry: the shard coalesces packets to one
/// peer and this backend writes one frame per segment.
const MAX_SEGMENTS: usize = 64;
/// Largest datagram the companion socket receives (the kernel may hand it
/// a reassembled IPv4 datagram).
const RX_SLOT: usize = 65_535;
/// Receive calls between reads of the kernel's drop counters.
const STATS_EVERY: u32 = 1024;
/// Receive calls after which the companion socket is read even if no
/// `poll` reported it (the shard skips `wait` while packets keep coming).
const COMPANION_EVERY: u32 = 64;

/// The AF_XDP backend. Field order is drop order: the program is detached
/// before the sockets it redirects to are closed.
pub struct XdpIo {
    program: bpf::StoqXdp,
    xsks: Vec<Xsk>,
    companion: UdpSocket,
    /// The companion socket is IPv6 (dual-stack).
    companion_v6: bool,
    local: SocketAddr,
    mac: MacAddr,
    hops: NextHops,
    waker: Arc<EventWaker>,
    counters: Arc<IoCounters>,
    caps: IoCapabilities,
    ip_id: u16,
    /// The next XSK to transmit on (round robin over queues).
    next_tx: usize,
    /// Receive calls since the drop counters were last read.
    since_stats: u32,
    /// The kernel's drop total as last read.
    drops_seen: u64,
    /// The companion socket may hold datagrams: `poll` said so, or it has
    /// not been looked at for [`COMPANION_EVERY`] receive calls. Reading it
    /// only then saves a `recvmsg` that finds nothing on almost every call.
    companion_due: bool,
    /// Receive calls since the companion socket was last read.
    since_companion: u32,
    /// Control-message buffer for the companion socket's packet info.
    control: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
}

/// Wakes a shard blocked in [`XdpIo::wait`].
struct EventWaker(OwnedFd);

impl Wake for EventWaker {
    fn wake(&self) -> io::Result<()> {
        sys::eventfd_signal(&self.0)
    }
}

impl XdpIo {
    /// Opens the backend on `cfg.interface` for the UDP port of `addr`.
    pub fn open(
        cfg: &XdpConfig,
        addr: SocketAddr,
        opts: &SocketOptions,
        counters: Arc<IoCounters>,
    ) -> Result<Self, XdpError> {
        let ifindex =
            sys::if_nametoindex(&cfg.interface).map_err(|_| XdpError::NoInterface { name: cfg.interface.clone() })?;
        let link = hw_detect::linux::netlink::link_get(ifindex).map_err(XdpError::Netlink)?;
        let mac = match (link.ethernet, link.mac) {
            (true, Some(m)) => MacAddr(m),
            _ => return Err(XdpError::NotEthernet { name: cfg.interface.clone() }),
        };
        let mtu = link.mtu.unwrap_or(1500);
        // Ethernet header and one VLAN tag; a frame must fit one UMEM frame
        // after the receive headroom.
        let max_frame = mtu.saturating_add(18);
        if max_frame > bpf::MAX_REDIRECT_LEN {
            return Err(XdpError::MtuTooLarge { name: cfg.interface.clone(), mtu, max: bpf::MAX_REDIRECT_LEN - 18 });
        }
        // The queues in use (ETHTOOL_GCHANNELS), not the allocated ones
        // IFLA_NUM_RX_QUEUES reports (veth allocates one per CPU, uses one).
        let nqueues = match hw_detect::linux::ethtool::query(&cfg.interface).queues {
            hw_detect::Known::Known(q) => q.rx.max(1),
            hw_detect::Known::Unknown(why) => {
                log::warn!(
                    "{}: receive queue count unknown ({why}); serving queue 0 only, the kernel path carries the rest",
                    cfg.interface
                );
                1
            }
        };
        let queues = match &cfg.queues {
            Some(q) => q.clone(),
            None => (0..nqueues).collect(),
        };
        if let Some(&q) = queues.iter().find(|&&q| q >= nqueues) {
            return Err(XdpError::QueueOutOfRange { name: cfg.interface.clone(), queue: q, queues: nqueues });
        }

        // The companion socket first: it reserves the port (port 0 picks
        // one), which the program then matches.
        let bind_err = |source| XdpError::Bind { addr, source };
        let companion = bind_companion(addr, opts).map_err(bind_err)?;
        let local = SocketAddr::new(addr.ip(), companion.local_addr().map_err(bind_err)?.port());

        let map_size = queues.iter().max().map_or(1, |q| q + 1);
        let mut program = bpf::StoqXdp::load(&[local.port()], max_frame, map_size).map_err(XdpError::Program)?;
        // Attached before any socket is in its map: until then STOQ's
        // packets go on to the companion socket, so none is lost.
        let native = attach(&mut program, ifindex, &cfg.interface, cfg.mode)?;

        let ring = ring_size(cfg.ring, opts);
        let mut xsks = Vec::with_capacity(queues.len());
        for &q in &queues {
            let xsk = open_xsk(ifindex, q, ring, native, cfg.zero_copy)?;
            program.map().insert(q, xsk.fd()).map_err(XdpError::Map)?;
            xsks.push(xsk);
        }
        let zero_copy = xsks.iter().all(|x| x.mode() == BindMode::ZeroCopy);
        log::info!(
            "AF_XDP on {} queue(s) {:?} ({} XDP, {} mode, {} frames per ring), port {}",
            cfg.interface,
            queues,
            if native { "native" } else { "generic" },
            if zero_copy { "zero-copy" } else { "copy" },
            ring,
            local.port()
        );

        let batch = opts.batch();
        let caps = IoCapabilities {
            max_gso_segments: MAX_SEGMENTS,
            gro: false,
            ecn: true,
            kernel_pacing: false,
            rx_batch: batch,
            tx_batch: batch,
            rx_slot_size: RX_SLOT,
            recv_buffer: ring as usize * (mtu as usize),
            send_buffer: ring as usize * (mtu as usize),
            zero_copy,
        };
        let waker = Arc::new(EventWaker(sys::eventfd().map_err(|source| XdpError::Io { step: "eventfd", source })?));
        let mut pollfds = vec![pollfd(waker.0.as_raw_fd()), pollfd(companion.as_raw_fd())];
        pollfds.extend(xsks.iter().map(|x| pollfd(x.fd())));
        Ok(Self {
            program,
            xsks,
            companion_v6: companion.local_addr().is_ok_and(|a| a.is_ipv6()),
            companion,
            local,
            mac,
            hops: NextHops::new(ifindex, own_addresses(&cfg.interface)),
            waker,
            counters,
            caps,
            ip_id: 0,
            next_tx: 0,
            since_stats: 0,
            drops_seen: 0,
            companion_due: true,
            since_companion: 0,
            control: control_buffer(),
            pollfds,
        })
    }

    /// The queues served, and whether each is zero-copy.
    pub fn queues(&self) -> Vec<(u32, bool)> {
        self.xsks.iter().map(|x| (x.queue(), x.mode() == BindMode::ZeroCopy)).collect()
    }

    /// Whether the program runs in native (driver) mode.
    pub fn native(&self) -> bool {
        self.program.attachment().is_some_and(|a| a.mode() == bpf::XdpMode::Native)
    }

    /// Reads the kernel's drop counters into `rx_dropped` now and then.
    fn account_drops(&mut self) {
        self.since_stats += 1;
        if self.since_stats < STATS_EVERY {
            return;
        }
        self.since_stats = 0;
        let total: u64 = self.xsks.iter().filter_map(|x| x.drops().ok()).map(|d| d.rx_dropped + d.rx_ring_full).sum();
        IoCounters::add(&self.counters.rx_dropped, total.saturating_sub(self.drops_seen));
        self.drops_seen = total.max(self.drops_seen);
    }

    /// Sends one segment through the companion socket. `Ok(false)`: the
    /// socket is full, try again later.
    fn send_kernel(&self, payload: &[u8], dst: SocketAddr, errors: &mut u64) -> io::Result<bool> {
        // The companion is dual-stack where the host has IPv6: it reaches
        // IPv4 peers at their IPv4-mapped address.
        let to = match (self.companion_v6, dst) {
            (true, SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            _ => dst,
        };
        match self.companion.send_to(payload, to) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if is_per_peer(&e) => {
                log::debug!("AF_XDP companion send to {dst}: {e}");
                *errors += 1;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

/// An address as an endpoint bound to `local` sees it: IPv4 peers appear
/// as IPv4-mapped IPv6 addresses on a dual-stack (`[::]`) endpoint, as they
/// do on its kernel socket.
fn shard_addr(local: SocketAddr, a: SocketAddr) -> SocketAddr {
    match (local, a) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        _ => a,
    }
}

/// The addresses on `interface` (next hops need a source address when the
/// endpoint is bound to a wildcard).
fn own_addresses(interface: &str) -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    addrs
        .filter(|a| a.interface_name == interface)
        .filter_map(|a| {
            let a = a.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// Errors that concern one destination, not the socket.
fn is_per_peer(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EMSGSIZE | libc::EACCES | libc::EPERM)
    )
}

/// Ring entries per XSK: the profile's socket buffer in frames, a power of
/// two from 512 to 8192 (the UMEM is twice that many 4 KiB frames: 4 to
/// 64 MiB per queue), unless configured.
fn ring_size(configured: Option<u32>, opts: &SocketOptions) -> u32 {
    let want = configured.unwrap_or((opts.recv_buffer.max(opts.send_buffer) / 2048) as u32);
    want.clamp(512, 8192).next_power_of_two().min(8192)
}

/// Attaches the program in the configured mode (`Auto`: native, else
/// generic); true when it runs natively.
fn attach(program: &mut bpf::StoqXdp, ifindex: u32, name: &str, mode: AttachMode) -> Result<bool, XdpError> {
    let mut go = |m| program.attach(ifindex, name, m, bpf::Mechanism::Auto).map(drop);
    match mode {
        AttachMode::Native => go(bpf::XdpMode::Native).map(|()| true),
        AttachMode::Generic => go(bpf::XdpMode::Generic).map(|()| false),
        AttachMode::Auto => match go(bpf::XdpMode::Native) {
            Ok(()) => Ok(true),
            Err(bpf::AttachError::NativeUnsupported { .. }) => {
                log::info!("{name}: the driver has no native XDP; running STOQ's program in generic mode");
                go(bpf::XdpMode::Generic).map(|()| false)
            }
            Err(e) => Err(e),
        },
    }
    .map_err(XdpError::Attach)
}

fn open_xsk(ifindex: u32, queue: u32, ring: u32, native: bool, zc: ZeroCopy) -> Result<Xsk, XdpError> {
    let open = |mode| bind_retrying(ifindex, queue, ring, mode);
    match zc {
        ZeroCopy::Off => open(BindMode::Copy).map_err(XdpError::Xsk),
        ZeroCopy::Required if !native => Err(XdpError::ZeroCopyNeedsNative),
        ZeroCopy::Required => open(BindMode::ZeroCopy).map_err(XdpError::Xsk),
        // Generic XDP copies anyway; native mode tries zero-copy first.
        ZeroCopy::Auto if !native => open(BindMode::Copy).map_err(XdpError::Xsk),
        ZeroCopy::Auto => open(BindMode::ZeroCopy).or_else(|e| {
            log::info!("AF_XDP queue {queue}: zero-copy bind refused ({}); using copy mode", e.source);
            open(BindMode::Copy).map_err(XdpError::Xsk)
        }),
    }
}

/// How long a bind waits for a queue whose previous socket is closing.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// [`Xsk::open`], retried while the queue is busy for up to [`BUSY_WAIT`]:
/// the kernel releases a closed socket's queue from a work queue, a moment
/// after `close` returns, so a backend reopened at once can find it taken.
fn bind_retrying(ifindex: u32, queue: u32, ring: u32, mode: BindMode) -> Result<Xsk, crate::XskError> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match Xsk::open(ifindex, queue, ring, mode) {
            Err(e) if e.step == "bind" && e.source.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

/// Receives one datagram on the companion socket: its length, source and
/// destination. The destination comes from packet info, so a wildcard-bound
/// endpoint sees the same local address for a peer whichever path its
/// packets took.
/// `control` is the reused control-message buffer ([`control_buffer`]).
fn recv_companion(
    sock: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
    local: SocketAddr,
) -> io::Result<(usize, SocketAddr, SocketAddr)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(control), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let src = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port()))))
        })
        .ok_or_else(|| io::Error::other("companion socket: datagram without a source address"))?;
    let src = shard_addr(local, SocketAddr::new(src.ip().to_canonical(), src.port()));
    let mut dst = local;
    for c in msg.cmsgs().into_iter().flatten() {
        let ip = match c {
            ControlMessageOwned::Ipv4PacketInfo(i) => IpAddr::V4(u32::from_be(i.ipi_addr.s_addr).into()),
            ControlMessageOwned::Ipv6PacketInfo(i) => IpAddr::V6(i.ipi6_addr.s6_addr.into()),
            _ => continue,
        };
        dst = shard_addr(local, SocketAddr::new(ip.to_canonical(), local.port()));
    }
    Ok((msg.bytes, src, dst))
}

/// Room for the two packet-info messages a dual-stack socket gets for an
/// IPv4 datagram; allocated once per backend.
fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo)
}

/// The kernel UDP socket on STOQ's port: it keeps other processes off the
/// port, receives what the XDP program passes, and sends what cannot take
/// the AF_XDP path.
///
/// It binds the port on every address of both families (`[::]`,
/// dual-stack; `0.0.0.0` on hosts without IPv6) whatever `addr` says: the
/// program redirects the port on every address, so a process holding it
/// on another address would lose its traffic. Binding the wildcard makes
/// the kernel refuse (`EADDRINUSE`) rather than let that happen. A specific
/// `addr` must still be one of this host's.
fn bind_companion(addr: SocketAddr, opts: &SocketOptions) -> io::Result<UdpSocket> {
    if !addr.ip().is_unspecified() {
        UdpSocket::bind((addr.ip(), 0))?;
    }
    let s = match Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)) {
        Ok(s) => {
            s.set_only_v6(false)?;
            s.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, addr.port())).into())?;
            s
        }
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) && addr.is_ipv4() => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port())).into())?;
            s
        }
        Err(e) => return Err(e),
    };
    // Best effort: the kernel caps these at its sysctl limits.
    let _ = s.set_recv_buffer_size(opts.recv_buffer);
    let _ = s.set_send_buffer_size(opts.send_buffer);
    s.set_nonblocking(true)?;
    // Packet info: the address each datagram was sent to (see
    // `recv_companion`). A dual-stack socket reports IPv4 datagrams with
    // IP_PKTINFO.
    use nix::sys::socket::{setsockopt, sockopt};
    if s.local_addr()?.is_ipv6() {
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
        let _ = setsockopt(&s, sockopt::Ipv4PacketInfo, &true);
    } else {
        setsockopt(&s, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(s.into())
}

impl PacketIo for XdpIo {
    fn kind(&self) -> BackendKind {
        BackendKind::AfXdp
    }

    fn capabilities(&self) -> IoCapabilities {
        self.caps
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn wait(&mut self, timeout: Option<Duration>, want_writable: bool) -> io::Result<()> {
        if self.xsks.iter().any(Xsk::rx_ready) {
            return Ok(());
        }
        // Transmit frames come back through the completion ring, which
        // `poll` does not report: while sends wait for frames, look again
        // soon.
        let timeout = match want_writable {
            true => Some(timeout.map_or(Duration::from_micros(200), |t| t.min(Duration::from_micros(200)))),
            false => timeout,
        };
        for p in &mut self.pollfds {
            p.revents = 0;
        }
        sys::poll(&mut self.pollfds, timeout)?;
        if self.pollfds[0].revents != 0 {
            sys::eventfd_drain(&self.waker.0);
        }
        self.companion_due |= self.pollfds[1].revents != 0;
        Ok(())
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let start = batch.len();
        let (mut datagrams, mut bytes, mut errors, mut ce) = (0u64, 0u64, 0u64, 0u64);
        let local = self.local;
        for xsk in &mut self.xsks {
            let room = batch.capacity() - batch.len();
            if room == 0 {
                break;
            }
            xsk.recv(room as u32, |f| match frame::parse_udp(f) {
                Ok(u) if u.dst.port() == local.port() && accepts(local, u.dst) => {
                    let payload = &f[u.payload.clone()];
                    let Some(slot) = batch.next_slot() else { return };
                    if payload.len() > slot.len() {
                        errors += 1;
                        return;
                    }
                    slot[..payload.len()].copy_from_slice(payload);
                    batch.commit(RxMeta {
                        len: payload.len(),
                        src: shard_addr(local, u.src),
                        dst: shard_addr(local, u.dst),
                        segment_size: payload.len(),
                        ecn: u.ecn,
                    });
                    datagrams += 1;
                    bytes += payload.len() as u64;
                    ce += u64::from(u.ecn == 0b11);
                }
                Ok(_) => errors += 1,
                Err(e) => {
                    log::trace!("AF_XDP: dropping a redirected frame: {e}");
                    errors += 1;
                }
            });
        }
        // What the program passed to the kernel.
        let mut kernel = 0u64;
        self.since_companion += 1;
        if self.since_companion >= COMPANION_EVERY {
            self.companion_due = true;
        }
        let mut syscalls = 0u64;
        while self.companion_due {
            let Some(slot) = batch.next_slot() else { break };
            syscalls += 1;
            match recv_companion(&self.companion, slot, &mut self.control, local) {
                Ok((len, src, dst)) if accepts(local, dst) => {
                    batch.commit(RxMeta { len, src, dst, segment_size: len.max(1), ecn: 0 });
                    kernel += 1;
                    bytes += len as u64;
                }
                // For another of the host's addresses: the endpoint is
                // bound to one.
                Ok(_) => errors += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    (self.companion_due, self.since_companion) = (false, 0);
                }
                Err(e) if is_per_peer(&e) || e.kind() == io::ErrorKind::ConnectionReset => errors += 1,
                Err(e) => return Err(e),
            }
        }
        let c = &self.counters;
        IoCounters::add(&c.rx_datagrams, datagrams + kernel);
        IoCounters::add(&c.rx_kernel_path, kernel);
        IoCounters::add(&c.rx_bytes, bytes);
        IoCounters::add(&c.rx_errors, errors);
        IoCounters::add(&c.rx_ecn_ce, ce);
        IoCounters::add(&c.rx_syscalls, syscalls);
        self.account_drops();
        Ok(batch.len() - start)
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<bool> {
        let now = Instant::now();
        let (mut frames, mut kernel, mut bytes, mut errors) = (0u64, 0u64, 0u64, 0u64);
        let xi = self.next_tx % self.xsks.len();
        self.next_tx = self.next_tx.wrapping_add(1);
        let mut blocked = false;
        'transmits: while let Some(t) = batch.pending().first().copied() {
            let payload = batch.payload(&t);
            let hop = self.hops.lookup(t.dst.ip(), now);
            let (dst_mac, src_ip) = match hop {
                NextHop::Mac { dst, src_ip } => (dst, src_ip),
                NextHop::Kernel(_) => {
                    for (k, seg) in payload.chunks(t.segment_size.max(1)).enumerate() {
                        if !self.send_kernel(seg, t.dst, &mut errors)? {
                            if k > 0 {
                                batch.advance_segments(k);
                            }
                            blocked = true;
                            break 'transmits;
                        }
                        kernel += 1;
                        bytes += seg.len() as u64;
                    }
                    batch.advance(1);
                    continue;
                }
            };
            let src_ip = if t.src.ip().is_unspecified() { src_ip } else { t.src.ip() };
            let src = SocketAddr::new(src_ip, self.local.port());
            let l2 = L2 { src: self.mac, dst: dst_mac, vlan: None };
            let Ok(v6) = frame::is_ipv6_frame(&src, &t.dst) else {
                log::debug!(
                    "AF_XDP: no {} source address for {}",
                    if t.dst.is_ipv6() { "IPv6" } else { "IPv4" },
                    t.dst
                );
                errors += t.segments as u64;
                batch.advance(1);
                continue;
            };
            let hlen = frame::headers_len(v6, false);
            let xsk = &mut self.xsks[xi];
            for (k, seg) in payload.chunks(t.segment_size.max(1)).enumerate() {
                let Some((addr, buf)) = xsk.tx_frame() else {
                    if k > 0 {
                        batch.advance_segments(k);
                    }
                    blocked = true;
                    break 'transmits;
                };
                if hlen + seg.len() > buf.len() {
                    xsk.tx_unused(addr);
                    errors += 1;
                    continue;
                }
                buf[hlen..hlen + seg.len()].copy_from_slice(seg);
                self.ip_id = self.ip_id.wrapping_add(1);
                match frame::write_headers(buf, &l2, src, t.dst, seg.len(), t.ecn, self.ip_id) {
                    Ok(len) => {
                        xsk.tx_push(addr, len);
                        frames += 1;
                        bytes += seg.len() as u64;
                    }
                    Err(e) => {
                        log::debug!("AF_XDP: cannot frame a datagram to {}: {e}", t.dst);
                        xsk.tx_unused(addr);
                        errors += 1;
                    }
                }
            }
            batch.advance(1);
        }
        let flushed = self.xsks[xi].flush();
        let c = &self.counters;
        IoCounters::add(&c.tx_datagrams, frames + kernel);
        IoCounters::add(&c.tx_kernel_path, kernel);
        IoCounters::add(&c.tx_bytes, bytes);
        IoCounters::add(&c.tx_errors, errors);
        IoCounters::add(&c.tx_syscalls, kernel + flushed.as_ref().copied().unwrap_or(0));
        flushed.map(|_| !blocked)
    }
}

/// Whether a datagram to `dst` is for an endpoint bound to `local` (a
/// wildcard takes any address on the interface).
fn accepts(local: SocketAddr, dst: SocketAddr) -> bool {
    let l = local.ip();
    l.is_unspecified() || l.to_canonical() == dst.ip().to_canonical()
}
