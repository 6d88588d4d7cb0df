//! Command-line interface of `stoq-node`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stoq_perf::cli::{CertArgs, EXIT_USAGE, parse_backend, parse_size};

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
        /// Packet backend.
        #[arg(long, default_value = "portable")]
        backend: String,
    },
    /// Run a server and a client in this process and report what they measure.
    Demo {
        /// Bytes per perf transfer (suffixes K, M, G, T).
        #[arg(long, value_parser = parse_size, default_value = "256M")]
        bytes: u64,
        /// Streams per perf transfer.
        #[arg(long, default_value_t = 4)]
        streams: usize,
        /// Packet backend (portable, linux-batch, io_uring).
        #[arg(long, default_value = "portable")]
        backend: String,
        /// Print the measurements as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { listen, cert, backend } => match parse_backend(&backend) {
            Ok(b) => run_serve(listen, &cert.source(), b),
            Err(e) => {
                eprintln!("stoq-node: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Demo { bytes, streams, backend, json } => {
            if streams == 0 {
                eprintln!("stoq-node: --streams must be at least 1");
                return ExitCode::from(EXIT_USAGE);
            }
            let backend = match parse_backend(&backend) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("stoq-node: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match run_demo(&DemoOptions { bytes, streams, backend, ..DemoOptions::default() }) {
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
