//! # stoq-node: services over STOQ
//!
//! The node is the layer that wires the data plane to services. It hosts a
//! STOQ server whose client-opened bidirectional streams each start with a
//! 4-byte service tag ([`stoq_perf::protocol::read_tag`]) and are dispatched
//! by it: `ECHO` ([`echo`]) sends every byte back, `PERF` is stoq-perf's
//! verified throughput service, anything else is refused (the stream is
//! stopped and finished empty).
//!
//! [`demo::run_demo`] runs a server and a client in one process to show the
//! whole stack working: an echo round trip and verified transfers in both
//! directions, with the figures they measured.
//!
//! ## Example
//!
//! ```
//! use stoq_node::demo::{DemoOptions, run_demo};
//!
//! let report = run_demo(&DemoOptions { bytes: 1 << 20, streams: 2, echo_bytes: 4096, ..DemoOptions::default() }).unwrap();
//! assert_eq!(report.download.bytes, 1 << 20);
//! assert_eq!(report.upload.bytes, 1 << 20);
//! println!("{}", report.summary());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod demo;
pub mod echo;
pub mod serve;
