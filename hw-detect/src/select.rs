//! From [`Capabilities`] to a tier and a profile the host can run: a pure
//! function, so every tier boundary and every step down is tested without
//! hardware.
//!
//! 1. The interface: `--interface`, else the one the route to the peer
//!    leaves by, else the one holding the bind address, else the default
//!    route's.
//! 2. The tier from its effective rate (the smaller of link speed and egress
//!    shaping). An unknown rate is a real case (virtio reports no speed,
//!    loopback has no link): the tier is chosen from what is known and the
//!    reason says so.
//! 3. The tier's profile ([`Profile::for_tier`]) sized from the measured
//!    rate, MTU, queues and CPUs.
//! 4. The backend: the tier's preferences in order, skipping each one the
//!    host cannot run and recording why.

use std::net::IpAddr;

use stoq_core::io::BackendKind;
use stoq_core::profile::{Profile, ProfileInputs, Tier};

use crate::model::{Capabilities, Interface, InterfaceKind, Known};
use crate::report::mbps;

/// What the operator asked for explicitly.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Size the profile for this interface.
    pub interface: Option<String>,
    /// Use this tier whatever the measured rate.
    pub tier: Option<Tier>,
    /// Use this backend; an error if the host cannot run it.
    pub backend: Option<BackendKind>,
    /// The address the endpoint will bind, to find its interface.
    pub bind: Option<IpAddr>,
    /// The peer a client will talk to: its route names the interface.
    pub peer: Option<IpAddr>,
}

/// The outcome: a tier, its profile, and the reasons behind both.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Selection {
    /// The interface the profile is sized for, if any.
    pub interface: Option<String>,
    /// Why that interface.
    pub interface_reason: String,
    /// Its effective rate in bit/s, if known.
    pub effective_rate_bps: Option<u64>,
    /// The tier.
    pub tier: Tier,
    /// Why that tier.
    pub tier_reason: String,
    /// The settings to run with.
    pub profile: Profile,
    /// Every step down from a preferred choice, with its reason (e.g.
    /// "AF_XDP: no CAP_BPF").
    pub steps: Vec<String>,
}

/// Why no profile can honour the operator's request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// `--interface` names no interface.
    #[error("no interface named {name:?}; this host has: {available}")]
    NoInterface {
        /// The requested name.
        name: String,
        /// The interfaces that exist.
        available: String,
    },
    /// `--backend` names a backend this host cannot run.
    #[error("backend {backend} cannot run here: {reasons}; choose another with --backend, or leave it to the probe")]
    Backend {
        /// The requested backend.
        backend: BackendKind,
        /// Why not.
        reasons: String,
    },
}

/// The backends a tier prefers, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Candidate {
    AfXdp(XdpNeed),
    Socket(BackendKind),
}

/// What AF_XDP needs from the driver to be worth choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XdpNeed {
    /// Any XDP, generic (skb) mode included: only when asked for by name.
    Any,
    /// Native (driver-mode) XDP with redirect.
    Native,
    /// Native XDP and zero-copy AF_XDP.
    ZeroCopy,
}

fn preferences(tier: Tier) -> &'static [Candidate] {
    use BackendKind::*;
    use Candidate::*;
    match tier {
        Tier::Slow => &[Socket(Portable)],
        Tier::Home => &[Socket(LinuxBatch), Socket(Portable)],
        Tier::Standard => &[Socket(LinuxBatch), Socket(IoUring), Socket(Portable)],
        Tier::Performance => &[Socket(IoUring), Socket(LinuxBatch), Socket(Portable)],
        Tier::Enterprise => &[Candidate::AfXdp(XdpNeed::Native), Socket(IoUring), Socket(LinuxBatch), Socket(Portable)],
        Tier::DataCenter => {
            &[Candidate::AfXdp(XdpNeed::ZeroCopy), Socket(IoUring), Socket(LinuxBatch), Socket(Portable)]
        }
    }
}

/// Picks the tier and a profile the host can run. Pure: the same
/// capabilities and overrides always give the same answer.
pub fn select(caps: &Capabilities, o: &Overrides) -> Result<Selection, SelectError> {
    let (iface, interface_reason) = choose_interface(caps, o)?;
    let rate = iface.and_then(Interface::effective_rate_bps);
    let measured = match iface {
        Some(i) => measured_tier(i),
        None => (Tier::Standard, "Standard assumed: no interface found".to_owned()),
    };
    let (tier, tier_reason) = match o.tier {
        Some(t) => (t, format!("{t} forced by --tier (the probe's choice: {})", measured.1)),
        None => measured,
    };
    let mut steps = Vec::new();
    // Size for the measured rate only if it belongs to the tier in use.
    let sizing_rate = rate.filter(|r| Tier::for_rate(*r) == tier);
    if let (Some(r), None) = (rate, sizing_rate) {
        steps.push(format!("sized for {tier}'s nominal {}, not the measured {}", mbps(tier.nominal_rate()), mbps(r)));
    }
    let cpus = shard_cpus(caps, iface);
    let inputs = ProfileInputs {
        rate_bps: sizing_rate,
        mtu: iface.and_then(|i| i.mtu.get().copied()),
        cpus: cpus.unwrap_or(1),
        rx_queues: iface.and_then(|i| i.queues.get().map(|q| q.rx)),
        fq_qdisc: iface.and_then(|i| i.qdisc.get()).is_some_and(|q| q.kind == "fq"),
    };
    if cpus.is_none() {
        steps.push("CPU count unknown: one shard".to_owned());
    }
    if inputs.mtu.is_none() {
        steps.push("MTU unknown: 1200-byte UDP payloads (QUIC's minimum, which every path carries)".to_owned());
    }
    let mut profile = Profile::for_tier(tier, &inputs);
    profile.backend = match o.backend {
        Some(b) => {
            let why = match b {
                // Asked for by name: generic (skb-mode) XDP will do where
                // the driver has no native XDP.
                BackendKind::AfXdp => af_xdp_problems(caps, iface, XdpNeed::Any),
                _ => socket_backend_problems(caps, b),
            };
            if !why.is_empty() {
                return Err(SelectError::Backend { backend: b, reasons: why.join("; ") });
            }
            if b != profile.backend {
                steps.push(format!("backend {b} chosen by --backend (the tier prefers {})", profile.backend));
            }
            b
        }
        None => choose_backend(caps, iface, tier, &mut steps),
    };
    Ok(Selection {
        interface: iface.map(|i| i.name.clone()),
        interface_reason,
        effective_rate_bps: rate,
        tier,
        tier_reason,
        profile,
        steps,
    })
}

fn choose_interface<'a>(caps: &'a Capabilities, o: &Overrides) -> Result<(Option<&'a Interface>, String), SelectError> {
    if let Some(name) = &o.interface {
        return match caps.interface(name) {
            Some(i) => Ok((Some(i), "chosen by --interface".to_owned())),
            None => Err(SelectError::NoInterface {
                name: name.clone(),
                available: caps.interfaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
            }),
        };
    }
    let loopback = || caps.interfaces.iter().find(|i| i.kind == InterfaceKind::Loopback);
    if let Some(ip) = o.peer {
        if let Some(i) = loopback().filter(|_| ip.is_loopback()) {
            return Ok((Some(i), format!("the peer {ip} is loopback")));
        }
        if let Some(i) = caps.host.route_to(ip).and_then(|r| caps.interface(&r.iface)) {
            return Ok((Some(i), format!("the route to the peer {ip} leaves by it")));
        }
    }
    if let Some(ip) = o.bind.filter(|ip| !ip.is_unspecified()) {
        if let Some(i) = loopback().filter(|_| ip.is_loopback()) {
            return Ok((Some(i), format!("the bind address {ip} is loopback")));
        }
        if let Some(i) = caps.interfaces.iter().find(|i| i.addresses.contains(&ip)) {
            return Ok((Some(i), format!("it holds the bind address {ip}")));
        }
    }
    if let Some(routes) = caps.host.routes.get() {
        let defaults = crate::model::default_route_interfaces(routes);
        if let Some(i) = defaults.iter().find_map(|n| caps.interface(n)) {
            return Ok((Some(i), "it carries the default route".to_owned()));
        }
    }
    let up: Vec<&Interface> = caps
        .interfaces
        .iter()
        .filter(|i| i.kind != InterfaceKind::Loopback && i.operstate.get().is_some_and(|s| s == "up"))
        .collect();
    match up.as_slice() {
        [only] => Ok((Some(only), "no default route; it is the only interface that is up".to_owned())),
        _ => Ok((None, format!("no default route and {} interfaces up: none chosen", up.len()))),
    }
}

/// CPUs the shards may use: those NUMA-local to the NIC that this process
/// is allowed to run on (hwloc lists allowed CPUs only), or either alone.
fn shard_cpus(caps: &Capabilities, iface: Option<&Interface>) -> Option<usize> {
    let allowed: Option<Vec<usize>> =
        caps.host.cpu.get().map(|c| c.numa_nodes.iter().flat_map(|n| n.cpus.iter().copied()).collect());
    let local = iface.and_then(|i| i.local_cpus.get());
    let n = match (local, &allowed) {
        (Some(l), Some(a)) if !a.is_empty() => l.iter().filter(|c| a.contains(c)).count(),
        (Some(l), _) => l.len(),
        (None, _) => caps.host.cpu.get().map_or(0, |c| c.threads),
    };
    (n > 0).then_some(n)
}

/// The tier an interface's measurements support, with the reason.
fn measured_tier(i: &Interface) -> (Tier, String) {
    let shaped = i.qdisc.get().and_then(|q| q.rate_bps.map(|r| (q.kind.as_str(), r)));
    let (rate, why) = match (i.link_bps(), shaped) {
        (Known::Known(l), Some((kind, s))) if s < l => {
            (s, format!("{kind} shaping to {} below the {} link", mbps(s), mbps(l)))
        }
        (Known::Known(l), _) => (l, format!("link speed {}", mbps(l))),
        (Known::Unknown(_), Some((kind, s))) => (s, format!("{kind} shaping to {} (link speed unknown)", mbps(s))),
        (Known::Unknown(why), None) => return unknown_rate_tier(i.kind, &why),
    };
    let t = Tier::for_rate(rate);
    (t, format!("{t}: effective rate {} ({why})", mbps(rate)))
}

/// A safe tier for an interface whose rate nothing reports.
fn unknown_rate_tier(kind: InterfaceKind, why: &str) -> (Tier, String) {
    match kind {
        InterfaceKind::Wireless => {
            (Tier::Home, format!("Home assumed: Wi-Fi link rate unknown ({why}); Wi-Fi rarely sustains 1 Gbit/s"))
        }
        InterfaceKind::Loopback => (
            Tier::Standard,
            "Standard assumed: loopback has no link rate; the per-connection adapter grows windows within the tier"
                .to_owned(),
        ),
        _ => (
            Tier::Standard,
            format!(
                "Standard assumed: link speed unknown ({why}); sized for 2.5 Gbit/s and the per-connection adapter \
                 moves within the tier"
            ),
        ),
    }
}

fn choose_backend(caps: &Capabilities, iface: Option<&Interface>, tier: Tier, steps: &mut Vec<String>) -> BackendKind {
    for &c in preferences(tier) {
        let (name, kind, why) = match c {
            Candidate::AfXdp(need) => ("AF_XDP".to_owned(), BackendKind::AfXdp, af_xdp_problems(caps, iface, need)),
            Candidate::Socket(b) => (b.name().to_owned(), b, socket_backend_problems(caps, b)),
        };
        if why.is_empty() {
            return kind;
        }
        steps.extend(why.into_iter().map(|w| format!("{name}: {w}")));
    }
    BackendKind::Portable
}

/// Why the host cannot run AF_XDP (every reason, not just the first).
fn af_xdp_problems(caps: &Capabilities, iface: Option<&Interface>, need: XdpNeed) -> Vec<String> {
    let mut why = Vec::new();
    if !cfg!(target_os = "linux") {
        why.push("needs Linux".to_owned());
    }
    match caps.host.privileges.get() {
        Some(p) => {
            let old_kernel = caps.host.kernel.get().is_some_and(|k| k.version < (5, 8, 0));
            if !p.net_admin {
                why.push("no CAP_NET_ADMIN".to_owned());
            }
            if !(p.bpf || p.sys_admin) {
                why.push("no CAP_BPF".to_owned());
            } else if old_kernel && !p.sys_admin {
                why.push("kernel before 5.8 needs CAP_SYS_ADMIN for BPF".to_owned());
            }
        }
        None => why.push("process capabilities unknown".to_owned()),
    }
    match iface {
        None => why.push("no interface to attach to".to_owned()),
        Some(i) if matches!(i.kind, InterfaceKind::Loopback | InterfaceKind::Other) => {
            why.push(format!("{} is not an Ethernet interface", i.name));
        }
        Some(_) if need == XdpNeed::Any => {}
        Some(i) => match &i.xdp {
            Known::Unknown(w) => why.push(format!("XDP support unknown ({w})")),
            Known::Known(x) if !x.native || !x.redirect => why.push("driver has no native XDP".to_owned()),
            Known::Known(x) if need == XdpNeed::ZeroCopy && !x.zero_copy => {
                why.push("driver has no zero-copy AF_XDP".to_owned());
            }
            Known::Known(_) => {}
        },
    }
    why
}

/// Why the host cannot run a socket backend (empty: it can).
fn socket_backend_problems(caps: &Capabilities, b: BackendKind) -> Vec<String> {
    let linux = cfg!(target_os = "linux");
    match b {
        BackendKind::Portable => vec![],
        BackendKind::LinuxBatch if !linux => vec!["needs Linux".to_owned()],
        BackendKind::LinuxBatch => vec![],
        BackendKind::IoUring => match caps.host.io_uring.get() {
            _ if !linux => vec!["needs Linux".to_owned()],
            None => vec!["io_uring support unknown".to_owned()],
            Some(u) if u.usable_by_stoq => vec![],
            Some(u) if u.missing.is_empty() => vec!["unusable".to_owned()],
            Some(u) => u.missing.clone(),
        },
        _ => vec![format!("{b} is not a socket backend")],
    }
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
