//! State shared between application threads and the shard that owns a
//! connection. Application handles never touch quiche: they exchange bytes
//! through per-stream buffers (a mutex and a condition variable each) and
//! send [`Command`]s to the shard, waking it through the backend's waker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender};

use crate::connection::{Connection, ConnectionStats};
use crate::error::{ConnectError, ConnectionError, ReadError, WriteError};
use crate::io::Wake;

/// Identifies a connection within its shard: slab index plus a serial number
/// so that a command for a closed connection never reaches a newer one that
/// reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnKey {
    pub index: usize,
    pub serial: u64,
}

/// Requests from application threads to a shard.
pub(crate) enum Command {
    Connect {
        peer: SocketAddr,
        server_name: String,
        reply: Sender<Result<Connection, ConnectError>>,
    },
    OpenStream {
        conn: ConnKey,
        bidi: bool,
        reply: Sender<Result<Arc<StreamShared>, ConnectionError>>,
    },
    /// The application changed a stream's buffers or flags.
    Stream {
        conn: ConnKey,
        stream: u64,
    },
    Datagram {
        conn: ConnKey,
        data: Vec<u8>,
    },
    Close {
        conn: ConnKey,
        code: u64,
        reason: Vec<u8>,
    },
    /// Every application handle is gone: close once sent data is delivered.
    Release {
        conn: ConnKey,
    },
    /// The application accepted an incoming stream.
    Accepted {
        conn: ConnKey,
        stream: u64,
    },
    Stats {
        conn: ConnKey,
        reply: Sender<ConnectionStats>,
    },
    Shutdown,
}

/// A way to reach a shard from any thread.
#[derive(Clone)]
pub(crate) struct ShardHandle {
    pub commands: Sender<Command>,
    pub waker: Arc<dyn Wake>,
}

impl ShardHandle {
    /// Queues a command and wakes the shard. `false` if the shard is gone.
    pub fn send(&self, cmd: Command) -> bool {
        if self.commands.send(cmd).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            log::warn!("cannot wake shard: {e}");
        }
        true
    }
}

/// The application-visible half of a connection.
pub(crate) struct ConnShared {
    pub key: ConnKey,
    pub shard: ShardHandle,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub incoming_bi: Receiver<Arc<StreamShared>>,
    pub incoming_uni: Receiver<Arc<StreamShared>>,
    pub datagrams: Receiver<Vec<u8>>,
    /// Largest datagram the peer accepts now; 0 when unsupported.
    pub datagram_max: AtomicUsize,
    closed: Mutex<Option<ConnectionError>>,
    closed_cond: Condvar,
}

impl ConnShared {
    pub fn new(
        key: ConnKey,
        shard: ShardHandle,
        peer: SocketAddr,
        local: SocketAddr,
        incoming_bi: Receiver<Arc<StreamShared>>,
        incoming_uni: Receiver<Arc<StreamShared>>,
        datagrams: Receiver<Vec<u8>>,
    ) -> Self {
        Self {
            key,
            shard,
            peer,
            local,
            incoming_bi,
            incoming_uni,
            datagrams,
            datagram_max: AtomicUsize::new(0),
            closed: Mutex::new(None),
            closed_cond: Condvar::new(),
        }
    }

    /// Records why the connection ended (first reason wins) and wakes waiters.
    pub fn set_closed(&self, err: ConnectionError) {
        let mut c = lock(&self.closed);
        if c.is_none() {
            *c = Some(err);
        }
        self.closed_cond.notify_all();
    }

    pub fn close_reason(&self) -> Option<ConnectionError> {
        lock(&self.closed).clone()
    }

    /// The close reason, or `EndpointClosed` if the shard vanished first.
    pub fn lost(&self) -> ConnectionError {
        self.close_reason().unwrap_or(ConnectionError::EndpointClosed)
    }

    pub fn wait_closed(&self, timeout: Option<Duration>) -> Option<ConnectionError> {
        let mut c = lock(&self.closed);
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        while c.is_none() {
            c = match deadline {
                None => self.closed_cond.wait(c).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.closed_cond.wait_timeout(c, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        c.clone()
    }

    pub fn datagram_max(&self) -> usize {
        self.datagram_max.load(Ordering::Relaxed)
    }
}

/// One stream's buffers, shared by the application's handles and the shard.
pub(crate) struct StreamShared {
    pub id: u64,
    /// Bytes each direction may buffer before the writer blocks / the shard
    /// stops reading; the connection's adapter may change it at run time.
    cap: AtomicUsize,
    state: Mutex<StreamState>,
    pub cond: Condvar,
}

#[derive(Default)]
pub(crate) struct StreamState {
    /// Written by the application, not yet accepted by quiche.
    pub send: BytesMut,
    pub fin_requested: bool,
    pub fin_sent: bool,
    pub send_error: Option<WriteError>,
    /// Received from quiche, not yet read by the application.
    pub recv: BytesMut,
    pub recv_fin: bool,
    pub recv_error: Option<ReadError>,
    /// The application dropped its receive half before the end.
    pub recv_abandoned: bool,
    /// The shard stopped reading because `recv` was full.
    pub recv_blocked: bool,
    /// The shard last stopped reading at the full window (not the smaller
    /// buffer of an unaccepted stream): if the reader empties `recv` before
    /// the shard reads again, the window, not the reader, set the pace.
    pub recv_full: bool,
    /// The writer is waiting for room in `send`: if the shard then hands
    /// quiche all of it, the window, not the network, set the pace.
    pub send_waiting: bool,
    /// A `Command::Stream` for this stream is queued and not yet handled.
    pub notified: bool,
    /// The application has a handle (it opened the stream or accepted it).
    /// Until then the shard buffers only a little of it.
    pub accepted: bool,
}

impl StreamShared {
    pub fn new(id: u64, cap: usize, accepted: bool) -> Self {
        let state = StreamState { accepted, ..StreamState::default() };
        Self { id, cap: AtomicUsize::new(cap), state: Mutex::new(state), cond: Condvar::new() }
    }

    /// Bytes each direction may buffer now.
    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    /// Sets the buffer size; a writer waiting for room is woken to look again.
    pub fn set_cap(&self, cap: usize) {
        // Under the lock, so a writer between its room check and its wait
        // cannot miss the wake-up.
        let _st = self.lock();
        self.cap.store(cap, Ordering::Relaxed);
        self.cond.notify_all();
    }

    pub fn lock(&self) -> MutexGuard<'_, StreamState> {
        lock(&self.state)
    }

    pub fn wait<'a>(&self, g: MutexGuard<'a, StreamState>) -> MutexGuard<'a, StreamState> {
        self.cond.wait(g).unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the
/// state consistent, so a panic elsewhere must not cascade.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stream ID helpers (RFC 9000 §2.1).
pub(crate) mod stream_id {
    /// Whether the stream is unidirectional.
    pub fn is_uni(id: u64) -> bool {
        id & 0x2 != 0
    }
    /// Whether this side opened it.
    pub fn is_local(id: u64, is_server: bool) -> bool {
        (id & 0x1 != 0) == is_server
    }
    /// The first ID of a kind: `server` opener, `uni` direction.
    pub fn first(server: bool, uni: bool) -> u64 {
        u64::from(server) | (u64::from(uni) << 1)
    }
}
