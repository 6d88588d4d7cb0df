//! # quinn-perf: the STOQ perf transfer on quinn
//!
//! `quinn-perf` runs the same transfer as `stoq-perf`, but over the
//! [quinn](https://docs.rs/quinn) QUIC stack (0.11, used as a library on
//! tokio), so one benchmark run can put STOQ next to a mature Rust QUIC
//! implementation on the same host, the same path and the same bytes.
//!
//! It speaks the STOQ perf protocol (`docs/perf-protocol.md`): ALPN
//! `stoq/1`, a `PERF` tag and a 20-byte request at the start of each
//! bidirectional stream, the SplitMix64 payload pattern, and the 16-byte
//! result that ends an upload. The wire code, the pattern, the CPU
//! accounting and the size parser all come from the `stoq-perf` library, so
//! a quinn-perf client can test a stoq-perf server and the other way round.
//! As with stoq-perf, a reported byte is one the receiver checked: downloads
//! are verified by the client, uploads by the server (the client only
//! accepts a result whose count equals what it sent).
//!
//! ## Fairness settings
//!
//! [`transport_config`] sets quinn up like STOQ's defaults
//! (`stoq_core::TransportConfig::default`):
//!
//! - **1452-byte UDP payload**, fixed: `initial_mtu` and `min_mtu` 1452,
//!   MTU discovery off (quinn's "MTU" is the UDP payload size). STOQ never
//!   uses loopback's 64 KiB MTU either.
//! - **CUBIC** congestion control (`quinn::congestion::CubicConfig`), as
//!   STOQ's default. Both stacks pace (quinn always does; STOQ has
//!   `pacing: true`).
//! - **Flow-control windows** at STOQ's ceilings: 16 MiB per stream, 64 MiB
//!   per connection. quiche starts at 4 and 16 MiB and auto-tunes up to
//!   those; quinn has no auto-tuning, so it gets the ceilings from the start.
//! - **Send window** 64 MiB (STOQ's connection ceiling). quinn also bounds a
//!   stream's buffered data by the peer's stream credit, as quiche does, so
//!   with one stream the 16 MiB stream window is what binds on both stacks.
//! - **Socket buffers**: `SO_RCVBUF`/`SO_SNDBUF` requested at 4 MiB, as
//!   STOQ's sockets are (the kernel caps them at `net.core.[rw]mem_max`).
//! - **GSO/GRO** left at quinn's defaults (on where the kernel has them):
//!   batching is part of what quinn is, and part of what is compared. quinn
//!   sends up to 10 datagrams per `sendmsg` with GSO and receives with
//!   `recvmmsg` (and GRO where the path offers it), where STOQ's portable
//!   backend makes one system call per datagram. The report gives datagrams
//!   sent and `sendmsg` calls, so the batching is visible.
//! - 30 s idle timeout and 1024 concurrent bidirectional streams, as STOQ.
//!   Everything else (ACK frequency, loss detection, initial RTT) is
//!   quinn's default.
//!
//! Server and client run a **multi-threaded tokio runtime with two
//! workers**. On the 2-core development VM, with server and client in
//! separate processes and 2 GiB per run, it gave the higher median goodput
//! in five interleaved rounds (download about 2.6 against 2.1 Gbit/s,
//! upload about 2.5 against 2.2) than a current-thread runtime, which in
//! turn used about 15-20% less client CPU per byte. Throughput is what is
//! compared, so the multi-threaded runtime stays.
//!
//! ## Use
//!
//! ```sh
//! cargo build --release -p quinn-perf
//! target/release/quinn-perf server --listen 127.0.0.1:4500 &
//! target/release/quinn-perf client 127.0.0.1:4500 --mode download --bytes 2G
//! target/release/quinn-perf client 127.0.0.1:4500 --mode upload --bytes 2G --json
//! ```
//!
//! The client prints one line (goodput, datagrams, losses, RTT, client CPU
//! seconds and bytes per CPU-second) or, with `--json`, one JSON object
//! ([`Outcome`]); it exits non-zero when any byte failed verification.
//!
//! ## Certificates
//!
//! The server generates a fresh self-signed certificate (rcgen) at start.
//! The client **does not verify the certificate chain**: this is a
//! benchmark, not a secure transport, and it logs a warning saying so. It
//! does check the TLS 1.3 handshake signature, so the key exchange and
//! encryption cost is the real one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{EndpointConfig, IdleTimeout, TransportConfig, VarInt};

pub use client::{ClientError, Mode, Outcome, run_client};
pub use server::serve;

/// The application protocol (TLS ALPN), as STOQ's.
pub const ALPN: &[u8] = b"stoq/1";
/// Largest UDP payload, as STOQ's default.
pub const MAX_UDP_PAYLOAD: u16 = 1452;
/// Per-stream receive window: STOQ's `max_stream_window`.
pub const STREAM_WINDOW: u32 = 16 << 20;
/// Connection receive window and send window: STOQ's `max_connection_window`.
pub const CONNECTION_WINDOW: u32 = 64 << 20;
/// Requested socket buffer sizes, as STOQ's `SocketOptions::default`.
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Size of the buffers the client and server read and write with, as
/// stoq-perf's.
pub use stoq_perf::CHUNK;

/// quinn's transport settings matched to STOQ's defaults (see the crate docs).
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.initial_mtu(MAX_UDP_PAYLOAD)
        .min_mtu(MAX_UDP_PAYLOAD)
        .mtu_discovery_config(None)
        .congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW))
        .max_concurrent_bidi_streams(VarInt::from_u32(1024))
        .max_idle_timeout(IdleTimeout::try_from(Duration::from_secs(30)).ok());
    t
}

/// Opens a quinn endpoint on `addr` with STOQ-sized socket buffers; a server
/// when `server` is given. Must be called inside a tokio runtime.
pub fn endpoint(addr: SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    // Best effort, like STOQ: the kernel caps the sizes at its maxima.
    let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER);
    let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
    quinn::Endpoint::new(EndpointConfig::default(), server, socket, Arc::new(quinn::TokioRuntime))
}

/// The tokio runtime both commands run on (see the crate docs for why).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}
