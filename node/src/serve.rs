//! `stoq-node serve`: a STOQ server that dispatches each client stream by its
//! service tag to the services this node hosts.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use stoq_core::{Connection, Endpoint, RecvStream, SendStream, ServerConfig};
use stoq_perf::profile::Chosen;
use stoq_perf::protocol::TAG_PERF;
use stoq_perf::server::{CertSource, PerfService, StreamHandler, announce_ca, reject_stream, run_server_with};

use crate::echo::{TAG_ECHO, handle_echo_stream};

/// The node's services: `ECHO` and `PERF`; other tags are refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeServices {
    perf: PerfService,
}

impl StreamHandler for NodeServices {
    fn handle(&self, conn: &Connection, tag: [u8; 4], send: SendStream, recv: RecvStream) {
        match tag {
            TAG_ECHO => {
                let id = recv.id();
                match handle_echo_stream(send, recv) {
                    Ok(n) => log::info!("{} echo stream {id}: {n} bytes echoed", conn.remote_addr()),
                    Err(e) => log::warn!("{} echo stream {id}: {e}", conn.remote_addr()),
                }
            }
            TAG_PERF => self.perf.serve_perf(conn, send, recv),
            other => reject_stream(conn, other, send, recv),
        }
    }
}

/// Why the node could not start serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The certificate could not be set up.
    #[error(transparent)]
    Cert(#[from] stoq_perf::server::CertError),
    /// The endpoint could not start.
    #[error(transparent)]
    Endpoint(#[from] stoq_core::EndpointError),
}

/// Starts a node server endpoint with the node's services.
pub fn start_server(
    listen: SocketAddr,
    cert: &CertSource,
    chosen: &Chosen,
) -> Result<(Endpoint, Option<std::path::PathBuf>), ServeError> {
    let (tls, ca) = cert.load()?;
    let mut cfg = ServerConfig::new(tls);
    chosen.apply(&mut cfg.endpoint);
    Ok((Endpoint::server(listen, cfg)?, ca))
}

/// Serves the node's services on `endpoint` until `stop` is set.
pub fn serve(endpoint: &Endpoint, stop: &AtomicBool) {
    run_server_with(endpoint, stop, Arc::new(NodeServices::default()));
}

/// Runs `stoq-node serve` until the process is killed.
pub fn run_serve(listen: SocketAddr, cert: &CertSource, chosen: &Chosen) -> ExitCode {
    eprintln!("{}", chosen.describe());
    let (endpoint, ca) = match start_server(listen, cert, chosen) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("stoq-node: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("stoq-node serving ECHO and PERF on {} ({} backend)", endpoint.local_addr(), chosen.backend);
    if let Some(ca) = ca {
        announce_ca(&ca);
    }
    serve(&endpoint, &AtomicBool::new(false));
    ExitCode::SUCCESS
}
