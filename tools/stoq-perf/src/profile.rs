//! `--tier`, `--backend` and `--interface`: run with the profile hw-detect
//! chooses for this host, a tier the operator names, or fixed built-in
//! settings. Shared by stoq-perf and stoq-node.

use std::net::IpAddr;

use clap::Args;
use hw_detect::{Capabilities, Overrides, Selection};
use stoq_core::EndpointConfig;
use stoq_core::io::BackendKind;
use stoq_core::profile::Tier;

use crate::cli::parse_backend;

/// How an endpoint's settings are chosen.
#[derive(Debug, Clone, Default, Args)]
pub struct ProfileArgs {
    /// Tier: `auto` (probe the host and pick), `none` (built-in defaults, no
    /// probe), or slow, home, standard, performance, enterprise, datacenter.
    /// [default: none for stoq-perf, auto for stoq-node]
    #[arg(long)]
    pub tier: Option<String>,
    /// Packet backend: portable, linux-batch or io_uring. Default: the
    /// profile's choice (portable with --tier none). An explicit backend the
    /// host cannot run is an error.
    #[arg(long)]
    pub backend: Option<String>,
    /// Size the profile for this network interface (default: for a client
    /// the one its route to the server leaves by; else the one holding the
    /// bind address; else the default route's).
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
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
}

impl ProfileArgs {
    /// Resolves the arguments, probing the host unless the tier is `none`.
    /// `auto_by_default` says what a missing `--tier` means; `bind` is the
    /// address the endpoint will use and `peer` the server a client talks
    /// to (its route names the interface). Errors are usage messages.
    pub fn resolve(&self, auto_by_default: bool, bind: IpAddr, peer: Option<IpAddr>) -> Result<Chosen, String> {
        let backend = self.backend.as_deref().map(parse_backend).transpose()?;
        let default = if auto_by_default { "auto" } else { "none" };
        // `None`: the probe picks the tier.
        let tier = match self.tier.as_deref().unwrap_or(default) {
            "auto" => None,
            "none" if self.interface.is_some() => return Err("--interface needs a profile: drop --tier none".into()),
            "none" => return Ok(Chosen { backend: backend.unwrap_or(BackendKind::Portable), ..Chosen::default() }),
            name => Some(name.parse::<Tier>().map_err(|e| format!("--tier: {e}, auto or none"))?),
        };
        let caps = hw_detect::probe();
        let o = Overrides { interface: self.interface.clone(), tier, backend, bind: Some(bind), peer };
        let selection = hw_detect::select(&caps, &o).map_err(|e| e.to_string())?;
        Ok(Chosen { backend: selection.profile.backend, selection: Some(selection), probe: Some(caps) })
    }
}

impl Chosen {
    /// Applies the backend and, if there is one, the whole profile.
    pub fn apply(&self, cfg: &mut EndpointConfig) {
        match &self.selection {
            Some(s) => s.profile.apply(cfg),
            None => cfg.backend = self.backend,
        }
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
        ProfileArgs { tier: tier.map(Into::into), backend: backend.map(Into::into), interface: None }
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
        let a = ProfileArgs { tier: Some("none".into()), backend: None, interface: Some("eth0".into()) };
        assert!(a.resolve(true, LOOPBACK, None).unwrap_err().contains("--interface"));
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
