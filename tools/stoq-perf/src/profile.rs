//! `--tier`, `--backend` and `--interface`: run with the profile hw-detect
//! chooses for this host, a tier the operator names, or fixed built-in
//! settings. Shared by stoq-perf and stoq-node.

use std::net::IpAddr;
use std::sync::Arc;

use clap::Args;
use hw_detect::{Capabilities, Overrides, Selection};
use stoq_core::EndpointConfig;
use stoq_core::io::{BackendKind, OpenBackend};
use stoq_core::profile::Tier;
use stoq_xdp::{AttachMode, XdpConfig, XdpOpener};

use crate::cli::parse_backend;

/// How an endpoint's settings are chosen.
#[derive(Debug, Clone, Default, Args)]
pub struct ProfileArgs {
    /// Tier: `auto` (probe the host and pick), `none` (built-in defaults, no
    /// probe), or slow, home, standard, performance, enterprise, datacenter.
    /// [default: none for stoq-perf, auto for stoq-node]
    #[arg(long)]
    pub tier: Option<String>,
    /// Packet backend: portable, linux-batch, io_uring or af_xdp. Default:
    /// the profile's choice (portable with --tier none). An explicit backend
    /// the host cannot run is an error.
    #[arg(long)]
    pub backend: Option<String>,
    /// Size the profile for this network interface (default: for a client
    /// the one its route to the server leaves by; else the one holding the
    /// bind address; else the default route's). The interface af_xdp
    /// attaches to.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// AF_XDP settings.
    #[command(flatten)]
    pub xdp: XdpArgs,
}

/// `--xdp-mode` and `--xdp-ring`: how the af_xdp backend runs (shared by
/// every command that can open it).
#[derive(Debug, Clone, Default, Args)]
pub struct XdpArgs {
    /// Where af_xdp runs its XDP program: auto (native if the driver has
    /// it), native or generic.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = parse_xdp_mode)]
    pub xdp_mode: AttachMode,
    /// af_xdp ring entries per queue (fill, RX, TX, completion; the UMEM
    /// holds twice as many 4 KiB frames): a power of two from 512 to 8192.
    /// Default: sized from the profile's socket buffers.
    #[arg(long, value_name = "N", value_parser = parse_xdp_ring)]
    pub xdp_ring: Option<u32>,
}

impl XdpArgs {
    /// The AF_XDP backend's settings for `interface`.
    pub fn config(&self, interface: &str) -> XdpConfig {
        XdpConfig { mode: self.xdp_mode, ring: self.xdp_ring, ..XdpConfig::new(interface) }
    }
}

/// Parses `--xdp-mode`.
pub fn parse_xdp_mode(s: &str) -> Result<AttachMode, String> {
    match s {
        "auto" => Ok(AttachMode::Auto),
        "native" => Ok(AttachMode::Native),
        "generic" => Ok(AttachMode::Generic),
        _ => Err(format!("unknown XDP mode {s:?}: use auto, native or generic")),
    }
}

/// Parses `--xdp-ring`.
pub fn parse_xdp_ring(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && (512..=8192).contains(&n) => Ok(n),
        _ => Err(format!("--xdp-ring {s:?}: use a power of two from 512 to 8192")),
    }
}

/// The outcome: the backend and, unless `--tier none`, the probe's selection.
/// The default is the portable backend without a profile.
#[derive(Debug, Clone, Default)]
pub struct Chosen {
    /// The packet backend.
    pub backend: BackendKind,
    /// The probe's choice, applied by [`Chosen::apply`].
    pub selection: Option<Selection>,
    /// What the probe found.
    pub probe: Option<Capabilities>,
    /// The AF_XDP backend's settings, when it is the backend.
    pub xdp: Option<XdpConfig>,
}

impl ProfileArgs {
    /// Resolves the arguments, probing the host unless the tier is `none`.
    /// `auto_by_default` says what a missing `--tier` means; `bind` is the
    /// address the endpoint will use and `peer` the server a client talks
    /// to (its route names the interface). Errors are usage messages.
    pub fn resolve(&self, auto_by_default: bool, bind: IpAddr, peer: Option<IpAddr>) -> Result<Chosen, String> {
        let backend = self.backend.as_deref().map(parse_backend).transpose()?;
        let default = if auto_by_default { "auto" } else { "none" };
        let af_xdp = backend == Some(BackendKind::AfXdp);
        // `None`: the probe picks the tier.
        let tier = match self.tier.as_deref().unwrap_or(default) {
            "auto" => None,
            "none" if af_xdp => {
                let Some(name) = &self.interface else {
                    return Err(
                        "--backend af_xdp with --tier none needs --interface NAME (the NIC to attach to)".into()
                    );
                };
                return Ok(Chosen {
                    backend: BackendKind::AfXdp,
                    xdp: Some(self.xdp_config(name)),
                    ..Chosen::default()
                });
            }
            "none" if self.interface.is_some() => return Err("--interface needs a profile: drop --tier none".into()),
            "none" => return Ok(Chosen { backend: backend.unwrap_or(BackendKind::Portable), ..Chosen::default() }),
            name => Some(name.parse::<Tier>().map_err(|e| format!("--tier: {e}, auto or none"))?),
        };
        let caps = hw_detect::probe();
        let o = Overrides { interface: self.interface.clone(), tier, backend, bind: Some(bind), peer };
        let selection = hw_detect::select(&caps, &o).map_err(|e| e.to_string())?;
        let xdp = match (selection.profile.backend, &selection.interface) {
            (BackendKind::AfXdp, Some(name)) => Some(self.xdp_config(name)),
            (BackendKind::AfXdp, None) => return Err("af_xdp: no interface to attach to; pass --interface NAME".into()),
            _ => None,
        };
        Ok(Chosen { backend: selection.profile.backend, selection: Some(selection), probe: Some(caps), xdp })
    }

    fn xdp_config(&self, interface: &str) -> XdpConfig {
        self.xdp.config(interface)
    }
}

impl Chosen {
    /// Applies the backend (with the AF_XDP opener when that is the
    /// backend) and, if there is one, the whole profile.
    pub fn apply(&self, cfg: &mut EndpointConfig) {
        match &self.selection {
            Some(s) => s.profile.apply(cfg),
            None => cfg.backend = self.backend,
        }
        cfg.opener = self.opener();
    }

    /// What opens the backend when stoq-core cannot by itself (AF_XDP).
    pub fn opener(&self) -> Option<Arc<dyn OpenBackend>> {
        self.xdp.clone().map(XdpOpener::shared)
    }

    /// One paragraph for stderr: the tier, why, and every step down.
    pub fn describe(&self) -> String {
        let Some(s) = &self.selection else {
            return format!("profile: none (--tier none): built-in defaults, {} backend", self.backend);
        };
        let p = &s.profile;
        let mut out = format!(
            "profile: tier {} for {} ({}): {}; backend {}, batch {}, {:?}, stream buffer {} KiB, max UDP payload {}",
            s.tier,
            s.interface.as_deref().unwrap_or("no interface"),
            s.interface_reason,
            s.tier_reason,
            p.backend,
            p.batch,
            p.congestion_control,
            p.stream_buffer >> 10,
            p.max_udp_payload
        );
        for step in &s.steps {
            out += &format!("\n  step down: {step}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tier: Option<&str>, backend: Option<&str>) -> ProfileArgs {
        ProfileArgs { tier: tier.map(Into::into), backend: backend.map(Into::into), ..ProfileArgs::default() }
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn tier_none_keeps_the_built_in_settings() {
        let c = args(None, None).resolve(false, LOOPBACK, None).unwrap();
        assert_eq!((c.backend, c.selection.is_none()), (BackendKind::Portable, true));
        let c = args(Some("none"), Some("linux-batch")).resolve(true, LOOPBACK, None).unwrap();
        assert_eq!(c.backend, BackendKind::LinuxBatch);
        let mut cfg = EndpointConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.transport.adaptation, None, "no profile, no adapter");
    }

    #[test]
    fn bad_names_are_usage_errors() {
        assert!(args(Some("turbo"), None).resolve(true, LOOPBACK, None).unwrap_err().contains("auto or none"));
        assert!(args(None, Some("warp")).resolve(true, LOOPBACK, None).unwrap_err().contains("portable"));
        let a = ProfileArgs { tier: Some("none".into()), interface: Some("eth0".into()), ..ProfileArgs::default() };
        assert!(a.resolve(true, LOOPBACK, None).unwrap_err().contains("--interface"));
        let e = args(Some("none"), Some("af_xdp")).resolve(true, LOOPBACK, None).unwrap_err();
        assert!(e.contains("needs --interface"), "{e}");
        assert!(parse_xdp_mode("turbo").unwrap_err().contains("auto, native or generic"));
        assert_eq!(parse_xdp_ring("4096"), Ok(4096));
        for bad in ["256", "3000", "16384", "x"] {
            assert!(parse_xdp_ring(bad).unwrap_err().contains("power of two"), "{bad}");
        }
    }

    #[test]
    fn af_xdp_carries_its_interface_to_the_endpoint() {
        let mut a = args(Some("none"), Some("af_xdp"));
        a.interface = Some("veth7".into());
        a.xdp = XdpArgs { xdp_mode: AttachMode::Generic, xdp_ring: Some(1024) };
        let c = a.resolve(false, LOOPBACK, None).unwrap();
        let mut cfg = EndpointConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.backend, BackendKind::AfXdp);
        let xdp = c.xdp.as_ref().unwrap();
        assert_eq!((xdp.interface.as_str(), xdp.mode, xdp.ring), ("veth7", AttachMode::Generic, Some(1024)));
        assert_eq!(cfg.opener.map(|o| o.kind()), Some(BackendKind::AfXdp));
        // Other backends need no opener.
        let c = args(Some("none"), Some("io_uring")).resolve(false, LOOPBACK, None).unwrap();
        assert!(c.opener().is_none());
    }

    #[test]
    fn a_named_tier_is_applied_with_the_probe_around_it() {
        let c = args(Some("home"), Some("portable")).resolve(false, LOOPBACK, None).unwrap();
        let s = c.selection.as_ref().expect("a named tier probes");
        assert_eq!((s.tier, c.backend), (Tier::Home, BackendKind::Portable));
        let mut cfg = EndpointConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.transport.adaptation, Some(s.profile.adaptation));
        assert_eq!(cfg.socket.batch, 16);
        assert!(c.describe().starts_with("profile: tier home for lo"), "{}", c.describe());
    }
}
