//! The portable backend: one non-blocking UDP socket driven by mio readiness,
//! one system call per datagram. Works unprivileged on any Unix; it is the
//! baseline every faster backend is measured against.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::UdpSocket;

use super::udp::{Readiness, bind_udp, is_per_peer_error};
use super::{
    BackendError, BackendKind, IoCapabilities, IoCounters, PacketIo, RxBatch, RxMeta, SocketOptions, TxBatch, Wake,
};

/// Receive slot size: a whole UDP datagram always fits, so nothing is
/// silently truncated.
const RX_SLOT: usize = 65_535;

/// mio-driven UDP socket backend.
pub struct PortableIo {
    socket: UdpSocket,
    ready: Readiness,
    local: SocketAddr,
    buffers: (usize, usize),
    batch: usize,
    counters: Arc<IoCounters>,
}

impl PortableIo {
    /// Binds the backend's socket to `addr`.
    pub fn bind(addr: SocketAddr, opts: &SocketOptions, counters: Arc<IoCounters>) -> Result<Self, BackendError> {
        let setup = |step| move |source| BackendError::Setup { backend: BackendKind::Portable, step, source };
        let (std_socket, buffers) = bind_udp(addr, opts).map_err(|source| BackendError::Bind { addr, source })?;
        let mut socket = UdpSocket::from_std(std_socket);
        let local = socket.local_addr().map_err(setup("reading the bound address"))?;
        let ready = Readiness::new(&mut socket).map_err(|(step, e)| setup(step)(e))?;
        Ok(Self { socket, ready, local, buffers, batch: opts.batch(), counters })
    }
}

impl PacketIo for PortableIo {
    fn kind(&self) -> BackendKind {
        BackendKind::Portable
    }

    fn capabilities(&self) -> IoCapabilities {
        IoCapabilities {
            max_gso_segments: 1,
            gro: false,
            ecn: false,
            kernel_pacing: false,
            rx_batch: self.batch,
            tx_batch: self.batch,
            rx_slot_size: RX_SLOT,
            recv_buffer: self.buffers.0,
            send_buffer: self.buffers.1,
            zero_copy: false,
        }
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
        let (mut n, mut bytes, mut calls, mut errors) = (0usize, 0u64, 0u64, 0u64);
        let result = loop {
            let Some(slot) = batch.next_slot() else { break Ok(()) };
            calls += 1;
            match self.socket.recv_from(slot) {
                Ok((len, src)) => {
                    batch.commit(RxMeta { len, src, dst: self.local, segment_size: len, ecn: 0 });
                    n += 1;
                    bytes += len as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors (port unreachable and friends) surface here on
                // some hosts; they concern one peer, not the socket.
                Err(e) if errors < 64 && is_per_peer_error(&e) => errors += 1,
                Err(e) => break Err(e),
            }
        };
        IoCounters::add(&self.counters.rx_datagrams, n as u64);
        IoCounters::add(&self.counters.rx_bytes, bytes);
        IoCounters::add(&self.counters.rx_syscalls, calls);
        IoCounters::add(&self.counters.rx_errors, errors);
        match result {
            // Report the error on the next call; the datagrams got this far.
            Err(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    fn send(&mut self, batch: &mut TxBatch) -> io::Result<bool> {
        let (mut done, mut datagrams, mut bytes, mut calls, mut errors) = (0usize, 0u64, 0u64, 0u64, 0u64);
        let mut blocked = false;
        'transmits: for t in batch.pending() {
            let payload = batch.payload(t);
            for segment in payload.chunks(t.segment_size) {
                calls += 1;
                match self.socket.send_to(segment, t.dst) {
                    Ok(_) => {
                        datagrams += 1;
                        bytes += segment.len() as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        blocked = true;
                        break 'transmits;
                    }
                    // One undeliverable datagram: QUIC's loss recovery resends
                    // what mattered. Count it and move on.
                    Err(e) => {
                        log::debug!("portable: send to {} failed: {e}", t.dst);
                        errors += 1;
                    }
                }
            }
            done += 1;
        }
        batch.advance(done);
        IoCounters::add(&self.counters.tx_datagrams, datagrams);
        IoCounters::add(&self.counters.tx_bytes, bytes);
        IoCounters::add(&self.counters.tx_syscalls, calls);
        IoCounters::add(&self.counters.tx_errors, errors);
        Ok(!blocked)
    }
}
