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
//!   fixture trees checked into `fixtures/` (a virtio VM, loopback, veth,
//!   e1000e, igc, mlx5, Wi-Fi);
//! - `ethtool`: the ethtool ioctls, with pure decoders for what they return;
//! - `netlink`: XDP features (netdev generic netlink) and egress shaping
//!   (rtnetlink qdiscs and classes);
//! - `host`: CPU topology (hwloc), io_uring opcodes, UDP GSO/GRO, process
//!   capabilities;
//! - [`probe()`] assembles them, falling back field by field;
//! - [`select()`] is the pure function from capabilities to tier and profile,
//!   with the reason for every step down.
//!
//! ```no_run
//! let caps = hw_detect::probe();
//! let choice = hw_detect::select(&caps, &hw_detect::Overrides::default()).expect("a profile");
//! println!("{}: {:?}", choice.interface.as_deref().unwrap_or("?"), choice.tier);
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod model;
pub mod procfs;
pub mod sysfs;

pub use model::*;
#[cfg(target_os = "linux")]
pub mod linux;
mod probe;
pub mod report;
mod select;

pub use probe::{probe, probe_at};
pub use select::{Overrides, SelectError, Selection, select};
