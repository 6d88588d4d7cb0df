//! Command-line interface of `stoq-node`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stoq_perf::cli::{CertArgs, EXIT_USAGE, parse_size};
use stoq_perf::probe::{ProbeArgs, run_probe};
use stoq_perf::profile::ProfileArgs;

use crate::demo::{DemoOptions, run_demo};
use crate::serve::run_serve;

/// stoq-node: a STOQ server hosting services, and a self-contained demo.
#[derive(Debug, Parser)]
#[command(name = "stoq-node", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// stoq-node's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ECHO and PERF streams.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "[::]:4433")]
        listen: SocketAddr,
        /// Certificate options.
        #[command(flatten)]
        cert: CertArgs,
        /// Tier, backend and interface (default: the probe's choice).
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Run a server and a client in this process and report what they measure.
    Demo {
        /// Bytes per perf transfer (suffixes K, M, G, T).
        #[arg(long, value_parser = parse_size, default_value = "256M")]
        bytes: u64,
        /// Streams per perf transfer.
        #[arg(long, default_value_t = 4)]
        streams: usize,
        /// Tier, backend and interface (default: the probe's choice for
        /// loopback).
        #[command(flatten)]
        profile: ProfileArgs,
        /// Print the measurements as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Probe the host and its network interfaces, and show the tier and
    /// profile STOQ would run with, with every step-down reason.
    Probe(ProbeArgs),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { listen, cert, profile } => match profile.resolve(true, listen.ip(), None) {
            Ok(chosen) => run_serve(listen, &cert.source(), &chosen),
            Err(e) => usage(&e),
        },
        Command::Probe(args) => run_probe(&args),
        Command::Demo { bytes, streams, profile, json } => {
            if streams == 0 {
                return usage("--streams must be at least 1");
            }
            let chosen = match profile.resolve(true, std::net::Ipv4Addr::LOCALHOST.into(), None) {
                Ok(c) if c.backend == stoq_core::io::BackendKind::AfXdp => {
                    return usage(
                        "the demo runs on loopback, which AF_XDP cannot serve; run stoq-perf across a veth pair \
                         (tools/bench-xdp.sh) or a NIC instead",
                    );
                }
                Ok(c) => c,
                Err(e) => return usage(&e),
            };
            match run_demo(&DemoOptions { bytes, streams, chosen, ..DemoOptions::default() }) {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    } else {
                        println!("{}", r.summary());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("stoq-node demo FAILED: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("stoq-node: {msg}");
    ExitCode::from(EXIT_USAGE)
}
