//! The `linux-batch` backend: many datagrams per system call.
//!
//! Receive: one `recvmmsg` fills up to [`SocketOptions::batch`](crate::io::SocketOptions::batch) slots, each of which may
//! hold a GRO super-buffer of equal-size datagrams (split by the shard),
//! with the destination address and ECN bits from control messages.
//! Send: one `sendmmsg` carries up to [`SocketOptions::batch`](crate::io::SocketOptions::batch) transmits, each a UDP GSO
//! send of up to [`MAX_SEGMENTS`] packets to one peer, with source address,
//! ECN and (when kernel pacing is on) a departure time.
//!
//! GSO is probed on the socket, and a kernel that advertises it but whose
//! path refuses it at send time (`EIO` from a device without checksum
//! offload, `EINVAL`) is handled by resending the same transmit as separate
//! datagrams and keeping GSO off for this socket: no datagram is lost, and
//! the event is counted in `IoCounters::gso_fallbacks` and logged.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::net::UdpSocket;

use super::cmsg;
use super::plan::{Failure, SendPlan};
use super::socket;
use super::sys::{self, MsgHeaders, NAME_LEN};
use crate::io::udp::{Readiness, bind_udp};
use crate::io::{
    BackendError, BackendKind, IoCapabilities, IoCounters, PacketIo, RxBatch, RxMeta, SocketOptions, TxBatch, Wake,
};

// One control buffer per message serves both ways.
const _: () = assert!(cmsg::SEND_SPACE <= cmsg::RECV_SPACE);

/// `sendmmsg`/`recvmmsg` backend with UDP GSO/GRO.
pub struct LinuxBatchIo {
    socket: UdpSocket,
    fd: RawFd,
    ready: Readiness,
    local: SocketAddr,
    gro: bool,
    buffers: (usize, usize),
    hdrs: MsgHeaders,
    names: Vec<[u8; NAME_LEN]>,
    controls: Vec<[u8; cmsg::RECV_SPACE]>,
    plan: SendPlan,
    counters: Arc<IoCounters>,
}

impl LinuxBatchIo {
    /// Binds the backend's socket to `addr` and probes its offloads.
    pub fn bind(addr: SocketAddr, opts: &SocketOptions, counters: Arc<IoCounters>) -> Result<Self, BackendError> {
        let setup = |step| move |source| BackendError::Setup { backend: BackendKind::LinuxBatch, step, source };
        let (std_socket, buffers) = bind_udp(addr, opts).map_err(|source| BackendError::Bind { addr, source })?;
        let mut socket = UdpSocket::from_std(std_socket);
        let fd = socket.as_raw_fd();
        let local = socket.local_addr().map_err(setup("reading the bound address"))?;
        let features = socket::enable(fd, &local, opts.kernel_pacing).map_err(|(step, e)| setup(step)(e))?;
        let ready = Readiness::new(&mut socket).map_err(|(step, e)| setup(step)(e))?;
        let batch = opts.batch();
        Ok(Self {
            socket,
            fd,
            ready,
            local,
            gro: features.gro,
            buffers,
            hdrs: MsgHeaders::new(batch),
            names: vec![[0; NAME_LEN]; batch],
            controls: vec![[0; cmsg::RECV_SPACE]; batch],
            plan: SendPlan::new("linux-batch", batch, &local, &features),
            counters,
        })
    }
}

impl PacketIo for LinuxBatchIo {
    fn kind(&self) -> BackendKind {
        BackendKind::LinuxBatch
    }

    fn capabilities(&self) -> IoCapabilities {
        super::capabilities(&self.plan, self.gro, self.buffers)
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.ready.waker()
    }

    fn wait(&mut self, timeout: Option<Duration>, want_writable: bool) -> io::Result<()> {
        self.ready.wait(&mut self.socket, timeout, want_writable)
    }

    fn recv(&mut self, batch: &mut RxBatch) -> io::Result<usize> {
        let slot_size = batch.slot_size();
        let spare = batch.spare_mut();
        let mut slots = 0;
        for (i, slot) in spare.chunks_mut(slot_size).take(self.plan.max()).enumerate() {
            self.hdrs.set(i, slot.as_mut_ptr(), slot.len(), &mut self.names[i], &mut self.controls[i]);
            slots += 1;
        }
        let mut tally = super::RxTally::default();
        let got = loop {
            match self.hdrs.recvmmsg(self.fd, slots) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors for one peer surface here; they are not the socket's.
                Err(e) if tally.errors < 64 && crate::io::udp::is_per_peer_error(&e) => tally.errors += 1,
                Err(e) => {
                    IoCounters::add(&self.counters.rx_errors, tally.errors);
                    return Err(e);
                }
            }
        };
        let calls = 1 + tally.errors;
        for i in 0..got {
            let (len, name_len, control_len, flags) = self.hdrs.received(i);
            let info = cmsg::decode(&self.controls[i][..control_len.min(cmsg::RECV_SPACE)]);
            let src = sys::decode_sockaddr(&self.names[i][..name_len.min(NAME_LEN)]);
            let Some(src) = src.filter(|_| flags & libc::MSG_TRUNC == 0) else {
                // Cannot happen with 64 KiB slots and IP sockets; never pass on a cut datagram.
                tally.errors += 1;
                batch.commit(RxMeta { len: 0, src: self.local, dst: self.local, segment_size: 1, ecn: 0 });
                continue;
            };
            if flags & libc::MSG_CTRUNC != 0 {
                log::debug!("linux-batch: control data truncated; raise cmsg::RECV_SPACE");
            }
            tally.commit(batch, len, src, &info, &self.local);
        }
        tally.add_to(&self.counters);
        IoCounters::add(&self.counters.rx_syscalls, calls);
        Ok(got)
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<bool> {
        let mut calls = 0;
        let mut blocked = false;
        while !batch.is_empty() {
            let (hdrs, names, controls) = (&mut self.hdrs, &mut self.names, &mut self.controls);
            let planned = self.plan.plan(batch, |m, msg| {
                let (name_len, control_len) = msg.encode(&mut names[m], &mut controls[m]);
                // The kernel only reads the payload; the pointer is mutable
                // because `struct iovec` is shared with receive.
                let ptr = msg.payload.as_ptr().cast_mut();
                hdrs.set(m, ptr, msg.payload.len(), &mut names[m][..name_len], &mut controls[m][..control_len]);
            });
            calls += 1;
            match self.hdrs.sendmmsg(self.fd, planned) {
                Ok(sent) => self.plan.complete(batch, 0..sent, &self.counters),
                Err(e) => match self.plan.failed(0, &e, batch, &self.counters) {
                    Failure::Blocked => {
                        blocked = true;
                        break;
                    }
                    Failure::Retry | Failure::Dropped => {}
                },
            }
        }
        IoCounters::add(&self.counters.tx_syscalls, calls);
        Ok(!blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(addr: &str) -> (Box<dyn PacketIo>, Arc<IoCounters>, RawFd) {
        let counters = Arc::new(IoCounters::default());
        let io = LinuxBatchIo::bind(addr.parse().unwrap(), &SocketOptions::default(), counters.clone()).unwrap();
        let fd = io.fd;
        (Box::new(io), counters, fd)
    }

    crate::io::linux::testing::backend_tests!(open);
}
