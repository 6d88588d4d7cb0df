//! The endpoint: a bound socket, the shard thread that drives it, and the
//! handles application threads use to connect and accept.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded, unbounded};

use crate::config::{ClientConfig, EndpointConfig, ServerConfig};
use crate::connection::Connection;
use crate::error::{ConnectError, EndpointError};
use crate::io::{self, BackendKind, IoCapabilities, IoCounters};
use crate::shard::{Shard, ShardCounters, ShardSetup};
use crate::shared::{Command, ShardHandle, lock};
use crate::tls::{ClientTls, ServerTls};
use crate::token::TokenKeys;

/// A QUIC endpoint bound to one UDP address, served by one shard thread.
///
/// Cheap to clone; `Send + Sync`. Dropping the last clone closes every
/// connection (peers are sent CONNECTION_CLOSE) and stops the shard.
#[derive(Clone)]
pub struct Endpoint(Arc<Inner>);

struct Inner {
    handle: ShardHandle,
    local: SocketAddr,
    backend: BackendKind,
    capabilities: IoCapabilities,
    accept: Option<Receiver<Connection>>,
    io: Arc<IoCounters>,
    shard: Arc<ShardCounters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.handle.send(Command::Shutdown);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// Endpoint-wide counters: socket traffic and packets that belonged to no
/// connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EndpointStats {
    /// UDP datagrams received.
    pub rx_datagrams: u64,
    /// UDP payload bytes received.
    pub rx_bytes: u64,
    /// Receive system calls.
    pub rx_syscalls: u64,
    /// UDP datagrams sent.
    pub tx_datagrams: u64,
    /// UDP payload bytes sent.
    pub tx_bytes: u64,
    /// Send system calls.
    pub tx_syscalls: u64,
    /// Datagrams the kernel refused to send.
    pub tx_errors: u64,
    /// Receive errors (ICMP reports, truncated datagrams).
    pub rx_errors: u64,
    /// Run-time GSO refusals that switched the socket to one datagram per
    /// packet (the datagrams were resent).
    pub gso_fallbacks: u64,
    /// Datagrams received marked ECN Congestion Experienced.
    pub rx_ecn_ce: u64,
    /// Times the backend's receive buffer pool ran dry and was refilled.
    pub rx_buffers_exhausted: u64,
    /// Datagrams an AF_XDP backend received through its kernel socket.
    pub rx_kernel_path: u64,
    /// Datagrams an AF_XDP backend sent through its kernel socket.
    pub tx_kernel_path: u64,
    /// Packets the kernel dropped before the backend read them.
    pub rx_dropped: u64,
    /// Server connections created.
    pub accepted: u64,
    /// Retry packets sent.
    pub retries_sent: u64,
    /// Initials with a token that did not validate.
    pub invalid_tokens: u64,
    /// Version negotiation packets sent.
    pub version_negotiations: u64,
    /// Stateless resets sent.
    pub stateless_resets_sent: u64,
    /// Datagrams whose QUIC header could not be read.
    pub undecodable: u64,
    /// Packets for no known connection that started none.
    pub unroutable: u64,
    /// Packets the shard held back until their pacing time.
    pub paced_holds: u64,
    /// Run-time adapter changes that raised a connection's setting.
    pub adapter_ups: u64,
    /// Run-time adapter changes that lowered a connection's setting.
    pub adapter_downs: u64,
}

impl Endpoint {
    /// Binds a server endpoint. Use `[::]:port` to serve IPv6 and IPv4.
    pub fn server(addr: SocketAddr, config: ServerConfig) -> Result<Self, EndpointError> {
        Self::start(addr, config.endpoint, Some(config.tls), None)
    }

    /// Binds a client endpoint (`0.0.0.0:0` or `[::]:0` for any port).
    pub fn client(addr: SocketAddr, config: ClientConfig) -> Result<Self, EndpointError> {
        Self::start(addr, config.endpoint, None, Some(config.tls))
    }

    fn start(
        addr: SocketAddr,
        cfg: EndpointConfig,
        server: Option<ServerTls>,
        client: Option<ClientTls>,
    ) -> Result<Self, EndpointError> {
        let server_q = server.as_ref().map(|s| cfg.quiche_config(Some(s), None)).transpose()?;
        let client_q = client.as_ref().map(|c| cfg.quiche_config(None, Some(c))).transpose()?;
        let counters = Arc::new(IoCounters::default());
        let mut socket = cfg.socket;
        socket.max_udp_payload = cfg.transport.max_udp_payload;
        let backend = io::open_with(cfg.backend, addr, &socket, counters.clone(), cfg.opener.as_deref())?;
        let (commands_tx, commands_rx) = unbounded();
        let handle = ShardHandle { commands: commands_tx, waker: backend.waker() };
        let (accept_tx, accept_rx) = match server_q {
            Some(_) => {
                let (t, r) = unbounded();
                (Some(t), Some(r))
            }
            None => (None, None),
        };
        let shard_counters = Arc::new(ShardCounters::default());
        let (local, kind, capabilities) = (backend.local_addr(), backend.kind(), backend.capabilities());
        let shard = Shard::new(ShardSetup {
            index: 0,
            io: backend,
            server: server_q,
            client: client_q,
            transport: cfg.transport.clone(),
            retry: cfg.retry,
            tokens: match &cfg.reset_secret {
                Some(secret) => TokenKeys::with_reset_secret(cfg.retry_token_lifetime, &secret.0),
                None => TokenKeys::generate(cfg.retry_token_lifetime),
            },
            commands: commands_rx,
            handle: handle.clone(),
            accept: accept_tx,
            counters: shard_counters.clone(),
        });
        let thread = std::thread::Builder::new()
            .name(format!("stoq-shard-0-{}", local.port()))
            .spawn(move || shard.run())
            .map_err(EndpointError::Thread)?;
        log::info!("STOQ endpoint on {local} ({kind} backend)");
        Ok(Self(Arc::new(Inner {
            handle,
            local,
            backend: kind,
            capabilities,
            accept: accept_rx,
            io: counters,
            shard: shard_counters,
            thread: Mutex::new(Some(thread)),
        })))
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local
    }

    /// The packet backend in use.
    pub fn backend(&self) -> BackendKind {
        self.0.backend
    }

    /// What the backend can do.
    pub fn capabilities(&self) -> IoCapabilities {
        self.0.capabilities
    }

    /// Connects to a server and completes the handshake. `server_name` is
    /// checked against the server's certificate (use a DNS name the
    /// certificate carries, such as `localhost`).
    pub fn connect(&self, peer: SocketAddr, server_name: &str) -> Result<Connection, ConnectError> {
        let (reply, rx) = bounded(1);
        let cmd = Command::Connect { peer, server_name: server_name.to_owned(), reply };
        if !self.0.handle.send(cmd) {
            return Err(ConnectError::EndpointClosed);
        }
        rx.recv().unwrap_or(Err(ConnectError::EndpointClosed))
    }

    /// Waits for the next established incoming connection. `None` once the
    /// endpoint is shut down, or if it is not a server.
    pub fn accept(&self) -> Option<Connection> {
        self.0.accept.as_ref()?.recv().ok()
    }

    /// Like [`accept`](Self::accept), giving up after `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> Option<Connection> {
        self.0.accept.as_ref()?.recv_timeout(timeout).ok()
    }

    /// Current counters.
    pub fn stats(&self) -> EndpointStats {
        let (io, sh) = (&self.0.io, &self.0.shard);
        let r = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        EndpointStats {
            rx_datagrams: r(&io.rx_datagrams),
            rx_bytes: r(&io.rx_bytes),
            rx_syscalls: r(&io.rx_syscalls),
            tx_datagrams: r(&io.tx_datagrams),
            tx_bytes: r(&io.tx_bytes),
            tx_syscalls: r(&io.tx_syscalls),
            tx_errors: r(&io.tx_errors),
            rx_errors: r(&io.rx_errors),
            gso_fallbacks: r(&io.gso_fallbacks),
            rx_ecn_ce: r(&io.rx_ecn_ce),
            rx_buffers_exhausted: r(&io.rx_buffers_exhausted),
            rx_kernel_path: r(&io.rx_kernel_path),
            tx_kernel_path: r(&io.tx_kernel_path),
            rx_dropped: r(&io.rx_dropped),
            accepted: r(&sh.accepted),
            retries_sent: r(&sh.retries_sent),
            invalid_tokens: r(&sh.invalid_tokens),
            version_negotiations: r(&sh.version_negotiations),
            stateless_resets_sent: r(&sh.stateless_resets_sent),
            undecodable: r(&sh.undecodable),
            unroutable: r(&sh.unroutable),
            paced_holds: r(&sh.paced_holds),
            adapter_ups: r(&sh.adapter_ups),
            adapter_downs: r(&sh.adapter_downs),
        }
    }

    /// Closes every connection and stops the shard, waiting for it to exit.
    pub fn shutdown(&self) {
        self.0.handle.send(Command::Shutdown);
        if let Some(t) = lock(&self.0.thread).take() {
            let _ = t.join();
        }
    }
}
