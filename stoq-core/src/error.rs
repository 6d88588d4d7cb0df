//! Errors, one type per operation. Messages say what happened and what to do.
//! Wire error codes (QUIC transport codes, TLS alerts, application codes)
//! appear as data inside these, never as the API's own error type.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::ConfigError;
use crate::io::BackendError;
use crate::tls::{alert_hint, alert_name};

/// Why an endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The packet backend could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The shard thread could not be started.
    #[error("cannot start shard thread: {0}")]
    Thread(std::io::Error),
}

/// Why a connection ended (or could not be used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// No packet arrived for the idle timeout.
    #[error("connection timed out: no packet from the peer for {0:?}")]
    TimedOut(Duration),
    /// This side closed it.
    #[error("connection closed locally with code {code}")]
    LocallyClosed {
        /// Application error code.
        code: u64,
        /// Reason phrase.
        reason: String,
    },
    /// The peer's application closed it.
    #[error("peer closed the connection with code {code}{}", reason_suffix(reason))]
    ApplicationClosed {
        /// Application error code.
        code: u64,
        /// Reason phrase.
        reason: String,
    },
    /// A QUIC transport error (RFC 9000 §20.1).
    #[error("{} transport error 0x{code:x}{}", side(*by_peer), reason_suffix(reason))]
    Transport {
        /// The error code.
        code: u64,
        /// Reason phrase.
        reason: String,
        /// Whether the peer (rather than this side) raised it.
        by_peer: bool,
    },
    /// The TLS handshake failed with an alert.
    #[error("TLS handshake failed: {} alert {} ({alert}): {}", side(*by_peer), alert_name(*alert), alert_hint(*alert))]
    Tls {
        /// The TLS alert (RFC 8446 §6).
        alert: u8,
        /// Whether the peer sent it.
        by_peer: bool,
    },
    /// The peer answered with a stateless reset: it no longer has this
    /// connection (for example, it restarted).
    #[error("peer reset the connection (it has lost the connection's state, e.g. it restarted)")]
    Reset,
    /// The endpoint is shutting down.
    #[error("endpoint shut down")]
    EndpointClosed,
}

fn side(by_peer: bool) -> &'static str {
    if by_peer { "peer sent" } else { "local" }
}

fn reason_suffix(r: &str) -> String {
    if r.is_empty() { String::new() } else { format!(": {r}") }
}

impl ConnectionError {
    pub(crate) fn from_quiche(conn: &quiche::Connection, idle: Duration) -> Self {
        let text = |r: &[u8]| String::from_utf8_lossy(r).into_owned();
        let classify = |e: &quiche::ConnectionError, by_peer: bool| {
            if e.is_app {
                if by_peer {
                    Self::ApplicationClosed { code: e.error_code, reason: text(&e.reason) }
                } else {
                    Self::LocallyClosed { code: e.error_code, reason: text(&e.reason) }
                }
            } else if (0x100..=0x1ff).contains(&e.error_code) {
                Self::Tls { alert: (e.error_code - 0x100) as u8, by_peer }
            } else {
                Self::Transport { code: e.error_code, reason: text(&e.reason), by_peer }
            }
        };
        if let Some(e) = conn.peer_error() {
            classify(e, true)
        } else if let Some(e) = conn.local_error() {
            classify(e, false)
        } else if conn.is_timed_out() {
            Self::TimedOut(idle)
        } else {
            Self::Reset
        }
    }
}

/// Why `connect` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing answered in time.
    #[error(
        "no QUIC handshake with {peer} within {after:?}: nothing is listening there, or the path drops UDP (check the address, the port and firewalls)"
    )]
    TimedOut {
        /// The server address.
        peer: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
    /// The handshake was refused or failed.
    #[error("handshake with {peer} failed: {error}")]
    Handshake {
        /// The server address.
        peer: SocketAddr,
        /// What went wrong.
        error: ConnectionError,
    },
    /// The address family cannot be reached from this endpoint's socket.
    #[error("cannot reach {peer} from a socket bound to {local}: bind the client to an address of the same family")]
    AddressFamily {
        /// The server address.
        peer: SocketAddr,
        /// Our socket address.
        local: SocketAddr,
    },
    /// quiche refused to create the connection.
    #[error("cannot start a connection to {peer}: {reason}")]
    Setup {
        /// The server address.
        peer: SocketAddr,
        /// quiche's reason.
        reason: String,
    },
    /// This endpoint has no client configuration.
    #[error("this endpoint was created as a server only; create it with Endpoint::client to connect")]
    NotAClient,
    /// The endpoint is shutting down.
    #[error("endpoint shut down")]
    EndpointClosed,
}

/// Why a stream write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The peer asked us to stop sending (STOP_SENDING) with this code.
    #[error("peer stopped the stream with code {0}")]
    Stopped(u64),
    /// The stream was already finished.
    #[error("stream already finished")]
    Finished,
    /// The peer stopped the stream and the reset completed before the error
    /// code could be observed.
    #[error("peer stopped the stream (STOP_SENDING) and it has been reset")]
    Closed,
    /// The connection is gone.
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionError),
}

/// Why a stream read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer abandoned the stream (RESET_STREAM) with this code.
    #[error("peer reset the stream with code {0}")]
    Reset(u64),
    /// `read_to_end` found more data than its limit.
    #[error("stream carried more than the {0}-byte limit")]
    TooLong(usize),
    /// The connection is gone.
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionError),
}

/// Why a datagram could not be sent or received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The datagram does not fit in one packet.
    #[error("datagram of {len} bytes exceeds the {max}-byte maximum for this connection")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The current maximum.
        max: usize,
    },
    /// The peer did not enable datagrams (or this side disabled them).
    #[error("datagrams are not enabled on this connection (both sides need TransportConfig::datagram_queue)")]
    Unsupported,
    /// The connection is gone.
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionError),
}
