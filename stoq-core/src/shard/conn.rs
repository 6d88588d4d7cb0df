//! One connection as the shard sees it: the quiche state machine plus the
//! shard's half of every channel and stream buffer.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Buf, BufMut};
use crossbeam_channel::{Sender, TrySendError, bounded, unbounded};

use super::adapt::{ConnAdapter, PacingCap};
use crate::cid::CidKey;
use crate::config::Adaptation;
use crate::connection::{AdapterDirection, AdapterKnob, Connection, ConnectionStats};
use crate::error::{ConnectError, ConnectionError, ReadError, WriteError};
use crate::shared::{ConnKey, ConnShared, ShardHandle, StreamShared, StreamState, stream_id};

/// Bytes buffered for an incoming stream before the application accepts it.
const UNACCEPTED_BUFFER: usize = 64 * 1024;

pub(super) type OpenReply = Sender<Result<Arc<StreamShared>, ConnectionError>>;

pub(super) struct ConnState {
    pub serial: u64,
    pub q: quiche::Connection,
    pub shared: Arc<ConnShared>,
    pub is_server: bool,
    incoming_bi: Sender<Arc<StreamShared>>,
    incoming_uni: Sender<Arc<StreamShared>>,
    datagrams: Sender<Vec<u8>>,
    streams: HashMap<u64, Arc<StreamShared>>,
    /// Next peer-initiated stream ID not yet handed to the application, for
    /// [bidi, uni].
    next_peer: [u64; 2],
    next_local: [u64; 2],
    pending_opens: VecDeque<(bool, OpenReply)>,
    pub connect_reply: Option<Sender<Result<Connection, ConnectError>>>,
    pub handshake_deadline: Option<Instant>,
    pub established: bool,
    /// Every connection ID routed to this connection, for cleanup.
    pub cids: Vec<CidKey>,
    /// The stateless-reset token from the peer's transport parameters.
    pub peer_reset_token: Option<u128>,
    /// Earliest instant this connection has in the shard's timer heap.
    pub timer_at: Option<Instant>,
    /// Set once every application handle is gone: close by then at the latest.
    pub release_deadline: Option<Instant>,
    /// Streams whose FIN quiche has, until quiche frees them (all delivered).
    lingering: Vec<u64>,
    /// Highest peer stream ID held back in quiche because the application
    /// already has `incoming_limit` streams waiting to be accepted, per
    /// [bidi, uni].
    held_back: [Option<u64>; 2],
    incoming_limit: [usize; 2],
    pub dirty: bool,
    /// A packet quiche built ahead of its pacing time.
    pub paced: Paced,
    datagrams_dropped: u64,
    /// The per-stream window: every stream's buffer cap, now and for
    /// streams still to come.
    stream_buffer: usize,
    /// Bounds for run-time adaptation; `None` keeps the settings fixed.
    adaptation: Option<Adaptation>,
    /// The run-time adapter, from establishment on.
    adapter: Option<ConnAdapter>,
    /// The adapter's pacing cap (uncapped without adaptation).
    pub pacing_cap: PacingCap,
    /// Stalls since the last reading that only a larger window would have
    /// avoided (see `adapt`).
    window_stalls: u64,
}

impl ConnState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: ConnKey,
        q: quiche::Connection,
        shard: ShardHandle,
        (peer, local): (SocketAddr, SocketAddr),
        is_server: bool,
        stream_buffer: usize,
        datagram_queue: usize,
        incoming_limit: [usize; 2],
        adaptation: Option<Adaptation>,
    ) -> Self {
        let (bi_tx, bi_rx) = unbounded();
        let (uni_tx, uni_rx) = unbounded();
        let (dg_tx, dg_rx) = bounded(datagram_queue.max(1));
        let shared = Arc::new(ConnShared::new(key, shard, peer, local, bi_rx, uni_rx, dg_rx));
        Self {
            serial: key.serial,
            q,
            shared,
            is_server,
            incoming_bi: bi_tx,
            incoming_uni: uni_tx,
            datagrams: dg_tx,
            streams: HashMap::new(),
            next_peer: [stream_id::first(!is_server, false), stream_id::first(!is_server, true)],
            next_local: [stream_id::first(is_server, false), stream_id::first(is_server, true)],
            pending_opens: VecDeque::new(),
            connect_reply: None,
            handshake_deadline: None,
            established: false,
            cids: Vec::new(),
            peer_reset_token: None,
            timer_at: None,
            release_deadline: None,
            lingering: Vec::new(),
            held_back: [None, None],
            incoming_limit,
            dirty: false,
            paced: Paced::default(),
            datagrams_dropped: 0,
            stream_buffer,
            adaptation,
            adapter: None,
            pacing_cap: PacingCap::default(),
            window_stalls: 0,
        }
    }

    /// When the shard must next look at this connection.
    pub fn deadline(&self) -> Option<Instant> {
        [
            self.q.timeout_instant(),
            self.handshake_deadline.filter(|_| !self.established),
            self.release_deadline,
            self.paced.due(),
            self.adapter.as_ref().map(|a| a.next),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Application-level work after packets, timers or commands touched the
    /// connection: hand over the handshake result, new streams, readable
    /// data, send capacity and datagrams. Returns true on the turn the
    /// handshake completes.
    pub fn service(&mut self, scratch: &mut [u8], accept: Option<&Sender<Connection>>) -> bool {
        let just_established = !self.established && self.q.is_established();
        if just_established {
            self.established = true;
            self.handshake_deadline = None;
            // Servers' transport parameters carry one; clients' never do.
            self.peer_reset_token = self.q.peer_transport_params().and_then(|p| p.stateless_reset_token);
            self.update_datagram_max();
            if let Some(bounds) = self.adaptation {
                let a = ConnAdapter::new(bounds, self.stream_buffer, Instant::now(), &self.q);
                // The adapter's starting window (the configured one, within
                // the bounds) for every stream: none exists before this turn.
                self.stream_buffer = a.adapter.window();
                self.adapter = Some(a);
                self.window_stalls = 0;
            }
            let conn = Connection::new(self.shared.clone());
            if let Some(reply) = self.connect_reply.take() {
                let _ = reply.send(Ok(conn));
            } else if let Some(accept) = accept {
                // If nobody accepts any more, dropping the handle closes it.
                let _ = accept.send(conn);
            }
        }
        if !self.established {
            return false;
        }
        while let Some(id) = self.q.stream_readable_next() {
            self.on_readable(id, scratch);
        }
        self.service_writable();
        while let Ok(n) = self.q.dgram_recv(scratch) {
            if let Err(TrySendError::Full(_)) = self.datagrams.try_send(scratch[..n].to_vec()) {
                self.datagrams_dropped += 1;
            }
        }
        self.update_datagram_max();
        self.retry_opens();
        just_established
    }

    /// Feeds streams that quiche reports writable (or stopped by the peer);
    /// returns whether any stream was reported. The shard calls it again
    /// after flushing, as sending can free capacity for more stream data.
    pub(super) fn service_writable(&mut self) -> bool {
        let mut any = false;
        while let Some(id) = self.q.stream_writable_next() {
            any = true;
            if let Some(s) = self.streams.get(&id).cloned() {
                self.flush_stream(&s, &mut s.lock());
                self.maybe_retire(&s);
            }
        }
        any
    }

    fn update_datagram_max(&self) {
        let max = self.q.dgram_max_writable_len().unwrap_or(0);
        self.shared.datagram_max.store(max, Ordering::Relaxed);
    }

    fn on_readable(&mut self, id: u64, scratch: &mut [u8]) {
        let k = usize::from(stream_id::is_uni(id));
        let new_peer_stream = !stream_id::is_local(id, self.is_server) && id >= self.next_peer[k];
        if new_peer_stream {
            self.held_back[k] = self.held_back[k].max(Some(id));
            self.take_in_peer_streams(k);
        }
        match self.streams.get(&id).cloned() {
            Some(s) => self.read_and_retire(&s),
            // Held back: its data waits in quiche, under flow control.
            None if new_peer_stream => {}
            // A stream we are done with: discard what still arrives.
            None => while let Ok((_, false)) = self.q.stream_recv(id, scratch) {},
        }
    }

    fn read_and_retire(&mut self, s: &Arc<StreamShared>) {
        let mut st = s.lock();
        self.read_stream(s, &mut st);
        drop(st);
        self.maybe_retire(s);
    }

    /// Hands held-back peer streams of kind `k` to the application in order
    /// (opening stream N opens every lower one, RFC 9000 §3.2), while fewer
    /// than `incoming_limit` wait to be accepted. The rest stay in quiche,
    /// unread, so they keep counting against the peer's stream limit and
    /// flow control: an application that does not accept cannot be made to
    /// buffer without bound.
    fn take_in_peer_streams(&mut self, k: usize) {
        let Some(last) = self.held_back[k] else { return };
        let tx = if k == 1 { self.incoming_uni.clone() } else { self.incoming_bi.clone() };
        while self.next_peer[k] <= last && tx.len() < self.incoming_limit[k] {
            let sid = self.next_peer[k];
            self.next_peer[k] += 4;
            let s = Arc::new(StreamShared::new(sid, self.stream_buffer, false));
            self.streams.insert(sid, s.clone());
            let _ = tx.send(s.clone());
            // quiche reported it readable once already; read what is there.
            self.read_and_retire(&s);
        }
        if self.next_peer[k] > last {
            self.held_back[k] = None;
        }
    }

    /// The application accepted `id`: read it in full from now on, and take
    /// in streams held back while it was not accepting.
    pub(super) fn on_accepted(&mut self, id: u64) {
        if let Some(s) = self.streams.get(&id).cloned() {
            self.read_and_retire(&s);
        }
        self.take_in_peer_streams(0);
        self.take_in_peer_streams(1);
    }

    fn read_stream(&mut self, s: &StreamShared, st: &mut StreamState) {
        if st.recv_abandoned {
            return;
        }
        let before = st.recv.len();
        let cap = if st.accepted { s.cap() } else { s.cap().min(UNACCEPTED_BUFFER) };
        if std::mem::take(&mut st.recv_full) && st.recv.is_empty() {
            // The reader emptied the buffer while the window kept the shard
            // from reading ahead.
            self.window_stalls += 1;
        }
        loop {
            let room = cap.saturating_sub(st.recv.len());
            if room == 0 {
                st.recv_blocked = true;
                st.recv_full = st.accepted;
                break;
            }
            st.recv.reserve(room.min(64 * 1024));
            match self.q.stream_recv_buf(s.id, (&mut st.recv).limit(room)) {
                Ok((_, true)) => {
                    st.recv_fin = true;
                    break;
                }
                Ok(_) => {}
                Err(quiche::Error::Done) => break,
                Err(quiche::Error::StreamReset(code)) => {
                    st.recv_error = Some(ReadError::Reset(code));
                    break;
                }
                Err(e) => {
                    log::debug!("stream {} recv: {e}", s.id);
                    break;
                }
            }
        }
        if st.recv.len() != before || st.recv_fin || st.recv_error.is_some() {
            s.cond.notify_all();
        }
    }

    /// Moves application bytes into quiche as far as flow control allows.
    fn flush_stream(&mut self, s: &StreamShared, st: &mut StreamState) {
        if st.send_error.is_some() || st.fin_sent {
            return;
        }
        let before = st.send.len();
        while !st.send.is_empty() || (st.fin_requested && !st.fin_sent) {
            let fin = st.fin_requested;
            match self.q.stream_send(s.id, &st.send, fin) {
                Ok(n) => {
                    let all = n == st.send.len();
                    st.send.advance(n);
                    if all {
                        st.fin_sent = fin;
                        if fin {
                            self.linger(s.id);
                        }
                        break;
                    }
                }
                Err(quiche::Error::Done) => {}
                Err(quiche::Error::StreamStopped(code)) => {
                    st.send_error = Some(WriteError::Stopped(code));
                    st.send.clear();
                    break;
                }
                Err(e) => {
                    log::debug!("stream {} send: {e}", s.id);
                    st.send_error = Some(WriteError::Closed);
                    st.send.clear();
                    break;
                }
            }
            // Partial write: ask quiche to report the stream as soon as it
            // can take any more. (quiche buffers only what the congestion
            // window allows, so a higher watermark could exceed a collapsed
            // window and never fire.)
            match self.q.stream_writable(s.id, 1) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(quiche::Error::StreamStopped(code)) => {
                    st.send_error = Some(WriteError::Stopped(code));
                    st.send.clear();
                    break;
                }
                // quiche already collected the stream: the peer stopped it
                // and our reset was acknowledged before we looked (quiche
                // hides stopped streams while connection send capacity is 0).
                Err(_) => {
                    st.send_error = Some(WriteError::Closed);
                    st.send.clear();
                    break;
                }
            }
        }
        if before > 0 && st.send.is_empty() && std::mem::take(&mut st.send_waiting) {
            // quiche took the whole queue while the writer waited for room.
            self.window_stalls += 1;
        }
        if st.send.len() != before || st.send_error.is_some() {
            s.cond.notify_all();
        }
    }

    /// Handles a `Command::Stream`: the application wrote, finished, read or
    /// dropped something.
    pub fn on_stream_command(&mut self, id: u64) {
        let Some(s) = self.streams.get(&id).cloned() else { return };
        let mut st = s.lock();
        st.notified = false;
        self.flush_stream(&s, &mut st);
        let has_recv = !(stream_id::is_uni(id) && stream_id::is_local(id, self.is_server));
        if !has_recv || st.recv_fin || st.recv_error.is_some() {
            // Nothing to receive.
        } else if st.recv_abandoned {
            let _ = self.q.stream_shutdown(id, quiche::Shutdown::Read, 0);
            st.recv_error = Some(ReadError::Reset(0));
        } else if st.recv.len() < s.cap() {
            // Decide by the room left, not by `recv_blocked`: the reader's
            // wake-up may have been folded into a command the writer queued.
            st.recv_blocked = false;
            self.read_stream(&s, &mut st);
        }
        drop(st);
        self.maybe_retire(&s);
    }

    /// Forgets a stream once neither direction needs the shard any more.
    fn maybe_retire(&mut self, s: &StreamShared) {
        let st = s.lock();
        let local = stream_id::is_local(s.id, self.is_server);
        let uni = stream_id::is_uni(s.id);
        let send_done = (uni && !local) || st.fin_sent || st.send_error.is_some();
        let recv_done = (uni && local) || st.recv_fin || st.recv_error.is_some();
        if send_done && recv_done {
            drop(st);
            self.streams.remove(&s.id);
        }
    }

    /// Remembers a finished stream until quiche frees it, which it does
    /// once everything on it was delivered (and its other half is done).
    fn linger(&mut self, id: u64) {
        if self.lingering.len() >= 256 {
            self.prune_lingering();
        }
        self.lingering.push(id);
    }

    fn prune_lingering(&mut self) {
        let q = &mut self.q;
        self.lingering.retain(|&id| !matches!(q.stream_capacity(id), Err(quiche::Error::InvalidStreamState(_))));
    }

    /// After every handle was dropped: close once all finished streams are
    /// delivered and nothing is left to send, or at the deadline.
    pub(super) fn try_release(&mut self, now: Instant) {
        let Some(deadline) = self.release_deadline else { return };
        self.prune_lingering();
        let sending = self.streams.values().any(|s| {
            let st = s.lock();
            st.send_error.is_none() && !st.fin_sent && (st.fin_requested || !st.send.is_empty())
        });
        if (!sending && self.lingering.is_empty()) || now >= deadline {
            let _ = self.q.close(true, 0, b"");
            self.release_deadline = None;
        }
    }

    pub fn open_stream(&mut self, bidi: bool, reply: OpenReply) {
        if !self.pending_opens.is_empty() || !self.try_open(bidi, &reply) {
            self.pending_opens.push_back((bidi, reply));
        }
    }

    fn try_open(&mut self, bidi: bool, reply: &OpenReply) -> bool {
        let left = if bidi { self.q.peer_streams_left_bidi() } else { self.q.peer_streams_left_uni() };
        if left == 0 {
            return false;
        }
        let k = usize::from(!bidi);
        let id = self.next_local[k];
        match self.q.stream_priority(id, 127, true) {
            Ok(()) => {
                self.next_local[k] += 4;
                let s = Arc::new(StreamShared::new(id, self.stream_buffer, true));
                self.streams.insert(id, s.clone());
                let _ = reply.send(Ok(s));
                true
            }
            Err(quiche::Error::StreamLimit) => false,
            Err(e) => {
                let _ = reply.send(Err(ConnectionError::Transport { code: 0, reason: e.to_string(), by_peer: false }));
                true
            }
        }
    }

    fn retry_opens(&mut self) {
        while let Some((bidi, reply)) = self.pending_opens.pop_front() {
            if !self.try_open(bidi, &reply) {
                self.pending_opens.push_front((bidi, reply));
                break;
            }
        }
    }

    pub fn send_datagram(&mut self, data: &[u8]) {
        match self.q.dgram_send(data) {
            Ok(()) => {}
            Err(e) => {
                log::debug!("datagram send: {e}");
                self.datagrams_dropped += 1;
            }
        }
    }

    /// Takes the adapter's reading when one is due and applies the change
    /// it makes, if any; returns the change's direction.
    pub(super) fn adapt(&mut self, now: Instant) -> Option<AdapterDirection> {
        let a = self.adapter.as_mut().filter(|a| a.next <= now)?;
        let sample = a.sample(now, &self.q, std::mem::take(&mut self.window_stalls));
        let d = a.adapter.on_sample(now, &sample)?;
        let (knob, direction) = (d.knob, d.direction);
        log::info!("conn {} ({}): adapter {knob:?} {direction:?}: {}", self.serial, self.shared.peer, d.reason);
        let (window, cap) = (a.adapter.window(), a.adapter.pacing_cap());
        match knob {
            AdapterKnob::Window => self.set_window(window),
            AdapterKnob::Pacing => self.pacing_cap.set_rate(cap),
        }
        Some(direction)
    }

    /// Sets every stream's buffer cap, now and for streams to come. A larger
    /// window wakes blocked writers and resumes reading streams the shard
    /// had stopped at the old one.
    fn set_window(&mut self, window: usize) {
        let grew = window > self.stream_buffer;
        self.stream_buffer = window;
        let streams: Vec<_> = self.streams.values().cloned().collect();
        for s in streams {
            s.set_cap(window);
            let mut st = s.lock();
            if grew && std::mem::take(&mut st.recv_blocked) {
                self.read_stream(&s, &mut st);
            }
            drop(st);
            self.maybe_retire(&s);
        }
    }

    pub fn stats(&self) -> ConnectionStats {
        let s = self.q.stats();
        let p = self.q.path_stats().next();
        ConnectionStats {
            rtt: p.as_ref().map(|p| p.rtt).unwrap_or_default(),
            min_rtt: p.as_ref().and_then(|p| p.min_rtt),
            cwnd: p.as_ref().map(|p| p.cwnd).unwrap_or(0),
            delivery_rate: p.as_ref().map(|p| p.delivery_rate).unwrap_or(0),
            sent_packets: s.sent,
            recv_packets: s.recv,
            lost_packets: s.lost,
            sent_bytes: s.sent_bytes,
            recv_bytes: s.recv_bytes,
            lost_bytes: s.lost_bytes,
            stream_retrans_bytes: s.stream_retrans_bytes,
            pmtu: p.as_ref().map(|p| p.pmtu).unwrap_or(0),
            datagrams_dropped: self.datagrams_dropped,
            adapter: self.adapter.as_ref().map(|a| a.adapter.stats()),
        }
    }

    /// The connection is gone: fail everything still waiting on it.
    pub fn finalize(self, reason: ConnectionError) {
        if let Some(reply) = self.connect_reply {
            let peer = self.shared.peer;
            let err = match &reason {
                ConnectionError::TimedOut(after) => ConnectError::TimedOut { peer, after: *after },
                ConnectionError::EndpointClosed => ConnectError::EndpointClosed,
                e => ConnectError::Handshake { peer, error: e.clone() },
            };
            let _ = reply.send(Err(err));
        }
        for (_, reply) in self.pending_opens {
            let _ = reply.send(Err(reason.clone()));
        }
        for s in self.streams.values() {
            let mut st = s.lock();
            if !st.fin_sent && st.send_error.is_none() {
                st.send_error = Some(WriteError::ConnectionLost(reason.clone()));
            }
            if !st.recv_fin && st.recv_error.is_none() {
                st.recv_error = Some(ReadError::ConnectionLost(reason.clone()));
            }
            s.cond.notify_all();
        }
        // Last, so whoever sees the connection closed also sees its streams
        // failed.
        self.shared.set_closed(reason);
        // Dropping the senders here ends accept_bi/accept_uni/recv_datagram.
    }
}

/// At most one packet per connection held back until its pacing time
/// (`quiche::SendInfo::at`, or the adapter's pacing cap's when later); the
/// connection sends nothing else before it.
#[derive(Default)]
pub(super) struct Paced {
    buf: Vec<u8>,
    info: Option<quiche::SendInfo>,
}

impl Paced {
    pub fn hold(&mut self, pkt: &[u8], info: quiche::SendInfo) {
        debug_assert!(self.info.is_none());
        self.buf.clear();
        self.buf.extend_from_slice(pkt);
        self.info = Some(info);
    }

    pub fn is_holding(&self) -> bool {
        self.info.is_some()
    }

    /// When the held packet is due.
    pub fn due(&self) -> Option<Instant> {
        self.info.map(|i| i.at)
    }

    /// Copies the held packet into `slot` if it is due by `by`.
    pub fn take_due(&mut self, by: Instant, slot: &mut [u8]) -> Option<(usize, quiche::SendInfo)> {
        let info = self.info.filter(|i| i.at <= by)?;
        self.info = None;
        slot[..self.buf.len()].copy_from_slice(&self.buf);
        Some((self.buf.len(), info))
    }
}

#[cfg(test)]
mod paced_tests {
    use super::*;

    #[test]
    fn a_held_packet_leaves_only_when_due_and_intact() {
        let at = Instant::now() + std::time::Duration::from_millis(5);
        let addr = "127.0.0.1:1".parse().unwrap();
        let info = quiche::SendInfo { from: addr, to: addr, at };
        let mut p = Paced::default();
        p.hold(b"packet", info);
        assert!(p.is_holding() && p.due() == Some(at));
        let mut slot = [0u8; 16];
        assert!(p.take_due(at - std::time::Duration::from_millis(1), &mut slot).is_none(), "early");
        assert!(p.is_holding());
        let (n, got) = p.take_due(at, &mut slot).expect("due");
        assert_eq!((&slot[..n], got.at), (&b"packet"[..], at));
        assert!(!p.is_holding() && p.due().is_none());
    }
}

#[cfg(test)]
mod fin_tests {
    //! The shard's side of a stream end, against a real quiche peer joined
    //! in memory, with packet delivery ordered by hand.

    use super::*;
    use crate::config::{ClientConfig, ServerConfig};
    use crate::io::Wake;
    use crate::tls::DevPki;

    struct NoWake;
    impl Wake for NoWake {
        fn wake(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Moves every packet `from` has to send into `to`.
    fn pump(from: &mut quiche::Connection, to: &mut quiche::Connection) -> usize {
        deliver(drain(from), to)
    }

    fn deliver(pkts: Vec<(Vec<u8>, quiche::SendInfo)>, to: &mut quiche::Connection) -> usize {
        let n = pkts.len();
        for (mut pkt, info) in pkts {
            let _ = to.recv(&mut pkt, quiche::RecvInfo { from: info.from, to: info.to });
        }
        n
    }

    /// Every packet `from` has to send now, not delivered.
    fn drain(from: &mut quiche::Connection) -> Vec<(Vec<u8>, quiche::SendInfo)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        while let Ok((len, info)) = from.send(&mut buf) {
            out.push((buf[..len].to_vec(), info));
        }
        out
    }

    /// A client quiche connection and a server `ConnState`, handshake done.
    fn connected() -> (quiche::Connection, ConnState, DevPki) {
        let pki = DevPki::generate(&["localhost"]).expect("dev PKI");
        let server_cfg = ServerConfig::new(pki.server_tls());
        let client_cfg = ClientConfig::new(pki.client_tls());
        let mut scfg = server_cfg.endpoint.quiche_config(Some(&server_cfg.tls), None).unwrap();
        let mut ccfg = client_cfg.endpoint.quiche_config(None, Some(&client_cfg.tls)).unwrap();
        let (caddr, saddr): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        let (ccid, scid) = ([1u8; 16], [2u8; 16]);
        let mut client =
            quiche::connect(Some("localhost"), &quiche::ConnectionId::from_ref(&ccid), caddr, saddr, &mut ccfg)
                .unwrap();
        let mut server = quiche::accept(&quiche::ConnectionId::from_ref(&scid), None, saddr, caddr, &mut scfg).unwrap();
        while !(client.is_established() && server.is_established()) {
            let moved = pump(&mut client, &mut server) + pump(&mut server, &mut client);
            assert!(moved > 0, "handshake stalled");
        }
        let (commands, _) = unbounded();
        let shard = ShardHandle { commands, waker: Arc::new(NoWake) };
        let key = ConnKey { index: 0, serial: 1 };
        let server = ConnState::new(key, server, shard, (caddr, saddr), true, 1 << 20, 1, [16, 16], None);
        (client, server, pki)
    }

    /// Reads what the client's stream holds: (bytes, fin seen).
    fn client_read(client: &mut quiche::Connection, id: u64) -> (Vec<u8>, bool) {
        let (mut out, mut fin, mut buf) = (Vec::new(), false, [0u8; 4096]);
        while let Ok((n, f)) = client.stream_recv(id, &mut buf) {
            out.extend_from_slice(&buf[..n]);
            fin |= f;
        }
        (out, fin)
    }

    /// An echo stream whose FIN is requested after its data was flushed, and
    /// whose data the peer acknowledges before the shard next sends: the
    /// zero-length FIN must still reach the peer. (quiche 0.30 counted the
    /// stream complete once its bytes were acknowledged, and freed it with
    /// the FIN still queued: the peer waited for the end until the idle
    /// timeout.)
    #[test]
    fn a_fin_requested_after_the_data_survives_an_ack_that_arrives_first() {
        let (mut client, mut server, _pki) = connected();
        let mut scratch = vec![0u8; 65_536];
        client.stream_send(0, b"ping", true).unwrap();
        pump(&mut client, &mut server.q);
        server.service(&mut scratch, None);
        let s = server.shared.incoming_bi.try_recv().expect("stream handed over");
        {
            let mut st = s.lock();
            assert!(st.recv_fin && st.recv[..] == b"ping"[..]);
            st.accepted = true;
        }
        server.on_accepted(0);

        // The application writes its reply; the shard flushes it.
        s.lock().send.extend_from_slice(b"pong");
        server.on_stream_command(0);
        pump(&mut server.q, &mut client);
        assert_eq!(client_read(&mut client, 0), (b"pong".to_vec(), false));
        let acks = drain(&mut client);
        assert!(!acks.is_empty(), "the client acknowledges the reply");

        // Then it finishes; the shard hands quiche a zero-length FIN but
        // receives the acknowledgement before its next send.
        s.lock().fin_requested = true;
        server.on_stream_command(0);
        assert!(s.lock().fin_sent);
        deliver(acks, &mut server.q);
        server.service(&mut scratch, None);
        pump(&mut server.q, &mut client);
        assert_eq!(client_read(&mut client, 0), (Vec::new(), true), "the client sees the end of the stream");
    }
}
