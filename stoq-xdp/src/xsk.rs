//! One AF_XDP socket (XSK) on one NIC queue, with a UMEM of its own.
//!
//! The UMEM is one anonymous mapping cut into `2 × ring` frames of
//! [`FRAME_SIZE`] bytes. The first `ring` frames belong to the receive
//! side and cycle fill ring → kernel → RX ring → [`Xsk::recv`] → fill ring;
//! the rest belong to the transmit side and cycle free list →
//! [`Xsk::tx_frame`] → TX ring → kernel → completion ring → free list.
//! A frame is touched by this process only while it owns it (it came off
//! the RX or completion ring, or from the free list), which is what makes
//! the slices handed out here sound.
//!
//! xdpilone creates the socket, registers the UMEM, maps the four rings
//! and binds; this module owns the frame accounting, the wake-ups
//! (`need_wakeup` on the fill and TX rings) and the kernel's drop counters.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::RawFd;

use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User};

use crate::sys::{self, Mapping};

/// Bytes per UMEM frame: one page, the largest aligned-mode chunk, so one
/// frame holds a 1500-byte-MTU packet with room to spare (up to MTU 3822
/// with a VLAN tag, after the 256 bytes of receive headroom).
pub const FRAME_SIZE: u32 = 4096;

/// How an XSK binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// `XDP_ZEROCOPY`: the driver DMAs into the UMEM.
    ZeroCopy,
    /// `XDP_COPY`: the kernel copies between its buffers and the UMEM.
    Copy,
}

/// Why an XSK could not be set up: the step and the kernel's error.
#[derive(Debug, thiserror::Error)]
#[error("AF_XDP socket on queue {queue}: {step} failed: {source}{}", hint(step, source))]
pub struct XskError {
    /// The NIC queue.
    pub queue: u32,
    /// What was being done.
    pub step: &'static str,
    /// The kernel's error.
    pub source: io::Error,
}

fn hint(step: &str, e: &io::Error) -> &'static str {
    match (step, e.raw_os_error()) {
        (_, Some(libc::EPERM | libc::EACCES)) => " (AF_XDP needs CAP_NET_RAW and CAP_NET_ADMIN; run as root)",
        ("bind", Some(libc::EBUSY)) => " (another AF_XDP socket, maybe another process, holds this queue)",
        ("bind", Some(libc::EOPNOTSUPP)) => " (the driver has no zero-copy AF_XDP on this queue)",
        ("bind", Some(libc::EINVAL)) => " (queue out of range, or an MTU above what one UMEM frame holds)",
        ("mapping the UMEM", Some(libc::ENOMEM)) => " (raise RLIMIT_MEMLOCK or lower the ring size)",
        _ => "",
    }
}

/// The kernel's drop counters for one XSK (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskDrops {
    /// Packets dropped for any reason before reaching the RX ring.
    pub rx_dropped: u64,
    /// Packets dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a packet arrived.
    pub fill_ring_empty: u64,
}

/// One XSK and its UMEM. Field order is drop order: rings and sockets
/// before the UMEM registration before the mapping they point into.
pub struct Xsk {
    device: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    _user: User,
    _umem: Umem,
    area: Mapping,
    queue: u32,
    ring: u32,
    mode: BindMode,
    /// Transmit frames owned by us and free to fill.
    tx_free: Vec<u64>,
    /// Descriptors written since the last [`flush`](Self::flush).
    tx_pending: Vec<XdpDesc>,
    /// Receive frames to hand back to the fill ring.
    refill: Vec<u64>,
}

// SAFETY: the one field that is not `Send` is xdpilone's `Umem`, for its
// pointer to the UMEM area; that area is `self.area`, owned by the same
// value and moved with it, and nothing else keeps a reference to it. The
// rings are `Send` already; an `Xsk` is used by one thread at a time.
unsafe impl Send for Xsk {}

impl Xsk {
    /// Creates an XSK with `ring` entries per ring (a power of two) bound to
    /// `queue` of interface `ifindex` in `mode`.
    pub fn open(ifindex: u32, queue: u32, ring: u32, mode: BindMode) -> Result<Self, XskError> {
        let fail = |step| move |source| XskError { queue, step, source };
        let errno = |step| move |e: xdpilone::Errno| XskError { queue, step, source: errno_of(e) };
        debug_assert!(ring.is_power_of_two());
        let frames = 2 * ring as usize;
        let area = Mapping::new(frames * FRAME_SIZE as usize).map_err(fail("mapping the UMEM"))?;
        let config = UmemConfig { fill_size: ring, complete_size: ring, frame_size: FRAME_SIZE, headroom: 0, flags: 0 };
        // SAFETY: `area` is page-aligned (mmap), `frames * FRAME_SIZE`
        // bytes long, and outlives the Umem: it is declared after it in
        // `Xsk`, so it is unmapped only once the Umem and rings are gone.
        let umem = unsafe { Umem::new(config, area.as_slice_ptr()) }.map_err(errno("registering the UMEM"))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex).map_err(errno("looking up the interface"))?;
        info.set_queue(queue);
        let sock = Socket::with_shared(&info, &umem).map_err(errno("creating the socket"))?;
        // xdpilone opens the socket without SOCK_CLOEXEC: a child process
        // (even `ip`) would inherit it and keep the queue, the UMEM and the
        // map entry alive after we close it.
        sys::set_cloexec(sock.as_raw_fd()).map_err(fail("setting FD_CLOEXEC"))?;
        let mut device = umem.fq_cq(&sock).map_err(errno("creating the fill and completion rings"))?;
        let bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP
            | match mode {
                BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
                BindMode::Copy => SocketConfig::XDP_BIND_COPY,
            };
        let size = NonZeroU32::new(ring);
        let user = umem
            .rx_tx(&sock, &SocketConfig { rx_size: size, tx_size: size, bind_flags })
            .map_err(errno("creating the RX and TX rings"))?;
        let rx = user.map_rx().map_err(errno("mapping the RX ring"))?;
        let tx = user.map_tx().map_err(errno("mapping the TX ring"))?;
        umem.bind(&user).map_err(errno("bind"))?;

        // Every receive frame starts in the fill ring.
        let mut fill = device.fill(ring);
        let filled = fill.insert((0..u64::from(ring)).map(|i| i * u64::from(FRAME_SIZE)));
        fill.commit();
        drop(fill);
        if filled != ring {
            let source = io::Error::other(format!("the fill ring took {filled} of {ring} frames"));
            return Err(XskError { queue, step: "filling the fill ring", source });
        }
        let tx_free = (u64::from(ring)..2 * u64::from(ring)).map(|i| i * u64::from(FRAME_SIZE)).collect();
        Ok(Self {
            device,
            rx,
            tx,
            _user: user,
            _umem: umem,
            area,
            queue,
            ring,
            mode,
            tx_free,
            tx_pending: Vec::with_capacity(ring as usize),
            refill: Vec::with_capacity(ring as usize),
        })
    }

    /// The NIC queue this socket serves.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// How it is bound.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// The socket's descriptor, for the XSKMAP and `poll`.
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// True when received packets are waiting in the RX ring.
    pub fn rx_ready(&self) -> bool {
        self.rx.available() > 0
    }

    /// Hands up to `max` received frames to `each` (which sees the whole
    /// Ethernet frame) and returns the frames to the fill ring. Returns how
    /// many frames were read.
    pub fn recv(&mut self, max: u32, mut each: impl FnMut(&[u8])) -> u32 {
        let mut read = self.rx.receive(max);
        let mut n = 0;
        while let Some(desc) = read.read() {
            n += 1;
            if let Some(frame) = frame(&self.area, desc.addr, desc.len) {
                each(frame);
            }
            // Aligned mode: any address inside a chunk names the chunk.
            self.refill.push(desc.addr - desc.addr % u64::from(FRAME_SIZE));
        }
        read.release();
        drop(read);
        if !self.refill.is_empty() {
            let mut fill = self.device.fill(self.refill.len() as u32);
            let k = fill.capacity() as usize;
            // The fill ring has room for every receive frame, so it takes
            // all of them; keep any it did not for the next call.
            fill.insert(self.refill[..k.min(self.refill.len())].iter().copied());
            fill.commit();
            drop(fill);
            self.refill.drain(..k.min(self.refill.len()));
        }
        if self.device.needs_wakeup() {
            self.device.wake();
        }
        n
    }

    /// Takes a free transmit frame: its UMEM address and its bytes.
    /// `None` when every transmit frame is in flight (after reclaiming the
    /// completed ones).
    pub fn tx_frame(&mut self) -> Option<(u64, &mut [u8])> {
        if self.tx_free.is_empty() {
            self.reclaim();
        }
        let addr = self.tx_free.pop()?;
        match frame_mut(&mut self.area, addr) {
            Some(buf) => Some((addr, buf)),
            None => None,
        }
    }

    /// Queues `len` bytes of the frame at `addr` (from
    /// [`tx_frame`](Self::tx_frame)) for transmission at the next
    /// [`flush`](Self::flush).
    pub fn tx_push(&mut self, addr: u64, len: usize) {
        self.tx_pending.push(XdpDesc { addr, len: len as u32, options: 0 });
    }

    /// Gives a frame from [`tx_frame`](Self::tx_frame) back unused.
    pub fn tx_unused(&mut self, addr: u64) {
        self.tx_free.push(addr);
    }

    /// Moves queued descriptors onto the TX ring and has the kernel send
    /// them. In copy mode the kernel sends at most 32 frames per
    /// `sendto` and answers `EAGAIN` while more wait, so this kicks until
    /// the ring is empty or the device stops taking frames. Returns the
    /// number of `sendto` calls made.
    pub fn flush(&mut self) -> io::Result<u64> {
        if !self.tx_pending.is_empty() {
            let mut w = self.tx.transmit(self.tx_pending.len() as u32);
            // The TX ring holds every transmit frame, so it has room for
            // all queued ones.
            let k = (w.capacity() as usize).min(self.tx_pending.len());
            w.insert(self.tx_pending[..k].iter().copied());
            w.commit();
            drop(w);
            self.tx_pending.drain(..k);
        }
        if self.mode == BindMode::ZeroCopy && !self.tx.needs_wakeup() {
            return Ok(0);
        }
        let (mut last, mut kicks) = (u32::MAX, 0);
        while self.tx.pending() > 0 {
            let before = self.tx.pending();
            kicks += 1;
            match sys::kick_tx(self.fd()) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS)) => {
                    // No progress since the last kick: the device is full;
                    // the shard retries on its next turn.
                    if before == last {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
            last = before;
            if self.mode == BindMode::ZeroCopy {
                break;
            }
        }
        Ok(kicks)
    }

    /// Returns completed transmit frames to the free list.
    pub fn reclaim(&mut self) {
        let mut done = self.device.complete(self.ring);
        while let Some(addr) = done.read() {
            self.tx_free.push(addr - addr % u64::from(FRAME_SIZE));
        }
        done.release();
    }

    /// The kernel's drop counters for this socket.
    pub fn drops(&self) -> io::Result<XskDrops> {
        let s = self.device.statistics_v2().map_err(errno_of)?;
        Ok(XskDrops {
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            fill_ring_empty: s.rx_fill_ring_empty_descs,
        })
    }
}

/// The received bytes at `addr`, if the kernel's descriptor lies inside
/// the UMEM's receive half.
fn frame(area: &Mapping, addr: u64, len: u32) -> Option<&[u8]> {
    let (start, end) = (usize::try_from(addr).ok()?, usize::try_from(addr).ok()?.checked_add(len as usize)?);
    if end > area.len() / 2 || start / FRAME_SIZE as usize != (end.max(1) - 1) / FRAME_SIZE as usize {
        return None;
    }
    // SAFETY: the range lies inside the mapping and within one frame, and
    // that frame came off the RX ring: the kernel does not write it again
    // until it is back in the fill ring, which happens after this borrow
    // ends (`recv` pushes it afterwards).
    Some(unsafe { std::slice::from_raw_parts(area.base().as_ptr().add(start), len as usize) })
}

/// The whole transmit frame at `addr`, if it is one.
fn frame_mut(area: &mut Mapping, addr: u64) -> Option<&mut [u8]> {
    let start = usize::try_from(addr).ok()?;
    if start < area.len() / 2 || start % FRAME_SIZE as usize != 0 || start + FRAME_SIZE as usize > area.len() {
        return None;
    }
    // SAFETY: the frame lies inside the mapping's transmit half and came
    // from the free list: it is in neither the TX nor the completion ring,
    // so the kernel does not read or write it while this borrow lives;
    // `&mut Mapping` keeps any other slice of ours from aliasing it.
    Some(unsafe { std::slice::from_raw_parts_mut(area.base().as_ptr().add(start), FRAME_SIZE as usize) })
}

fn errno_of(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw())
}
