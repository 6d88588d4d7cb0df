//! # stoq-perf: verified throughput tests over STOQ
//!
//! An iperf-like load generator. A client opens QUIC connections to a server
//! and, on each bidirectional stream, asks for an upload (client sends) or a
//! download (server sends) of a pseudo-random payload keyed by a seed. The
//! receiving side regenerates the pattern and checks **every byte**, so a
//! reported figure always means bytes that arrived intact: uploads are
//! counted from the server's own verified count, downloads from the
//! client's.
//!
//! The wire protocol ([`protocol`], written up in `docs/perf-protocol.md`)
//! is a 4-byte service tag (`PERF`) and a 20-byte request header at the
//! start of each stream, so other services (stoq-node's `ECHO`) can share
//! the same ALPN and listener. [`server::serve_connection`] and
//! [`protocol::read_tag`] are the dispatcher stoq-node reuses.
//!
//! Figures come from counters real traffic moved: verified bytes, the
//! endpoint's datagram counters, quiche's loss and RTT, and the process's
//! CPU time from `getrusage` ([`cpu`]).
//!
//! ## Example
//!
//! ```
//! use std::sync::{Arc, atomic::AtomicBool};
//! use stoq_core::{DevPki, Endpoint, ServerConfig};
//! use stoq_perf::client::{Amount, ClientOptions, Mode, run_client};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pki = DevPki::generate(&["localhost"])?;
//! let server = Endpoint::server("127.0.0.1:0".parse()?, ServerConfig::new(pki.server_tls()))?;
//! let addr = server.local_addr();
//! let stop = Arc::new(AtomicBool::new(false));
//! let (ep, st) = (server.clone(), stop.clone());
//! let serving = std::thread::spawn(move || stoq_perf::server::run_server(&ep, &st));
//!
//! let mut opts = ClientOptions::new(addr.to_string(), pki.client_tls());
//! opts.mode = Mode::Bidir;
//! opts.amount = Amount::Bytes(1 << 20);
//! let report = run_client(&opts)?;
//! assert_eq!(report.bytes_upload, 1 << 20);
//! assert_eq!(report.bytes_download, 1 << 20);
//!
//! stop.store(true, std::sync::atomic::Ordering::Relaxed);
//! serving.join().unwrap();
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod cli;
pub mod client;
pub mod cpu;
pub mod pattern;
pub mod probe;
pub mod profile;
pub mod protocol;
pub mod report;
pub mod server;
pub mod udp_flood;

pub use client::{ClientError, ClientOptions, run_client};
pub use protocol::read_tag;
pub use report::Report;
pub use server::{handle_perf_stream, run_server, serve_connection};

/// Size of the buffers the clients and servers read and write payload with
/// (stoq-perf's and quinn-perf's).
pub const CHUNK: usize = 64 * 1024;
