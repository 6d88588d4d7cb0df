//! # hw-detect: what this host and its NICs can do
//!
//! `hw-detect` turns the host into plain data, [`Capabilities`], and picks
//! STOQ's adaptive throughput [`Tier`](stoq_core::profile::Tier) and
//! [`Profile`](stoq_core::profile::Profile) from it. Nothing is guessed from
//! an interface name or hard-coded: every field is read from the host
//! (ethtool ioctls, sysfs, procfs, netlink, hwloc, test sockets) or reported
//! as [`Known::Unknown`] with the reason.
//!
//! Layers, each testable on its own:
//! - [`sysfs`] and [`procfs`]: parsers that take a root path, tested against
//!   fixture trees checked into `fixtures/` (a virtio VM with its loopback,
//!   veth, e1000e, igc, mlx5, Wi-Fi);
//! - `linux::ethtool`: the ethtool ioctls (`SIOCETHTOOL`), with pure
//!   decoders for what they return;
//! - `linux::netlink`: XDP features (the `netdev` generic-netlink family)
//!   and egress shaping (rtnetlink qdiscs and classes);
//! - `linux::host`: CPU topology (hwloc), io_uring opcodes and whether
//!   STOQ's io_uring backend opens, UDP GSO/GRO on a test socket, process
//!   capabilities (`capget`), addresses;
//! - [`probe()`] assembles them, falling back field by field;
//!   [`probe_at()`] reads a sysfs/procfs snapshot under another root;
//! - [`select()`] is the pure function from capabilities to tier and profile,
//!   with the reason for every step down; [`report`] renders it for people.
//!
//! Crates do the generic work (netlink-sys and the netlink-packet crates for
//! sockets and framing, hwlocality for topology, caps for `capget`, io-uring
//! for the opcode probe). Three decoders are our own because no maintained
//! crate covers them: the ethtool ioctl structures (the `ethtool` crate
//! speaks ethtool-netlink through tokio), the `netdev` family's attributes,
//! and the `tbf`/`htb` option structs that netlink-packet-route passes
//! through raw. Each is bounds-checked and unit-tested on hand-built
//! buffers; the netlink ones are fuzzed (`fuzz/`, target `netlink_answers`).
//!
//! ```no_run
//! let caps = hw_detect::probe();
//! let choice = hw_detect::select(&caps, &hw_detect::Overrides::default()).expect("a profile");
//! println!("{}: {} because {}", choice.interface.as_deref().unwrap_or("?"), choice.tier, choice.tier_reason);
//! print!("{}", hw_detect::report::render(&caps, Some(&choice), None));
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_os = "linux")]
pub mod linux;
mod model;
mod probe;
pub mod procfs;
pub mod report;
mod select;
pub mod sysfs;

pub use model::*;

pub use probe::{probe, probe_at};
pub use select::{Overrides, SelectError, Selection, select};
