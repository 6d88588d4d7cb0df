//! The shard: one thread, one packet backend, run-to-completion.
//!
//! Each turn of the loop: receive a batch → route every packet by its
//! destination connection ID → `quiche::Connection::recv` → run due timers →
//! apply application commands → service touched connections (streams,
//! datagrams) → drain `quiche::Connection::send` into the transmit batch →
//! hand the batch to the backend → wait for packets, a command or the next
//! timer. Buffers are allocated once; the per-packet path does not allocate.

mod adapt;
mod conn;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rand::RngCore;
use slab::Slab;

use crate::cid::{self, CID_LEN, CidGenerator, CidKey};
use crate::config::TransportConfig;
use crate::connection::{AdapterDirection, Connection};
use crate::error::{ConnectError, ConnectionError};
use crate::io::{PacketIo, RxBatch, TxBatch};
use crate::shared::{Command, ConnKey, ShardHandle};
use crate::token::TokenKeys;
use conn::ConnState;

/// Receive batches handled per loop turn before other work gets a go.
const RX_BATCHES_PER_TURN: usize = 8;
/// Stateless resets sent per second at most (RFC 9000 §10.3 asks for a limit).
const RESETS_PER_SECOND: u32 = 1000;
/// How long shutdown waits for peers to see our CONNECTION_CLOSE.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);
/// Packets due within this much of now are sent now: the shard's wait has
/// millisecond resolution (epoll), and quiche's pacer already spaces bursts
/// of `send_quantum` bytes.
const PACING_GRANULARITY: Duration = Duration::from_millis(1);

/// Counters for events outside any connection, shared with the endpoint.
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub accepted: AtomicU64,
    pub retries_sent: AtomicU64,
    pub invalid_tokens: AtomicU64,
    pub version_negotiations: AtomicU64,
    pub stateless_resets_sent: AtomicU64,
    pub undecodable: AtomicU64,
    pub unroutable: AtomicU64,
    pub paced_holds: AtomicU64,
    pub adapter_ups: AtomicU64,
    pub adapter_downs: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Settings a shard needs, fixed at start.
pub(crate) struct ShardSetup {
    pub index: u8,
    pub io: Box<dyn PacketIo>,
    pub server: Option<quiche::Config>,
    pub client: Option<quiche::Config>,
    pub transport: TransportConfig,
    pub retry: bool,
    pub tokens: TokenKeys,
    pub commands: Receiver<Command>,
    pub handle: ShardHandle,
    pub accept: Option<Sender<Connection>>,
    pub counters: Arc<ShardCounters>,
}

pub(crate) struct Shard {
    io: Box<dyn PacketIo>,
    local: SocketAddr,
    server: Option<quiche::Config>,
    client: Option<quiche::Config>,
    transport: TransportConfig,
    retry: bool,
    tokens: TokenKeys,
    commands: Receiver<Command>,
    handle: ShardHandle,
    accept: Option<Sender<Connection>>,
    counters: Arc<ShardCounters>,
    cid_gen: CidGenerator,
    rng: rand::rngs::StdRng,
    conns: Slab<ConnState>,
    routes: HashMap<CidKey, usize>,
    /// Stateless-reset tokens peers gave us, to the connection they reset.
    reset_routes: HashMap<u128, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    dirty: Vec<usize>,
    dirty_spare: Vec<usize>,
    next_serial: u64,
    rx: RxBatch,
    tx: TxBatch,
    tx_blocked: bool,
    /// The backend hands departure times to the kernel (SO_TXTIME);
    /// otherwise the shard holds early packets until their time.
    kernel_pacing: bool,
    scratch: Vec<u8>,
    token_buf: Vec<u8>,
    reset_budget: (Instant, u32),
    shutting_down: Option<Instant>,
}

impl Shard {
    pub fn new(s: ShardSetup) -> Self {
        use rand::SeedableRng;
        let caps = s.io.capabilities();
        let payload = s.transport.max_udp_payload;
        Self {
            local: s.io.local_addr(),
            rx: RxBatch::new(caps.rx_batch, caps.rx_slot_size),
            tx: TxBatch::new(caps.tx_batch, caps.max_gso_segments, payload),
            io: s.io,
            server: s.server,
            client: s.client,
            transport: s.transport,
            retry: s.retry,
            tokens: s.tokens,
            commands: s.commands,
            handle: s.handle,
            accept: s.accept,
            counters: s.counters,
            cid_gen: CidGenerator::new(s.index),
            rng: rand::rngs::StdRng::from_os_rng(),
            conns: Slab::new(),
            routes: HashMap::new(),
            reset_routes: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            next_serial: 1,
            tx_blocked: false,
            kernel_pacing: caps.kernel_pacing,
            scratch: vec![0; 65_536],
            token_buf: Vec::with_capacity(128),
            reset_budget: (Instant::now(), RESETS_PER_SECOND),
            shutting_down: None,
        }
    }

    /// Runs until shutdown is requested (or every handle to the shard is
    /// gone) and the connections have closed.
    pub fn run(mut self) {
        loop {
            let rx_more = self.receive();
            if !self.apply_commands() && self.shutting_down.is_none() {
                self.begin_shutdown();
            }
            self.fire_timers();
            self.service_dirty();
            self.transmit();
            let drained = self.conns.is_empty() && self.tx.is_empty();
            if self.shutting_down.is_some_and(|since| drained || since.elapsed() > SHUTDOWN_GRACE) {
                break;
            }
            // Connections still marked dirty (their packets did not fit the
            // socket) need another turn as soon as the socket takes more.
            let timeout = if rx_more || (!self.dirty.is_empty() && !self.tx_blocked) {
                Some(Duration::ZERO)
            } else {
                let next = self.timers.peek().map(|Reverse((t, ..))| *t);
                let next = match self.shutting_down {
                    Some(s) => Some(next.map_or(s + SHUTDOWN_GRACE, |t| t.min(s + SHUTDOWN_GRACE))),
                    None => next,
                };
                next.map(|t| t.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.io.wait(timeout, self.tx_blocked) {
                log::error!("shard: backend wait failed: {e}; stopping");
                break;
            }
        }
    }
}

impl Drop for Shard {
    /// Runs on a normal exit and on a panic alike, so no application thread
    /// is left waiting on a connection that no longer exists.
    fn drop(&mut self) {
        for (_, c) in std::mem::take(&mut self.conns) {
            c.finalize(ConnectionError::EndpointClosed);
        }
    }
}

impl Shard {
    /// Receives and routes up to a few batches. True if more may be queued.
    fn receive(&mut self) -> bool {
        // Borrow the batch out of `self` (no allocation) so packets can be
        // handed to `&mut self` methods while they live in it.
        let mut rx = std::mem::take(&mut self.rx);
        let mut more = true;
        for _ in 0..RX_BATCHES_PER_TURN {
            rx.clear();
            let n = match self.io.recv(&mut rx) {
                Ok(n) => n,
                Err(e) => {
                    log::warn!("shard: receive failed: {e}");
                    more = false;
                    break;
                }
            };
            for i in 0..n {
                let (buf, meta) = rx.get_mut(i);
                // Split GRO super-buffers into the datagrams they carry.
                for pkt in buf.chunks_mut(meta.segment_size.max(1)) {
                    self.handle_packet(pkt, meta.src, meta.dst);
                }
            }
            if n < rx.capacity() {
                more = false;
                break;
            }
        }
        self.rx = rx;
        more
    }

    fn handle_packet(&mut self, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        let (key, long_header) = match cid::dcid(pkt, CID_LEN) {
            Ok(d) => (CidKey::new(d.dcid), d.long_header),
            Err(_) => return bump(&self.counters.undecodable),
        };
        let Some(key) = key else {
            // A CID longer than any we issue: only another QUIC version's
            // long header gets here, and deserves Version Negotiation.
            return self.handle_new_peer(pkt, from, to);
        };
        if let Some(&idx) = self.routes.get(&key) {
            let c = &mut self.conns[idx];
            // A server connection's local address is the one its client
            // addressed (packet info on a wildcard socket); a client's is
            // the socket's own, fixed when it connected.
            let to = if c.is_server { to } else { self.local };
            match c.q.recv(pkt, quiche::RecvInfo { from, to }) {
                Ok(_) | Err(quiche::Error::Done) => {}
                Err(e) => log::debug!("conn {idx}: recv error {e}"),
            }
            mark_dirty(&mut self.dirty, c, idx);
            return;
        }
        if long_header {
            self.handle_new_peer(pkt, from, to);
        } else if let Some(idx) = self.stateless_reset_for(pkt) {
            // A peer's stateless reset carries a random DCID; quiche checks
            // the token and closes the connection (RFC 9000 §10.3.1).
            let c = &mut self.conns[idx];
            let to = if c.is_server { to } else { self.local };
            let _ = c.q.recv(pkt, quiche::RecvInfo { from, to });
            mark_dirty(&mut self.dirty, c, idx);
        } else {
            bump(&self.counters.unroutable);
            self.send_stateless_reset(key.as_bytes(), pkt.len(), from);
        }
    }

    /// The connection whose peer's reset token ends this datagram, if any.
    fn stateless_reset_for(&self, pkt: &[u8]) -> Option<usize> {
        // The smallest reset is 21 bytes: 5 unpredictable ones and a token.
        let tail = pkt.len().checked_sub(16).filter(|_| pkt.len() >= 21)?;
        let token = u128::from_be_bytes(pkt[tail..].try_into().expect("16 bytes"));
        self.reset_routes.get(&token).copied()
    }

    /// A long-header packet for no known connection: version negotiation,
    /// Retry, or a new server connection.
    fn handle_new_peer(&mut self, pkt: &mut [u8], from: SocketAddr, to: SocketAddr) {
        let Ok(hdr) = quiche::Header::from_slice(pkt, CID_LEN) else {
            return bump(&self.counters.undecodable);
        };
        if self.server.is_none() || self.shutting_down.is_some() {
            return bump(&self.counters.unroutable);
        }
        // RFC 9000 §14.1: a server drops client Initials smaller than 1200 bytes;
        // and only answers unknown versions for datagrams that large (§6).
        if pkt.len() < 1200 {
            return bump(&self.counters.unroutable);
        }
        if !quiche::version_is_supported(hdr.version) {
            if self.tx.is_full() && !self.send_batch() {
                return;
            }
            if let Ok(n) = quiche::negotiate_version(&hdr.scid, &hdr.dcid, self.tx.slot_mut()) {
                self.tx.commit(n, from, to);
                bump(&self.counters.version_negotiations);
            }
            return;
        }
        if hdr.ty != quiche::Type::Initial {
            return bump(&self.counters.unroutable);
        }
        let token = hdr.token.as_deref().unwrap_or_default();
        let (scid, odcid) = if self.retry {
            if token.is_empty() {
                return self.send_retry(&hdr, from, to);
            }
            match self.tokens.validate_retry(from, token) {
                Ok(cids) if cids.retry_scid == hdr.dcid.as_ref() => (cids.retry_scid, Some(cids.original_dcid)),
                Ok(_) | Err(_) => return bump(&self.counters.invalid_tokens),
            }
        } else {
            (self.cid_gen.generate().to_vec(), None)
        };
        let cfg = self.server.as_mut().expect("checked above");
        cfg.set_stateless_reset_token(Some(self.tokens.reset_token(&scid)));
        let scid_ref = quiche::ConnectionId::from_ref(&scid);
        let q = match &odcid {
            Some(odcid) => {
                let odcid = quiche::ConnectionId::from_ref(odcid);
                let retry =
                    quiche::RetryConnectionIds { original_destination_cid: &odcid, retry_source_cid: &scid_ref };
                quiche::accept_with_retry(&scid_ref, retry, to, from, cfg)
            }
            None => quiche::accept(&scid_ref, None, to, from, cfg),
        };
        let q = match q {
            Ok(q) => q,
            Err(e) => return log::debug!("accept from {from} failed: {e}"),
        };
        let idx = self.insert_conn(q, (from, to), true);
        self.add_route(idx, &scid);
        if odcid.is_none() {
            // Without Retry the client keeps using its chosen DCID until it
            // hears from us.
            self.add_route(idx, &hdr.dcid);
        }
        bump(&self.counters.accepted);
        let c = &mut self.conns[idx];
        if let Err(e) = c.q.recv(pkt, quiche::RecvInfo { from, to }) {
            log::debug!("conn {idx}: first Initial rejected: {e}");
        }
        mark_dirty(&mut self.dirty, c, idx);
    }

    fn send_retry(&mut self, hdr: &quiche::Header<'_>, from: SocketAddr, to: SocketAddr) {
        if self.tx.is_full() && !self.send_batch() {
            return;
        }
        let new_scid = self.cid_gen.generate();
        self.tokens.mint_retry(from, &hdr.dcid, &new_scid, &mut self.token_buf);
        let new_scid = quiche::ConnectionId::from_ref(&new_scid);
        match quiche::retry(&hdr.scid, &hdr.dcid, &new_scid, &self.token_buf, hdr.version, self.tx.slot_mut()) {
            Ok(n) => {
                self.tx.commit(n, from, to);
                bump(&self.counters.retries_sent);
            }
            Err(e) => log::debug!("retry to {from} failed: {e}"),
        }
    }

    /// RFC 9000 §10.3: answer a short-header packet for an unknown
    /// connection with a stateless reset, smaller than what provoked it so
    /// two endpoints can never loop.
    fn send_stateless_reset(&mut self, dcid: &[u8], received: usize, to: SocketAddr) {
        let len = received.saturating_sub(1).min(43);
        if len < 21 {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.reset_budget.0) >= Duration::from_secs(1) {
            self.reset_budget = (now, RESETS_PER_SECOND);
        }
        if self.reset_budget.1 == 0 || (self.tx.is_full() && !self.send_batch()) {
            return;
        }
        self.reset_budget.1 -= 1;
        let token = self.tokens.reset_token(dcid).to_be_bytes();
        let slot = &mut self.tx.slot_mut()[..len];
        self.rng.fill_bytes(slot);
        slot[0] = 0x40 | (slot[0] & 0x3f);
        slot[len - 16..].copy_from_slice(&token);
        self.tx.commit(len, to, self.local);
        bump(&self.counters.stateless_resets_sent);
    }

    fn insert_conn(&mut self, q: quiche::Connection, addrs: (SocketAddr, SocketAddr), is_server: bool) -> usize {
        let serial = self.next_serial;
        self.next_serial += 1;
        let entry = self.conns.vacant_entry();
        let key = ConnKey { index: entry.key(), serial };
        let t = &self.transport;
        let limit = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
        entry.insert(ConnState::new(
            key,
            q,
            self.handle.clone(),
            addrs,
            is_server,
            t.stream_buffer,
            t.datagram_queue.unwrap_or(1),
            [limit(t.max_streams_bidi), limit(t.max_streams_uni)],
            t.adaptation,
        ));
        key.index
    }

    fn add_route(&mut self, idx: usize, cid: &[u8]) {
        if let Some(k) = CidKey::new(cid) {
            self.routes.insert(k, idx);
            self.conns[idx].cids.push(k);
        }
    }

    /// Applies queued application commands. False once every handle to the
    /// shard is gone.
    fn apply_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.apply(cmd),
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        let key = match &cmd {
            Command::Connect { .. } | Command::Shutdown => None,
            Command::OpenStream { conn, .. }
            | Command::Stream { conn, .. }
            | Command::Datagram { conn, .. }
            | Command::Close { conn, .. }
            | Command::Release { conn }
            | Command::Accepted { conn, .. }
            | Command::Stats { conn, .. } => Some(*conn),
        };
        if let Some(key) = key {
            let Some(c) = self.conns.get_mut(key.index).filter(|c| c.serial == key.serial) else {
                // Gone: replies are dropped, so waiters see the close reason.
                return;
            };
            match cmd {
                Command::OpenStream { bidi, reply, .. } => c.open_stream(bidi, reply),
                Command::Stream { stream, .. } => c.on_stream_command(stream),
                Command::Datagram { data, .. } => c.send_datagram(&data),
                Command::Close { code, reason, .. } => {
                    let _ = c.q.close(true, code, &reason);
                }
                Command::Release { .. } => {
                    c.release_deadline = Some(Instant::now() + self.transport.idle_timeout);
                }
                Command::Accepted { stream, .. } => c.on_accepted(stream),
                Command::Stats { reply, .. } => {
                    let _ = reply.send(c.stats());
                }
                Command::Connect { .. } | Command::Shutdown => unreachable!(),
            }
            mark_dirty(&mut self.dirty, c, key.index);
            return;
        }
        match cmd {
            Command::Connect { peer, server_name, reply } => self.connect(peer, &server_name, reply),
            Command::Shutdown => self.begin_shutdown(),
            _ => unreachable!(),
        }
    }

    fn connect(&mut self, peer: SocketAddr, server_name: &str, reply: Sender<Result<Connection, ConnectError>>) {
        let Some(cfg) = self.client.as_mut() else {
            let _ = reply.send(Err(ConnectError::NotAClient));
            return;
        };
        if self.shutting_down.is_some() {
            let _ = reply.send(Err(ConnectError::EndpointClosed));
            return;
        }
        let Some(peer) = same_family(peer, self.local) else {
            let _ = reply.send(Err(ConnectError::AddressFamily { peer, local: self.local }));
            return;
        };
        let scid = self.cid_gen.generate();
        let q = match quiche::connect(Some(server_name), &quiche::ConnectionId::from_ref(&scid), self.local, peer, cfg)
        {
            Ok(q) => q,
            Err(e) => {
                let _ = reply.send(Err(ConnectError::Setup { peer, reason: e.to_string() }));
                return;
            }
        };
        let idx = self.insert_conn(q, (peer, self.local), false);
        self.add_route(idx, &scid);
        let deadline = Instant::now() + self.transport.handshake_timeout;
        let c = &mut self.conns[idx];
        c.connect_reply = Some(reply);
        c.handshake_deadline = Some(deadline);
        mark_dirty(&mut self.dirty, c, idx);
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down.is_some() {
            return;
        }
        self.shutting_down = Some(Instant::now());
        for (idx, c) in self.conns.iter_mut() {
            let _ = c.q.close(true, 0, b"endpoint shutting down");
            mark_dirty(&mut self.dirty, c, idx);
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, idx, serial))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(idx).filter(|c| c.serial == serial && c.timer_at == Some(at)) else {
                continue;
            };
            c.timer_at = None;
            if c.q.timeout_instant().is_some_and(|t| t <= now) {
                c.q.on_timeout();
            }
            if !c.established && c.handshake_deadline.is_some_and(|d| d <= now) {
                let after = self.transport.handshake_timeout;
                let c = self.conns.remove(idx);
                self.forget(&c);
                c.finalize(ConnectionError::TimedOut(after));
                continue;
            }
            mark_dirty(&mut self.dirty, c, idx);
        }
    }

    /// Services every connection touched this turn and collects closed ones.
    fn service_dirty(&mut self) {
        // Swap in the spare list so connections marked while servicing land
        // in `self.dirty` for the next turn; neither list reallocates.
        let mut dirty = std::mem::take(&mut self.dirty_spare);
        std::mem::swap(&mut dirty, &mut self.dirty);
        let now = Instant::now();
        for &idx in &dirty {
            let Some(c) = self.conns.get_mut(idx) else { continue };
            c.dirty = false;
            if c.service(&mut self.scratch, self.accept.as_ref())
                && let Some(t) = c.peer_reset_token
            {
                self.reset_routes.insert(t, idx);
            }
            match c.adapt(now) {
                Some(AdapterDirection::Up) => bump(&self.counters.adapter_ups),
                Some(AdapterDirection::Down) => bump(&self.counters.adapter_downs),
                None => {}
            }
            // Before flushing, so a CONNECTION_CLOSE it queues goes out now.
            c.try_release(now);
            self.issue_cids(idx);
            let mut flushed = self.flush_conn(idx);
            if flushed && self.conns[idx].established && self.conns[idx].service_writable() {
                flushed = self.flush_conn(idx);
            }
            if !flushed {
                // Socket full: come back to this connection next turn.
                let c = &mut self.conns[idx];
                mark_dirty(&mut self.dirty, c, idx);
            }
            let c = &mut self.conns[idx];
            if c.q.is_closed() {
                let c = self.conns.remove(idx);
                self.forget(&c);
                let reason = ConnectionError::from_quiche(&c.q, self.transport.idle_timeout);
                c.finalize(reason);
                continue;
            }
            if let Some(d) = c.deadline().filter(|&d| c.timer_at.is_none_or(|t| d < t)) {
                c.timer_at = Some(d);
                self.timers.push(Reverse((d, idx, c.serial)));
            }
        }
        dirty.clear();
        self.dirty_spare = dirty;
    }

    /// Keeps the peer supplied with spare connection IDs (for migration) and
    /// drops routes for the ones it retired.
    fn issue_cids(&mut self, idx: usize) {
        let c = &mut self.conns[idx];
        if !c.established || c.q.is_closed() || c.q.is_draining() {
            return;
        }
        while let Some(old) = c.q.retired_scid_next() {
            if let Some(k) = CidKey::new(&old) {
                self.routes.remove(&k);
                c.cids.retain(|x| *x != k);
            }
        }
        while c.q.scids_left() > 0 {
            let cid = self.cid_gen.generate();
            let token = self.tokens.reset_token(&cid);
            if c.q.new_scid(&quiche::ConnectionId::from_ref(&cid), token, false).is_err() {
                break;
            }
            let k = CidKey::new(&cid).expect("CID_LEN <= 20");
            self.routes.insert(k, idx);
            c.cids.push(k);
        }
    }

    /// Drains a connection's packets into the transmit batch, honouring
    /// pacing: GSO bursts end at the connection's `send_quantum`, and a
    /// packet quiche wants sent later is held (or, with kernel pacing,
    /// handed over with its departure time). Under the adapter's pacing cap
    /// a packet departs at the later of quiche's time and the cap's. False
    /// if the socket filled up first.
    fn flush_conn(&mut self, idx: usize) -> bool {
        let mut now = Instant::now();
        let kernel_pacing = self.kernel_pacing;
        let mut burst = 0;
        loop {
            if self.tx.is_full() && !self.send_batch() {
                return false;
            }
            let c = &mut self.conns[idx];
            let slot = self.tx.slot_mut();
            let (n, info) = if let Some(held) = c.paced.take_due(now + PACING_GRANULARITY, slot) {
                held
            } else if c.paced.is_holding() {
                return true;
            } else {
                match c.q.send(slot) {
                    Ok((n, mut info)) => {
                        let capped = c.pacing_cap.schedule(now, n).filter(|&at| at >= info.at);
                        if let Some(at) = capped {
                            info.at = at;
                        }
                        // The cap's times are held here even with kernel
                        // pacing, so the kernel is never handed more than a
                        // granule ahead of them; quiche's go to the kernel.
                        if (capped.is_some() || !kernel_pacing) && early(info.at, &mut now) {
                            c.paced.hold(&slot[..n], info);
                            bump(&self.counters.paced_holds);
                            return true;
                        }
                        (n, info)
                    }
                    Err(quiche::Error::Done) => return true,
                    Err(e) => {
                        log::debug!("conn {idx}: send error {e}");
                        return true;
                    }
                }
            };
            self.tx.commit_with(n, info.to, info.from, kernel_pacing.then_some(info.at), 0);
            burst += n;
            if burst >= c.q.send_quantum() {
                self.tx.seal();
                burst = 0;
            }
        }
    }

    /// Hands the transmit batch to the backend. False if the socket is full.
    fn send_batch(&mut self) -> bool {
        match self.io.send(&mut self.tx) {
            Ok(done) => {
                self.tx_blocked = !done;
                done
            }
            Err(e) => {
                log::warn!("shard: send failed: {e}; dropping {} packets", self.tx.pending_packets());
                let n = self.tx.pending().len();
                self.tx.advance(n);
                self.tx_blocked = false;
                true
            }
        }
    }

    fn transmit(&mut self) {
        if !self.tx.is_empty() {
            self.send_batch();
        }
    }

    fn forget(&mut self, c: &ConnState) {
        for k in &c.cids {
            self.routes.remove(k);
        }
        if let Some(t) = c.peer_reset_token {
            self.reset_routes.remove(&t);
        }
    }
}

/// True if `at` is more than the pacing granularity away, re-reading the
/// clock before saying so: a long flush must not mistake the present for
/// the future.
fn early(at: Instant, now: &mut Instant) -> bool {
    if at <= *now + PACING_GRANULARITY {
        return false;
    }
    *now = Instant::now();
    at > *now + PACING_GRANULARITY
}

fn mark_dirty(dirty: &mut Vec<usize>, c: &mut ConnState, idx: usize) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(idx);
    }
}

/// Expresses `peer` in the address family of a socket bound to `local`.
fn same_family(peer: SocketAddr, local: SocketAddr) -> Option<SocketAddr> {
    match (peer, local) {
        (SocketAddr::V4(p), SocketAddr::V6(_)) => Some(SocketAddr::new(p.ip().to_ipv6_mapped().into(), p.port())),
        (SocketAddr::V6(p), SocketAddr::V4(_)) => {
            p.ip().to_ipv4_mapped().map(|ip| SocketAddr::new(ip.into(), p.port()))
        }
        _ => Some(peer),
    }
}
