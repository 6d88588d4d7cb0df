//! Application-facing connection and stream handles. All are `Send + Sync`
//! and block the calling thread; none touches quiche directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use crossbeam_channel::{RecvTimeoutError, bounded};

use crate::error::{ConnectionError, DatagramError, ReadError, WriteError};
use crate::shared::{Command, ConnShared, StreamShared};

/// An established QUIC connection.
///
/// Cheap to clone; all clones refer to the same connection. When the last
/// clone and the last of its streams are dropped, the connection closes
/// (code 0) as soon as the peer has acknowledged everything finished on it,
/// or after the idle timeout at the latest; [`close`](Self::close) closes
/// at once. The [`Endpoint`](crate::Endpoint) that made it must outlive it:
/// dropping the endpoint closes all its connections.
#[derive(Clone)]
pub struct Connection(Arc<ConnHandle>);

struct ConnHandle {
    shared: Arc<ConnShared>,
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        if self.shared.close_reason().is_none() {
            self.shared.shard.send(Command::Release { conn: self.shared.key });
        }
    }
}

/// A snapshot of a connection's transport statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ConnectionStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Lowest round-trip time seen.
    pub min_rtt: Option<Duration>,
    /// Congestion window in bytes.
    pub cwnd: usize,
    /// Most recent delivery-rate estimate, bytes per second.
    pub delivery_rate: u64,
    /// QUIC packets sent.
    pub sent_packets: usize,
    /// QUIC packets received.
    pub recv_packets: usize,
    /// Packets declared lost.
    pub lost_packets: usize,
    /// Bytes sent, including retransmissions and headers.
    pub sent_bytes: u64,
    /// Bytes received.
    pub recv_bytes: u64,
    /// Bytes declared lost.
    pub lost_bytes: u64,
    /// Stream bytes sent again after loss.
    pub stream_retrans_bytes: u64,
    /// Path MTU in use (UDP payload bytes).
    pub pmtu: usize,
    /// Received datagrams dropped because the application did not keep up,
    /// plus outgoing datagrams quiche's queue refused.
    pub datagrams_dropped: u64,
    /// The run-time adapter's state; `None` when adaptation is off.
    pub adapter: Option<AdapterStats>,
}

/// What a connection's run-time adapter has set and done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AdapterStats {
    /// Current per-stream window (receive read-ahead and send queue), bytes.
    pub window: usize,
    /// Current STOQ pacing cap, bit/s; `None` when uncapped.
    pub pacing_cap: Option<u64>,
    /// Changes that raised a setting.
    pub ups: u64,
    /// Changes that lowered a setting.
    pub downs: u64,
    /// The most recent change.
    pub last: Option<AdapterDecision>,
}

/// One change the adapter made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AdapterDecision {
    /// When, measured from the connection's establishment.
    pub at: Duration,
    /// The setting changed.
    pub knob: AdapterKnob,
    /// Which way.
    pub direction: AdapterDirection,
    /// Why, with the readings' figures and the old and new values.
    pub reason: String,
}

/// A setting the adapter moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum AdapterKnob {
    /// The per-stream window.
    Window,
    /// The pacing cap.
    Pacing,
}

/// The way the adapter moved a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum AdapterDirection {
    /// Larger window, or a higher (or no) pacing cap.
    Up,
    /// Smaller window, or a lower pacing cap.
    Down,
}

impl Connection {
    pub(crate) fn new(shared: Arc<ConnShared>) -> Self {
        Self(Arc::new(ConnHandle { shared }))
    }

    fn shared(&self) -> &ConnShared {
        &self.0.shared
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared().peer
    }

    /// The local address the connection uses.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared().local
    }

    /// Opens a bidirectional stream, waiting while the peer's stream limit is
    /// reached.
    pub fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let s = self.open(true)?;
        Ok((SendStream::new(self.clone(), s.clone()), RecvStream::new(self.clone(), s)))
    }

    /// Opens a unidirectional stream, waiting while the peer's stream limit
    /// is reached.
    pub fn open_uni(&self) -> Result<SendStream, ConnectionError> {
        Ok(SendStream::new(self.clone(), self.open(false)?))
    }

    fn open(&self, bidi: bool) -> Result<Arc<StreamShared>, ConnectionError> {
        let (reply, rx) = bounded(1);
        if !self.shared().shard.send(Command::OpenStream { conn: self.shared().key, bidi, reply }) {
            return Err(self.shared().lost());
        }
        rx.recv().unwrap_or_else(|_| Err(self.shared().lost()))
    }

    /// Waits for the peer to open a bidirectional stream.
    pub fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let s = self.accepted(self.shared().incoming_bi.recv())?;
        Ok((SendStream::new(self.clone(), s.clone()), RecvStream::new(self.clone(), s)))
    }

    /// Waits for the peer to open a unidirectional stream.
    pub fn accept_uni(&self) -> Result<RecvStream, ConnectionError> {
        Ok(RecvStream::new(self.clone(), self.accepted(self.shared().incoming_uni.recv())?))
    }

    /// Marks an incoming stream as the application's and tells the shard,
    /// which then reads it in full and takes in streams it held back.
    fn accepted<E>(&self, s: Result<Arc<StreamShared>, E>) -> Result<Arc<StreamShared>, ConnectionError> {
        let s = s.map_err(|_| self.shared().lost())?;
        s.lock().accepted = true;
        self.shared().shard.send(Command::Accepted { conn: self.shared().key, stream: s.id });
        Ok(s)
    }

    /// Largest datagram the peer accepts now, or `None` when datagrams are
    /// not enabled on both sides.
    pub fn max_datagram_size(&self) -> Option<usize> {
        Some(self.shared().datagram_max()).filter(|&n| n > 0)
    }

    /// Queues an unreliable datagram (RFC 9221). It may be lost; it is never
    /// retransmitted.
    pub fn send_datagram(&self, data: &[u8]) -> Result<(), DatagramError> {
        if let Some(e) = self.shared().close_reason() {
            return Err(e.into());
        }
        let max = self.max_datagram_size().ok_or(DatagramError::Unsupported)?;
        if data.len() > max {
            return Err(DatagramError::TooLarge { len: data.len(), max });
        }
        let cmd = Command::Datagram { conn: self.shared().key, data: data.to_vec() };
        if self.shared().shard.send(cmd) { Ok(()) } else { Err(self.shared().lost().into()) }
    }

    /// Waits for the next datagram from the peer.
    pub fn recv_datagram(&self) -> Result<Vec<u8>, DatagramError> {
        self.shared().datagrams.recv().map_err(|_| self.shared().lost().into())
    }

    /// Like [`recv_datagram`](Self::recv_datagram), giving up after
    /// `timeout` with `Ok(None)`.
    pub fn recv_datagram_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>, DatagramError> {
        match self.shared().datagrams.recv_timeout(timeout) {
            Ok(d) => Ok(Some(d)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.shared().lost().into()),
        }
    }

    /// Closes the connection with an application error code and reason.
    /// Streams and pending operations fail with
    /// [`ConnectionError::LocallyClosed`].
    pub fn close(&self, code: u64, reason: &[u8]) {
        let cmd = Command::Close { conn: self.shared().key, code, reason: reason.to_vec() };
        self.shared().shard.send(cmd);
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.shared().close_reason()
    }

    /// Blocks until the connection ends and returns why.
    pub fn closed(&self) -> ConnectionError {
        self.shared().wait_closed(None).unwrap_or(ConnectionError::EndpointClosed)
    }

    /// Like [`closed`](Self::closed), giving up after `timeout`.
    pub fn closed_timeout(&self, timeout: Duration) -> Option<ConnectionError> {
        self.shared().wait_closed(Some(timeout))
    }

    /// Current transport statistics.
    pub fn stats(&self) -> Result<ConnectionStats, ConnectionError> {
        let (reply, rx) = bounded(1);
        if !self.shared().shard.send(Command::Stats { conn: self.shared().key, reply }) {
            return Err(self.shared().lost());
        }
        rx.recv().map_err(|_| self.shared().lost())
    }

    fn notify(&self, stream: u64) -> bool {
        self.shared().shard.send(Command::Stream { conn: self.shared().key, stream })
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("peer", &self.remote_addr()).field("key", &self.shared().key).finish()
    }
}

/// The sending half of a stream.
///
/// Dropping it without [`finish`](Self::finish) finishes the stream.
pub struct SendStream {
    conn: Connection,
    stream: Arc<StreamShared>,
}

impl SendStream {
    fn new(conn: Connection, stream: Arc<StreamShared>) -> Self {
        Self { conn, stream }
    }

    /// The QUIC stream ID.
    pub fn id(&self) -> u64 {
        self.stream.id
    }

    /// Queues up to `buf.len()` bytes, blocking while the stream's buffer is
    /// full. Returns how many bytes were taken (at least one unless `buf` is
    /// empty).
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut st = self.stream.lock();
        let n = loop {
            if let Some(e) = &st.send_error {
                return Err(e.clone());
            }
            if st.fin_requested {
                return Err(WriteError::Finished);
            }
            // Wait for a useful amount of room (a quarter of the buffer, or
            // all of a smaller write) rather than waking per freed byte.
            let cap = self.stream.cap();
            let room = cap.saturating_sub(st.send.len());
            if room >= buf.len().min(cap / 4).max(1) {
                break room.min(buf.len());
            }
            st.send_waiting = true;
            st = self.stream.wait(st);
        };
        st.send_waiting = false;
        st.send.extend_from_slice(&buf[..n]);
        let notify = !std::mem::replace(&mut st.notified, true);
        drop(st);
        if notify && !self.conn.notify(self.stream.id) {
            return Err(self.conn.shared().lost().into());
        }
        Ok(n)
    }

    /// Writes all of `buf`.
    pub fn write_all(&mut self, mut buf: &[u8]) -> Result<(), WriteError> {
        while !buf.is_empty() {
            let n = self.write(buf)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Marks the end of the stream after the data already written, without
    /// waiting. The peer reads the end after all the data, provided the
    /// connection stays up until it is delivered: dropping every handle to
    /// the connection waits for that, [`Connection::close`] does not.
    pub fn finish(&mut self) -> Result<(), WriteError> {
        let mut st = self.stream.lock();
        if let Some(e) = &st.send_error {
            return Err(e.clone());
        }
        if std::mem::replace(&mut st.fin_requested, true) {
            return Ok(());
        }
        let notify = !std::mem::replace(&mut st.notified, true);
        drop(st);
        if notify && !self.conn.notify(self.stream.id) {
            return Err(self.conn.shared().lost().into());
        }
        Ok(())
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The receiving half of a stream.
///
/// Dropping it before the end asks the peer to stop sending (STOP_SENDING,
/// code 0).
pub struct RecvStream {
    conn: Connection,
    stream: Arc<StreamShared>,
}

impl RecvStream {
    fn new(conn: Connection, stream: Arc<StreamShared>) -> Self {
        Self { conn, stream }
    }

    /// The QUIC stream ID.
    pub fn id(&self) -> u64 {
        self.stream.id
    }

    /// Reads into `buf`, blocking until data arrives. `Ok(None)` at the end
    /// of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        let mut st = self.stream.lock();
        loop {
            if !st.recv.is_empty() {
                let n = st.recv.len().min(buf.len());
                buf[..n].copy_from_slice(&st.recv[..n]);
                st.recv.advance(n);
                self.after_read(st);
                return Ok(Some(n));
            }
            if let Some(e) = &st.recv_error {
                return Err(e.clone());
            }
            if st.recv_fin {
                return Ok(None);
            }
            st = self.stream.wait(st);
        }
    }

    /// Takes up to `max` bytes of what has arrived without copying them,
    /// blocking until data arrives. `Ok(None)` at the end of the stream.
    /// Cheaper than [`read`](Self::read) for consumers that can work on
    /// the returned buffer directly.
    pub fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ReadError> {
        let mut st = self.stream.lock();
        loop {
            if !st.recv.is_empty() {
                let n = st.recv.len().min(max.max(1));
                let chunk = st.recv.split_to(n).freeze();
                self.after_read(st);
                return Ok(Some(chunk));
            }
            if let Some(e) = &st.recv_error {
                return Err(e.clone());
            }
            if st.recv_fin {
                return Ok(None);
            }
            st = self.stream.wait(st);
        }
    }

    /// Reads the whole stream, failing if it carries more than `limit` bytes.
    pub fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        let mut st = self.stream.lock();
        loop {
            if !st.recv.is_empty() {
                if out.len() + st.recv.len() > limit {
                    return Err(ReadError::TooLong(limit));
                }
                out.extend_from_slice(&st.recv);
                st.recv.clear();
                st = self.after_read(st).unwrap_or_else(|| self.stream.lock());
                continue;
            }
            if let Some(e) = &st.recv_error {
                return Err(e.clone());
            }
            if st.recv_fin {
                return Ok(out);
            }
            st = self.stream.wait(st);
        }
    }

    /// Tells the shard there is room again if it had stopped reading. Returns
    /// the guard when it did not need to release it.
    fn after_read<'a>(
        &self,
        mut st: std::sync::MutexGuard<'a, crate::shared::StreamState>,
    ) -> Option<std::sync::MutexGuard<'a, crate::shared::StreamState>> {
        if st.recv_blocked && st.recv.len() <= self.stream.cap() / 2 && !st.notified {
            st.recv_blocked = false;
            st.notified = true;
            drop(st);
            self.conn.notify(self.stream.id);
            return None;
        }
        Some(st)
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let mut st = self.stream.lock();
        if st.recv_fin || st.recv_error.is_some() {
            return;
        }
        st.recv_abandoned = true;
        st.recv.clear();
        let notify = !std::mem::replace(&mut st.notified, true);
        drop(st);
        if notify {
            self.conn.notify(self.stream.id);
        }
    }
}
