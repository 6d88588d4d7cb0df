//! Endpoint and transport settings, with defaults sized for a 1500-byte
//! network, and their translation into `quiche::Config`.

use std::sync::Arc;
use std::time::Duration;

use crate::io::{BackendKind, OpenBackend, SocketOptions};
use crate::tls::{self, ClientTls, ServerTls, TlsError};

/// The application protocol STOQ speaks (TLS ALPN).
pub const ALPN: &[u8] = b"stoq/1";

/// Congestion controllers quiche offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum CongestionControl {
    /// CUBIC (RFC 9438).
    #[default]
    Cubic,
    /// NewReno (RFC 9002).
    Reno,
    /// BBRv2.
    Bbr2,
}

/// Per-connection QUIC settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Close a connection after this long without any packet.
    pub idle_timeout: Duration,
    /// Give up on a handshake after this long.
    pub handshake_timeout: Duration,
    /// Largest UDP payload sent and accepted. 1452 fits a 1500-byte MTU with
    /// IPv6 and UDP headers (and IPv4 with room to spare).
    pub max_udp_payload: usize,
    /// Initial connection-level flow-control window.
    pub initial_max_data: u64,
    /// Initial per-stream flow-control window.
    pub initial_max_stream_data: u64,
    /// Ceiling for quiche's window auto-tuning, per connection.
    pub max_connection_window: u64,
    /// Ceiling for quiche's window auto-tuning, per stream.
    pub max_stream_window: u64,
    /// Concurrent bidirectional streams the peer may open.
    pub max_streams_bidi: u64,
    /// Concurrent unidirectional streams the peer may open.
    pub max_streams_uni: u64,
    /// Unreliable datagram queue length in each direction; `None` disables
    /// the datagram extension (RFC 9221).
    pub datagram_queue: Option<usize>,
    /// Congestion controller.
    pub congestion_control: CongestionControl,
    /// Let quiche compute pacing times (`SendInfo::at`), which the shard
    /// honours. In quiche 0.30 only BBRv2 produces them; CUBIC and Reno
    /// packets are always due at once.
    pub pacing: bool,
    /// Cap on a connection's pacing rate in bits per second, for a path
    /// known to be slower than the congestion controller believes. BBRv2
    /// only in quiche 0.30, which takes whole Mbit/s (rounded down, at least
    /// 1) and lets bursts reach 1.25 times the cap.
    pub max_pacing_rate: Option<u64>,
    /// Bytes an application may queue on one stream before `write` blocks,
    /// and bytes received ahead of the application before the shard stops
    /// reading (flow control then holds the peer back).
    pub stream_buffer: usize,
    /// Per-connection run-time adaptation within a tier; `None` keeps the
    /// settings above fixed for the connection's life.
    pub adaptation: Option<Adaptation>,
}

/// Bounds within which each connection's adapter may move its settings at
/// run time (a tier's range). The adapter starts from the
/// [`TransportConfig`] values and changes one step at a time, with
/// hysteresis: a change needs three consecutive readings pointing the same
/// way and at least five seconds since the connection's last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Adaptation {
    /// Smallest per-stream window (`stream_buffer`) the adapter may set.
    pub min_window: usize,
    /// Largest per-stream window the adapter may set.
    pub max_window: usize,
    /// Lowest pacing rate, bit/s, the adapter may cap a connection to after
    /// sustained loss.
    pub min_pacing_rate: u64,
    /// The tier's highest rate, bit/s: above it the adapter removes its cap.
    pub max_pacing_rate: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_udp_payload: 1452,
            initial_max_data: 16 << 20,
            initial_max_stream_data: 4 << 20,
            max_connection_window: 64 << 20,
            max_stream_window: 16 << 20,
            max_streams_bidi: 1024,
            max_streams_uni: 1024,
            datagram_queue: Some(1024),
            congestion_control: CongestionControl::Cubic,
            pacing: true,
            max_pacing_rate: None,
            stream_buffer: 1 << 20,
            adaptation: None,
        }
    }
}

/// Everything an endpoint needs besides its role's TLS settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// QUIC transport settings for every connection.
    pub transport: TransportConfig,
    /// Which packet backend to use.
    pub backend: BackendKind,
    /// Socket buffer sizes.
    pub socket: SocketOptions,
    /// Servers: demand a Retry round trip (address validation) before
    /// creating connection state.
    pub retry: bool,
    /// How long a Retry token stays valid.
    pub retry_token_lifetime: Duration,
    /// ALPN protocols offered, in order of preference.
    pub alpn: Vec<Vec<u8>>,
    /// Secret behind stateless-reset tokens. Keep the same value across
    /// restarts so peers of a restarted server learn at once that their
    /// connection is gone instead of waiting for the idle timeout; keep it
    /// as private as a TLS key. `None`: random per endpoint.
    pub reset_secret: Option<ResetSecret>,
    /// Opens a backend from another crate when `backend` is its kind
    /// (`stoq_xdp::XdpOpener` for [`BackendKind::AfXdp`]).
    pub opener: Option<Arc<dyn OpenBackend>>,
}

/// A 32-byte secret for stateless-reset tokens. Its `Debug` output is
/// redacted so configs can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetSecret(pub [u8; 32]);

impl std::fmt::Debug for ResetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetSecret(<redacted>)")
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            transport: TransportConfig::default(),
            backend: BackendKind::Portable,
            socket: SocketOptions::default(),
            retry: true,
            retry_token_lifetime: Duration::from_secs(10),
            alpn: vec![ALPN.to_vec()],
            reset_secret: None,
            opener: None,
        }
    }
}

/// A server endpoint's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Certificate and key.
    pub tls: ServerTls,
    /// Endpoint settings.
    pub endpoint: EndpointConfig,
}

impl ServerConfig {
    /// Defaults with the given certificate.
    pub fn new(tls: ServerTls) -> Self {
        Self { tls, endpoint: EndpointConfig::default() }
    }
}

/// A client endpoint's settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How to verify servers.
    pub tls: ClientTls,
    /// Endpoint settings.
    pub endpoint: EndpointConfig,
}

impl ClientConfig {
    /// Defaults with the given verification.
    pub fn new(tls: ClientTls) -> Self {
        Self { tls, endpoint: EndpointConfig::default() }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is out of range.
    #[error("invalid setting {name}: {why}")]
    Invalid {
        /// Setting name.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// quiche refused a setting.
    #[error("QUIC configuration rejected {what}: {source}")]
    Quiche {
        /// What was being set.
        what: &'static str,
        /// quiche's error.
        source: quiche::Error,
    },
}

impl EndpointConfig {
    /// Checks values quiche would accept but that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.transport;
        let invalid = |name, why: &str| Err(ConfigError::Invalid { name, why: why.to_owned() });
        if !(1200..=65_527).contains(&t.max_udp_payload) {
            return invalid("max_udp_payload", "must be between 1200 (QUIC's minimum) and 65527 bytes");
        }
        if t.idle_timeout.is_zero() || t.handshake_timeout.is_zero() {
            return invalid("idle_timeout/handshake_timeout", "must be greater than zero");
        }
        if t.stream_buffer < 1024 {
            return invalid("stream_buffer", "must be at least 1024 bytes");
        }
        if !(1..=crate::profile::MAX_BATCH).contains(&self.socket.batch) {
            return invalid("socket.batch", "must be between 1 and 64 datagrams");
        }
        if let Some(a) = &t.adaptation {
            if a.min_window < 1024 || a.min_window > a.max_window {
                return invalid("adaptation", "needs 1024 <= min_window <= max_window");
            }
            if a.min_pacing_rate == 0 || a.min_pacing_rate > a.max_pacing_rate {
                return invalid("adaptation", "needs 0 < min_pacing_rate <= max_pacing_rate");
            }
        }
        if self.alpn.is_empty() || self.alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
            return invalid("alpn", "needs at least one protocol of 1 to 255 bytes");
        }
        Ok(())
    }

    pub(crate) fn quiche_config(
        &self,
        server: Option<&ServerTls>,
        client: Option<&ClientTls>,
    ) -> Result<quiche::Config, ConfigError> {
        self.validate()?;
        let q = |what| move |source| ConfigError::Quiche { what, source };
        let t = &self.transport;
        let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).map_err(q("protocol version"))?;
        if let Some(s) = server {
            tls::apply_server(&mut c, s)?;
        }
        if let Some(cl) = client {
            tls::apply_client(&mut c, cl)?;
        }
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        c.set_application_protos(&alpn).map_err(q("ALPN list"))?;
        c.set_max_idle_timeout(t.idle_timeout.as_millis() as u64);
        c.set_max_recv_udp_payload_size(t.max_udp_payload);
        c.set_max_send_udp_payload_size(t.max_udp_payload);
        c.set_initial_max_data(t.initial_max_data);
        c.set_initial_max_stream_data_bidi_local(t.initial_max_stream_data);
        c.set_initial_max_stream_data_bidi_remote(t.initial_max_stream_data);
        c.set_initial_max_stream_data_uni(t.initial_max_stream_data);
        c.set_max_connection_window(t.max_connection_window.max(t.initial_max_data));
        c.set_max_stream_window(t.max_stream_window.max(t.initial_max_stream_data));
        c.set_initial_max_streams_bidi(t.max_streams_bidi);
        c.set_initial_max_streams_uni(t.max_streams_uni);
        c.set_cc_algorithm(match t.congestion_control {
            CongestionControl::Cubic => quiche::CongestionControlAlgorithm::CUBIC,
            CongestionControl::Reno => quiche::CongestionControlAlgorithm::Reno,
            CongestionControl::Bbr2 => quiche::CongestionControlAlgorithm::Bbr2Gcongestion,
        });
        c.enable_pacing(t.pacing);
        if let Some(bps) = t.max_pacing_rate {
            // quiche 0.30's BBRv2 reads this value as Mbit/s.
            c.set_max_pacing_rate((bps / 1_000_000).max(1));
        }
        if let Some(n) = t.datagram_queue {
            c.enable_dgram(true, n, n);
        }
        c.set_active_connection_id_limit(4);
        c.set_disable_active_migration(false);
        Ok(c)
    }
}
