//! The `io_uring` backend.
//!
//! Receive: one multishot `recvmsg` stays armed on the socket and the
//! kernel fills buffers from a provided-buffer ring (one datagram or GRO
//! super-buffer each, laid out as `struct io_uring_recvmsg_out`, address,
//! control messages, payload). [`recv`](PacketIo::recv) only reads
//! completion entries from shared memory, copies payloads into the
//! [`RxBatch`] and hands the buffers back: no system call. When the ring
//! runs dry the kernel ends the multishot with `ENOBUFS` and keeps the data
//! in the socket buffer; the receive is re-armed (it rides on the next
//! `io_uring_enter`) once buffers are back, and picks the data up.
//!
//! Send: one `sendmsg` submission per transmit (UDP GSO, source address,
//! ECN and `SO_TXTIME` as control messages, planned as `linux-batch` plans
//! them), linked so completion is a prefix, all submitted and reaped with
//! one `io_uring_enter`. UDP sends complete inline, so waiting for them
//! never waits on the network, and the batch's memory is free again when
//! `send` returns. A GSO send the path refuses (`EIO`/`EINVAL`) is resent
//! one datagram per packet and GSO stays off, as in `linux-batch`.
//!
//! Wait: `io_uring_enter` with a timeout (`IORING_ENTER_EXT_ARG`) until any
//! completion: received data, the waker's eventfd read, or (while a send is
//! blocked) a one-shot `POLLOUT` poll on the socket. Completions are all
//! reaped by one function that parks receive completions (and their
//! buffers) in a queue for the next `recv`, so none is lost whichever call
//! reaped it.
//!
//! Counters: `rx_syscalls` counts the `io_uring_enter` calls `wait` makes
//! (that is where the receive is submitted and waited for; `recv` itself
//! makes none), `tx_syscalls` those `send` makes (normally one per batch).
//!
//! `SendMsgZc` is not used: it pays off only for large sends with page
//! pinning and notification completions, and it has not been benchmarked
//! here. Neither is `IORING_SETUP_COOP_TASKRUN`: tried, it made no
//! measurable difference on loopback, and without it `recv` never needs a
//! system call to see completions.
#![allow(unsafe_code)]

mod mem;
mod send;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, cqueue, opcode, squeue};

use self::mem::{BufRing, EventFd, RawMem, RecvHeader, SendMsgs};
use super::plan::SendPlan;
use super::socket;
use super::sys::{self, NAME_LEN};
use super::{RX_SLOT, cmsg};
use crate::io::udp::bind_udp;
use crate::io::{
    BackendError, BackendKind, IoCapabilities, IoCounters, PacketIo, RxBatch, SocketOptions, TxBatch, Wake,
};

/// Provided receive buffers. Each holds one datagram or one GRO
/// super-buffer; between two `recv` calls the kernel can fill this many.
/// 128 is four full receive batches, so the kernel keeps receiving while
/// the shard works through a turn, and with GRO it is 8 MiB of coalesced
/// datagrams, twice the default 4 MiB socket buffer. Running dry is not
/// loss (the data waits in the socket buffer until the receive is
/// re-armed), only a slower path; more buffers cost 64 KiB each.
pub(crate) const RING_DEPTH: u16 = 128;
/// Submission queue: one batch of sends plus the receive, waker and poll.
const SQ_ENTRIES: u32 = 64;
/// The provided-buffer group id.
const BGID: u16 = 0;

/// `sizeof(struct io_uring_recvmsg_out)` (include/uapi/linux/io_uring.h):
/// `__u32 namelen, controllen, payloadlen, flags`.
const RECVMSG_OUT: usize = 16;
/// Room for the sender's `struct sockaddr_in6` (28 bytes), rounded up so
/// the control messages after it are 8-byte aligned.
const NAME_FIELD: usize = NAME_LEN.next_multiple_of(8);
/// One provided buffer: header, address, control messages and a 64 KiB
/// payload, so a GRO super-buffer is never truncated.
const BUF_LEN: usize = (RECVMSG_OUT + NAME_FIELD + cmsg::RECV_SPACE + RX_SLOT).next_multiple_of(64);

// Completion tags (user_data).
const RECV: u64 = 1;
const WAKE: u64 = 2;
const POLLOUT: u64 = 3;
/// Send message `i` completes with `SEND | i`.
const SEND: u64 = 1 << 32;

/// io_uring backend with multishot receive into a provided-buffer ring.
pub struct UringIo {
    ring: IoUring,
    /// Owns the descriptor `fd` (closed after Drop has cancelled requests).
    _socket: std::net::UdpSocket,
    fd: RawFd,
    local: SocketAddr,
    gro: bool,
    buffers: (usize, usize),
    bufs: BufRing,
    rx_hdr: RecvHeader,
    /// The multishot receive is in flight (no final completion seen).
    rx_armed: bool,
    /// Receive completions reaped but not yet handed out: (result, flags).
    rx_queue: VecDeque<(i32, u32)>,
    waker: Arc<EventFd>,
    /// Where the waker's eventfd read lands (8 bytes).
    wake_buf: RawMem,
    wake_armed: bool,
    woke: bool,
    pollout_armed: bool,
    tx: SendMsgs,
    plan: SendPlan,
    /// Per planned message: the send's result once reaped.
    results: Vec<i32>,
    sends_reaped: usize,
    /// An `io_uring_enter` failed in a way that may leave submissions
    /// behind pointing at memory we no longer vouch for: never enter again.
    broken: bool,
    counters: Arc<IoCounters>,
}

fn unsupported(reason: &'static str) -> BackendError {
    BackendError::Unsupported { backend: BackendKind::IoUring, reason }
}

fn setup(step: &'static str) -> impl FnOnce(io::Error) -> BackendError {
    move |source| BackendError::Setup { backend: BackendKind::IoUring, step, source }
}

/// Creates the ring and checks that the kernel has what this backend uses.
fn new_ring(depth: u16) -> Result<IoUring, BackendError> {
    // Room for a completion per provided buffer plus a full submission queue.
    let cq = (u32::from(depth) + SQ_ENTRIES).next_power_of_two() * 2;
    let ring = IoUring::builder().setup_cqsize(cq).build(SQ_ENTRIES).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => unsupported(
            "this kernel has no io_uring (it needs Linux 6.0+ built with CONFIG_IO_URING); use --backend linux-batch",
        ),
        Some(libc::EPERM | libc::EACCES) => unsupported(
            "io_uring is not permitted for this process (sysctl kernel.io_uring_disabled, or a seccomp \
             filter as container runtimes install); use --backend linux-batch",
        ),
        _ => setup("creating the io_uring instance (use --backend linux-batch)")(e),
    })?;
    if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
        return Err(unsupported(
            "this kernel's io_uring is too old (no timed waits or no-drop completions; it needs Linux 6.0+); \
             use --backend linux-batch",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|_| {
        unsupported(
            "this kernel's io_uring cannot list its operations (it needs Linux 6.0+); use --backend linux-batch",
        )
    })?;
    let ops = [opcode::RecvMsg::CODE, opcode::SendMsg::CODE, opcode::Read::CODE, opcode::PollAdd::CODE];
    if !ops.iter().all(|&op| probe.is_supported(op)) {
        return Err(unsupported(
            "this kernel's io_uring lacks recvmsg, sendmsg, read or poll (it needs Linux 6.0+); \
             use --backend linux-batch",
        ));
    }
    Ok(ring)
}

impl UringIo {
    /// Binds the backend's socket to `addr`, probes its offloads and arms
    /// the multishot receive.
    pub fn bind(addr: SocketAddr, opts: &SocketOptions, counters: Arc<IoCounters>) -> Result<Self, BackendError> {
        Self::bind_with_depth(addr, opts, counters, RING_DEPTH)
    }

    /// [`bind`](Self::bind) with `depth` provided receive buffers (a power
    /// of two).
    pub(crate) fn bind_with_depth(
        addr: SocketAddr,
        opts: &SocketOptions,
        counters: Arc<IoCounters>,
        depth: u16,
    ) -> Result<Self, BackendError> {
        let ring = new_ring(depth)?;
        let (socket, buffers) = bind_udp(addr, opts).map_err(|source| BackendError::Bind { addr, source })?;
        let fd = socket.as_raw_fd();
        let local = socket.local_addr().map_err(setup("reading the bound address"))?;
        let features = socket::enable(fd, &local, opts.kernel_pacing).map_err(|(step, e)| setup(step)(e))?;
        let waker = Arc::new(EventFd::new().map_err(setup("creating the waker eventfd"))?);
        let bufs = BufRing::new(depth, BUF_LEN);
        // SAFETY: the ring memory is page-aligned, holds `depth` entries and
        // lives in `bufs` inside the backend, whose Drop cancels every request
        // and unregisters the ring before freeing it.
        let registered = unsafe { ring.submitter().register_buf_ring_with_flags(bufs.ring_addr(), depth, BGID, 0) };
        let mut io = Self {
            ring,
            _socket: socket,
            fd,
            local,
            gro: features.gro,
            buffers,
            bufs,
            rx_hdr: RecvHeader::new(NAME_FIELD, cmsg::RECV_SPACE),
            rx_armed: false,
            rx_queue: VecDeque::with_capacity(usize::from(depth) + 8),
            waker,
            wake_buf: RawMem::zeroed(8, 8),
            wake_armed: false,
            woke: false,
            pollout_armed: false,
            tx: SendMsgs::new(opts.batch()),
            plan: SendPlan::new("io_uring", opts.batch(), &local, &features),
            results: vec![0; opts.batch()],
            sends_reaped: 0,
            broken: false,
            counters,
        };
        registered.map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => unsupported(
                "this kernel's io_uring has no provided-buffer rings (Linux 5.19+; this backend needs 6.0+); \
                 use --backend linux-batch",
            ),
            _ => setup("registering the receive buffer ring (locked-memory limit?)")(e),
        })?;
        // Arm the receive and the waker now; a kernel without multishot
        // recvmsg (before 6.0) fails the receive at once with EINVAL.
        io.arm_recv().map_err(setup("arming the receive"))?;
        io.arm_wake().map_err(setup("arming the waker"))?;
        io.ring.submit().map_err(setup("submitting the first receive"))?;
        io.reap();
        if let Some(&(res, _)) = io.rx_queue.front().filter(|&&(res, _)| res < 0 && !io.rx_armed) {
            if res == -libc::EINVAL {
                return Err(unsupported(
                    "this kernel's io_uring has no multishot recvmsg (it needs Linux 6.0+); use --backend linux-batch",
                ));
            }
            return Err(setup("arming the multishot receive")(io::Error::from_raw_os_error(-res)));
        }
        Ok(io)
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("io_uring backend stopped after a failed io_uring_enter"));
        }
        Ok(())
    }

    /// Queues one submission.
    ///
    /// # Safety
    ///
    /// Everything `sqe` points to must stay valid (and, for memory the
    /// kernel writes, untouched by us) until its final completion is reaped
    /// or it is cancelled.
    unsafe fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        // SAFETY: forwarded to the caller.
        if unsafe { self.ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        // Cannot happen with SQ_ENTRIES sized for everything outstanding,
        // but a full queue only needs flushing.
        self.enter(0, None)?;
        // SAFETY: as above.
        unsafe { self.ring.submission().push(sqe) }.map_err(|_| io::Error::other("io_uring submission queue full"))
    }

    fn arm_recv(&mut self) -> io::Result<()> {
        let sqe = opcode::RecvMsgMulti::new(Fd(self.fd), self.rx_hdr.get(), BGID).build().user_data(RECV);
        // SAFETY: the header is boxed in `self.rx_hdr` and the buffers the
        // kernel writes belong to the registered ring in `self.bufs`; both
        // live until Drop has cancelled this request.
        unsafe { self.push(&sqe) }?;
        self.rx_armed = true;
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let sqe = opcode::Read::new(Fd(self.waker.fd()), self.wake_buf.as_ptr(), 8).build().user_data(WAKE);
        // SAFETY: `wake_buf` is 8 bytes we never read or write, freed only
        // after Drop has cancelled this request; the eventfd lives in the
        // Arc `self.waker` holds.
        unsafe { self.push(&sqe) }?;
        self.wake_armed = true;
        Ok(())
    }

    fn arm_pollout(&mut self) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(Fd(self.fd), libc::POLLOUT as u32).build().user_data(POLLOUT);
        // SAFETY: a poll points at no memory; the socket lives in `self`.
        unsafe { self.push(&sqe) }?;
        self.pollout_armed = true;
        Ok(())
    }

    /// `io_uring_enter`: submits what is queued and waits for `want`
    /// completions (bounded by `args`' timeout). A timeout or a signal is
    /// not an error.
    fn enter(&mut self, want: usize, args: Option<&SubmitArgs<'_, '_>>) -> io::Result<()> {
        let mut retries = 0;
        loop {
            let submitter = self.ring.submitter();
            let r = match args {
                Some(a) => submitter.submit_with_args(want, a),
                None => submitter.submit_and_wait(want),
            };
            let e = match r {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR) => return Ok(()),
                // Completions backed up or a transient allocation failure:
                // make room and retry.
                Some(libc::EBUSY | libc::EAGAIN) if retries < 16 => {
                    retries += 1;
                    self.reap();
                }
                _ => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
    }

    /// Reads every completion out of the shared queue: receive results are
    /// parked in `rx_queue` for `recv`, the rest update the backend's state.
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            let (res, flags) = (cqe.result(), cqe.flags());
            match cqe.user_data() {
                RECV => {
                    if !cqueue::more(flags) {
                        self.rx_armed = false;
                    }
                    self.rx_queue.push_back((res, flags));
                }
                WAKE => {
                    self.wake_armed = false;
                    self.woke = true;
                    if res < 0 {
                        log::debug!("io_uring: waker read failed: {}", io::Error::from_raw_os_error(-res));
                    }
                }
                POLLOUT => self.pollout_armed = false,
                tag if tag & SEND != 0 => {
                    if let Some(r) = self.results.get_mut((tag & !SEND) as usize) {
                        *r = res;
                        self.sends_reaped += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Copies one received buffer into `batch`; `None` for a datagram that
    /// must not be passed on.
    fn take(&self, bid: u16, len: usize, batch: &mut RxBatch, tally: &mut super::RxTally) -> Option<()> {
        // SAFETY: `bid` comes from a receive completion and is recycled only
        // after this returns (recycle needs `&mut self.bufs`).
        let buf = unsafe { self.bufs.filled(bid, len) }?;
        let out = RecvMsgOut::parse(buf, self.rx_hdr.get()).ok()?;
        if out.is_payload_truncated() || out.is_name_data_truncated() {
            return None;
        }
        if out.is_control_data_truncated() {
            log::debug!("io_uring: control data truncated; raise cmsg::RECV_SPACE");
        }
        let src = sys::decode_sockaddr(out.name_data())?;
        let info = cmsg::decode(out.control_data());
        let payload = out.payload_data();
        let len = payload.len();
        batch.next_slot().filter(|slot| slot.len() >= len)?[..len].copy_from_slice(payload);
        tally.commit(batch, len, src, &info, &self.local);
        Some(())
    }
}

impl PacketIo for UringIo {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }

    fn capabilities(&self) -> IoCapabilities {
        super::capabilities(&self.plan, self.gro, self.buffers)
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn wait(&mut self, timeout: Option<Duration>, want_writable: bool) -> io::Result<()> {
        self.check_usable()?;
        self.reap();
        let ready = self.woke || !self.rx_queue.is_empty();
        if !ready {
            if !self.rx_armed {
                self.arm_recv()?;
            }
            if !self.wake_armed {
                self.arm_wake()?;
            }
            if want_writable && !self.pollout_armed {
                self.arm_pollout()?;
            }
        }
        if !ready && timeout != Some(Duration::ZERO) {
            let ts = timeout.map(Timespec::from);
            let args = match &ts {
                Some(ts) => SubmitArgs::new().timespec(ts),
                None => SubmitArgs::new(),
            };
            IoCounters::add(&self.counters.rx_syscalls, 1);
            self.enter(1, Some(&args))?;
            self.reap();
        } else if !self.ring.submission().is_empty() {
            IoCounters::add(&self.counters.rx_syscalls, 1);
            self.enter(0, None)?;
        }
        self.woke = false;
        Ok(())
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        self.check_usable()?;
        self.reap();
        let start = batch.len();
        let mut tally = super::RxTally::default();
        let mut failure = None;
        let mut recycled = false;
        while let Some(&(res, flags)) = self.rx_queue.front() {
            if res >= 0 && batch.len() == batch.capacity() {
                break;
            }
            self.rx_queue.pop_front();
            if res < 0 {
                let e = io::Error::from_raw_os_error(-res);
                match -res {
                    libc::ENOBUFS => {
                        IoCounters::add(&self.counters.rx_buffers_exhausted, 1);
                        log::debug!("io_uring: receive buffer ring ran dry; re-arming");
                    }
                    libc::ECANCELED => {}
                    // ICMP errors for one peer surface here; they are not the socket's.
                    _ if crate::io::udp::is_per_peer_error(&e) => tally.errors += 1,
                    _ => {
                        tally.errors += 1;
                        failure = Some(e);
                    }
                }
                continue;
            }
            let Some(bid) = cqueue::buffer_select(flags) else {
                tally.errors += 1;
                continue;
            };
            // Never pass on a cut datagram (cannot happen with 64 KiB buffers
            // on IP sockets) or one the batch's slots cannot hold.
            if self.take(bid, res as usize, batch, &mut tally).is_none() {
                tally.errors += 1;
            }
            self.bufs.recycle(bid);
            recycled = true;
        }
        if recycled {
            self.bufs.publish();
        }
        if !self.rx_armed && self.rx_queue.is_empty() {
            // Rides on the next io_uring_enter (wait or send).
            self.arm_recv()?;
        }
        tally.add_to(&self.counters);
        let got = batch.len() - start;
        match failure {
            Some(e) if got == 0 => Err(e),
            Some(e) => {
                log::warn!("io_uring: receive failed: {e}");
                Ok(got)
            }
            None => Ok(got),
        }
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<bool> {
        self.send_batch(batch)
    }
}

impl Drop for UringIo {
    /// Requests in flight (the multishot receive, the waker's read, a poll)
    /// point into memory this struct owns: cancel them synchronously before
    /// any of it is freed. If that fails, the memory is leaked rather than
    /// risk the kernel writing into freed memory.
    fn drop(&mut self) {
        let timeout = Timespec::from(Duration::from_secs(2));
        match self.ring.submitter().register_sync_cancel(Some(timeout), CancelBuilder::any()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                log::warn!("io_uring: cancelling requests on close failed ({e}); leaking the receive buffers");
                self.bufs.leak();
                self.wake_buf.leak();
                return;
            }
        }
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}
