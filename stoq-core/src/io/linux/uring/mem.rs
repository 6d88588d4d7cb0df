//! Memory the kernel reads or writes behind Rust's back while io_uring
//! requests are in flight: the provided-buffer ring and its buffers, the
//! send message headers, the receive template header and the waker's
//! eventfd. Everything here hands out raw pointers; the safety contract is
//! that [`UringIo`](super::UringIo) keeps each piece alive (and, for the
//! buffer ring, untouched) until the requests using it have completed or
//! been cancelled, which its `Drop` does synchronously.

use std::alloc::{self, Layout};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::io::Wake;
use crate::io::linux::cmsg;
use crate::io::linux::sys::NAME_LEN;

/// A zeroed heap allocation accessed through raw pointers only, so the
/// kernel writing parts of it never races with a Rust reference to it.
pub(super) struct RawMem {
    ptr: NonNull<u8>,
    layout: Layout,
    leaked: bool,
}

// SAFETY: RawMem owns its allocation exclusively, like a Box<[u8]>; moving it
// to another thread moves that ownership. The kernel's accesses belong to the
// io_uring instance, which moves with the backend that owns both.
unsafe impl Send for RawMem {}

impl RawMem {
    pub fn zeroed(size: usize, align: usize) -> Self {
        let layout = Layout::from_size_align(size.max(1), align).expect("power-of-two alignment, sane size");
        // SAFETY: the layout's size is non-zero.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Self { ptr, layout, leaked: false }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Never free this memory: the kernel may still write to it.
    pub fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for RawMem {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: allocated by `zeroed` with exactly this layout, freed once.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        }
    }
}

/// `struct io_uring_buf` (include/uapi/linux/io_uring.h). The `resv` field
/// of entry 0 is the ring's tail (`struct io_uring_buf_ring` overlays it).
#[repr(C)]
struct IoUringBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<IoUringBuf>() == std::mem::size_of::<io_uring::types::BufRingEntry>());

/// A provided-buffer ring: `entries` buffers of `buf_len` bytes the kernel
/// picks from for multishot receives. We own the tail (buffers handed to the
/// kernel), the kernel owns the head (buffers it filled and gave back to us
/// in completion entries).
pub(super) struct BufRing {
    ring: RawMem,
    bufs: RawMem,
    entries: u16,
    buf_len: usize,
    tail: u16,
}

impl BufRing {
    /// All `entries` buffers (a power of two, at most 32768) handed to the
    /// kernel once the ring is registered.
    pub fn new(entries: u16, buf_len: usize) -> Self {
        assert!(entries.is_power_of_two() && entries <= 1 << 15, "buffer ring depth must be a power of two <= 32768");
        // The kernel pins the ring's pages and wants it page-aligned.
        // SAFETY: sysconf only reads a configuration value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(4096);
        let ring = RawMem::zeroed(usize::from(entries) * std::mem::size_of::<IoUringBuf>(), page);
        let bufs = RawMem::zeroed(usize::from(entries) * buf_len, 64);
        let mut r = Self { ring, bufs, entries, buf_len, tail: 0 };
        for bid in 0..entries {
            r.recycle(bid);
        }
        r.publish();
        r
    }

    pub fn ring_addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// Queues buffer `bid` for the kernel again (visible after [`publish`](Self::publish)).
    pub fn recycle(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
        let slot = usize::from(self.tail & (self.entries - 1));
        let addr = self.bufs.as_ptr() as u64 + u64::from(bid) * self.buf_len as u64;
        let e = self.ring.as_ptr().cast::<IoUringBuf>().wrapping_add(slot);
        // SAFETY: `slot < entries`, so `e` is an aligned entry inside the ring
        // allocation. The kernel reads only entries between its head and the
        // published tail; this slot is at our unpublished tail, so nothing
        // reads it until `publish`. Only addr/len/bid are written, never
        // `resv` (in entry 0 that is the tail the kernel reads concurrently),
        // and no reference to the entry is created.
        unsafe {
            ptr::addr_of_mut!((*e).addr).write(addr);
            ptr::addr_of_mut!((*e).len).write(self.buf_len as u32);
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every recycled buffer available to the kernel.
    pub fn publish(&self) {
        let e0 = self.ring.as_ptr().cast::<IoUringBuf>();
        // SAFETY: `resv` of entry 0 is a 2-aligned u16 inside the live ring
        // allocation; the kernel only reads it (smp_load_acquire) and we are
        // its only writer, always through this atomic.
        let tail = unsafe { AtomicU16::from_ptr(ptr::addr_of_mut!((*e0).resv)) };
        // Release: the entry writes above become visible before the tail.
        tail.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`, or `None` if out of range.
    ///
    /// # Safety
    ///
    /// `bid` must come from a completion entry (`IORING_CQE_F_BUFFER`) and
    /// not have been [`recycle`](Self::recycle)d since: the kernel then has
    /// handed the buffer over and does not write it. The borrow of `self`
    /// keeps `recycle` (which needs `&mut self`) away while the slice lives.
    pub unsafe fn filled(&self, bid: u16, len: usize) -> Option<&[u8]> {
        if bid >= self.entries || len > self.buf_len {
            return None;
        }
        let start = usize::from(bid) * self.buf_len;
        // SAFETY: in bounds (checked above); the kernel filled these bytes and
        // no longer touches them (caller's contract); the memory was zeroed
        // at allocation, so it is initialized either way.
        Some(unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(start), len) })
    }

    /// Never free the memory (the kernel may still hold it).
    pub fn leak(&mut self) {
        self.ring.leak();
        self.bufs.leak();
    }
}

/// The `struct msghdr` template a multishot `recvmsg` reads: only the name
/// and control lengths matter (they lay out each provided buffer as
/// `struct io_uring_recvmsg_out`, name, control, payload).
pub(super) struct RecvHeader(Box<libc::msghdr>);

// SAFETY: the header's pointers are all null; it is plain data.
unsafe impl Send for RecvHeader {}

impl RecvHeader {
    pub fn new(name_len: usize, control_len: usize) -> Self {
        // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        h.msg_namelen = name_len as libc::socklen_t;
        h.msg_controllen = control_len as _;
        Self(Box::new(h))
    }

    pub fn get(&self) -> &libc::msghdr {
        &self.0
    }
}

/// Per-message send headers (`struct msghdr`, `struct iovec`) with their
/// address and control buffers, reused for every batch. The arrays are
/// never resized, so pointers into them stay valid.
pub(super) struct SendMsgs {
    hdrs: Vec<libc::msghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<[u8; NAME_LEN]>,
    controls: Vec<[u8; cmsg::SEND_SPACE]>,
}

// SAFETY: the raw pointers inside point into this struct's own arrays and the
// caller's tx batch; they are rewritten before every submission and only the
// kernel dereferences them, while `send` keeps that batch borrowed.
unsafe impl Send for SendMsgs {}

impl SendMsgs {
    pub fn new(n: usize) -> Self {
        // SAFETY: all-zero is a valid msghdr and iovec (null pointers, zero lengths).
        let (hdr, iov) = unsafe { (std::mem::zeroed::<libc::msghdr>(), std::mem::zeroed::<libc::iovec>()) };
        Self {
            hdrs: vec![hdr; n],
            iovs: vec![iov; n],
            names: vec![[0; NAME_LEN]; n],
            controls: vec![[0; cmsg::SEND_SPACE]; n],
        }
    }

    /// Address and control buffers of message `i`, to be filled before [`set`](Self::set).
    pub fn buffers(&mut self, i: usize) -> (&mut [u8; NAME_LEN], &mut [u8; cmsg::SEND_SPACE]) {
        (&mut self.names[i], &mut self.controls[i])
    }

    /// Points message `i` at `payload` and the first `name_len`/`control_len`
    /// bytes of its address and control buffers.
    pub fn set(&mut self, i: usize, payload: &[u8], name_len: usize, control_len: usize) {
        // The kernel only reads the payload; iovec's pointer is mutable
        // because the struct is shared with receive.
        self.iovs[i] = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
        let iov: *mut libc::iovec = &mut self.iovs[i];
        let name = self.names[i].as_mut_ptr();
        let control = self.controls[i].as_mut_ptr();
        let h = &mut self.hdrs[i];
        h.msg_name = name.cast();
        h.msg_namelen = name_len as libc::socklen_t;
        h.msg_iov = iov;
        h.msg_iovlen = 1;
        h.msg_control = if control_len == 0 { ptr::null_mut() } else { control.cast() };
        h.msg_controllen = control_len as _;
        h.msg_flags = 0;
    }

    /// The header of message `i`, for a `sendmsg` submission.
    pub fn hdr(&self, i: usize) -> *const libc::msghdr {
        &self.hdrs[i]
    }
}

/// The waker: an eventfd the backend keeps a read outstanding on.
pub(super) struct EventFd(File);

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // Blocking mode on purpose: io_uring then waits for a value (through
        // its internal poll) instead of failing the read with EAGAIN.
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        Ok(Self(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Wake for EventFd {
    fn wake(&self) -> io::Result<()> {
        // Adds 1 to the counter; only an overflow past 2^64-2 could block.
        (&self.0).write_all(&1u64.to_ne_bytes())
    }
}
