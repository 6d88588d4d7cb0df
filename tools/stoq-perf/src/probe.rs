//! `stoq-perf probe` and `stoq-node probe`: what hw-detect found on this host, the tier and
//! profile STOQ would run with, and every step-down reason, as a readable
//! report or JSON.

use std::process::ExitCode;

use crate::cli::{EXIT_USAGE, parse_backend};
use clap::Args;
use hw_detect::{Overrides, report};
use stoq_core::profile::Tier;

/// `probe` options.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Show only this interface and size the profile for it.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Show the profile of this tier instead of the measured one.
    #[arg(long)]
    pub tier: Option<String>,
    /// Show the profile with this backend (an error if the host cannot run it).
    #[arg(long)]
    pub backend: Option<String>,
    /// Print `{"capabilities": ..., "selection": ...}` as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the probe and prints the report.
pub fn run_probe(a: &ProbeArgs) -> ExitCode {
    let usage = |e: String| {
        eprintln!("probe: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    let tier = match a.tier.as_deref().map(str::parse::<Tier>).transpose() {
        Ok(t) => t,
        Err(e) => return usage(e.to_string()),
    };
    let backend = match a.backend.as_deref().map(parse_backend).transpose() {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let mut caps = hw_detect::probe();
    let o = Overrides { interface: a.interface.clone(), tier, backend, bind: None, peer: None };
    let selection = match hw_detect::select(&caps, &o) {
        Ok(s) => s,
        Err(e) => return usage(e.to_string()),
    };
    if let Some(name) = &a.interface {
        caps.interfaces.retain(|i| &i.name == name);
    }
    if a.json {
        let v = serde_json::json!({ "capabilities": caps, "selection": selection });
        println!("{}", serde_json::to_string_pretty(&v).expect("plain data serialises"));
    } else {
        print!("{}", report::render(&caps, Some(&selection), None));
    }
    ExitCode::SUCCESS
}
