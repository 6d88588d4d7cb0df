//! # stoq-core: the STOQ data plane
//!
//! QUIC from [`quiche`] (a sans-I/O state machine) driven by STOQ's own
//! shard event loop over pluggable, batched packet I/O ([`io::PacketIo`]).
//! This crate owns the sockets, the event loop, the timers and the public
//! API; it never probes hardware itself.
//!
//! ## Threading model
//!
//! Each [`Endpoint`] runs one **shard**: a thread that owns the UDP backend
//! and every `quiche::Connection` of the endpoint, and runs to completion
//! (receive batch → route by destination connection ID → QUIC → streams →
//! send batch → timers). Application code never runs on the shard and never
//! touches quiche. It uses blocking, `Send + Sync` handles from any thread:
//!
//! - [`Endpoint::connect`] / [`Endpoint::accept`] return a [`Connection`];
//! - [`Connection`] opens and accepts streams and carries datagrams;
//! - [`SendStream::write`] copies into a per-stream buffer and blocks while
//!   it is full; [`RecvStream::read`] blocks until data arrives.
//!
//! Handles talk to the shard through a crossbeam channel plus a waker that
//! interrupts the backend's wait; stream bytes cross through per-stream
//! buffers guarded by a mutex and condition variable, so a 64 KiB write is
//! one copy and at most one wake-up, not a message per packet.
//!
//! Connection IDs chosen by STOQ carry the shard index in a fixed byte
//! ([`cid`]), so later per-core sharding can steer packets by CID.
//!
//! ## Example
//!
//! ```
//! use stoq_core::{ClientConfig, DevPki, Endpoint, ServerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pki = DevPki::generate(&["localhost"])?;
//! let server = Endpoint::server("127.0.0.1:0".parse()?, ServerConfig::new(pki.server_tls()))?;
//! let addr = server.local_addr();
//!
//! // An echo server on its own thread.
//! let echo = std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     let conn = server.accept().ok_or("endpoint closed")?;
//!     let (mut send, mut recv) = conn.accept_bi()?;
//!     let msg = recv.read_to_end(1 << 20)?;
//!     send.write_all(&msg)?;
//!     send.finish()?;
//!     conn.closed(); // wait for the client to close
//!     Ok(())
//! });
//!
//! let client = Endpoint::client("127.0.0.1:0".parse()?, ClientConfig::new(pki.client_tls()))?;
//! let conn = client.connect(addr, "localhost")?;
//! let (mut send, mut recv) = conn.open_bi()?;
//! send.write_all(b"hello, STOQ")?;
//! send.finish()?;
//! assert_eq!(recv.read_to_end(1 << 20)?, b"hello, STOQ");
//! conn.close(0, b"done");
//! echo.join().unwrap().map_err(|e| e.to_string())?;
//! # Ok(())
//! # }
//! ```

// Unsafe code is denied everywhere but the Linux system-call wrappers
// (`io::linux::sys`) and the io_uring backend, each block with a SAFETY note.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cid;
mod config;
mod connection;
mod endpoint;
mod error;
pub mod io;
pub mod profile;
mod shard;
mod shared;
mod tls;
pub mod token;

/// The owned byte buffer [`RecvStream::read_chunk`] returns.
pub use bytes::Bytes;
pub use config::{
    ALPN, Adaptation, ClientConfig, ConfigError, CongestionControl, EndpointConfig, ResetSecret, ServerConfig,
    TransportConfig,
};
pub use connection::{
    AdapterDecision, AdapterDirection, AdapterKnob, AdapterStats, Connection, ConnectionStats, RecvStream, SendStream,
};
pub use endpoint::{Endpoint, EndpointStats};
pub use error::{ConnectError, ConnectionError, DatagramError, EndpointError, ReadError, WriteError};
pub use tls::{ClientTls, DevPki, ServerTls, TlsError};
