//! Command-line interface: `quinn-perf server` and `quinn-perf client`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use stoq_perf::cli::parse_size;
use stoq_perf::client::{bind_for, resolve};

use crate::client::{Mode, run_client};
use crate::tls::{insecure_client_config, server_config};

/// quinn-perf: the STOQ perf transfer over quinn, every byte verified.
#[derive(Debug, Parser)]
#[command(name = "quinn-perf", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// quinn-perf's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve PERF uploads and downloads (self-signed certificate).
    Server(ServerArgs),
    /// Run one transfer against a server (certificate NOT verified).
    Client(ClientArgs),
}

/// `quinn-perf server` options.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "[::]:4433")]
    pub listen: SocketAddr,
}

/// `quinn-perf client` options.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address: `host:port` or `[v6]:port`.
    pub addr: String,
    /// Direction of the payload.
    #[arg(long, value_enum, default_value_t = Mode::Download)]
    pub mode: Mode,
    /// Payload bytes (suffixes K, M, G, T = powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub bytes: u64,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the tokio runtime: {e}")),
    };
    match cli.command {
        Command::Server(a) => rt.block_on(server(&a)),
        Command::Client(a) => rt.block_on(client(&a)),
    }
}

async fn server(a: &ServerArgs) -> ExitCode {
    let cfg = match server_config() {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let endpoint = match crate::endpoint(a.listen, Some(cfg)) {
        Ok(e) => e,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", a.listen)),
    };
    let addr = endpoint.local_addr().map_or_else(|_| a.listen.to_string(), |a| a.to_string());
    log::info!("quinn-perf server listening on {addr} (quinn, self-signed certificate generated at start)");
    crate::serve(endpoint).await;
    ExitCode::SUCCESS
}

async fn client(a: &ClientArgs) -> ExitCode {
    let peer = match resolve(&a.addr) {
        Ok(p) => p,
        Err(e) => return fail(&e.to_string()),
    };
    let mut endpoint = match crate::endpoint(bind_for(peer), None) {
        Ok(e) => e,
        Err(e) => return fail(&format!("cannot open a UDP socket: {e}")),
    };
    match insecure_client_config() {
        Ok(c) => endpoint.set_default_client_config(c),
        Err(e) => return fail(&e.to_string()),
    }
    log::warn!("benchmark client: the server's certificate is NOT verified");
    let result = run_client(&endpoint, peer, a.mode, a.bytes).await;
    endpoint.wait_idle().await;
    match result {
        Ok(o) => {
            println!("{}", if a.json { serde_json::to_string(&o).unwrap_or_default() } else { o.line() });
            ExitCode::SUCCESS
        }
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({ "mode": a.mode, "bytes": a.bytes, "verified": false, "error": e.to_string() })
                );
            }
            fail(&e.to_string())
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("quinn-perf: {msg}");
    ExitCode::FAILURE
}
