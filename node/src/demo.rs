//! `stoq-node demo`: a server and a client in one process over loopback, an
//! ECHO round trip and verified PERF transfers in both directions, with a
//! summary of what the backend can do and what the transfers measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hw_detect::{Capabilities, Selection};
use serde::Serialize;
use stoq_core::io::IoCapabilities;
use stoq_core::{ClientConfig, DevPki, Endpoint, ServerConfig};
use stoq_perf::Report;
use stoq_perf::client::{Amount, ClientError, ClientOptions, Mode, Output, run_client_on};
use stoq_perf::pattern::fill;
use stoq_perf::profile::Chosen;
use stoq_perf::report::fmt_per_cpu;

use crate::echo::TAG_ECHO;
use crate::serve::serve;

/// What the demo moves.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Bytes per perf transfer.
    pub bytes: u64,
    /// Streams per perf transfer.
    pub streams: usize,
    /// Bytes for the echo round trip.
    pub echo_bytes: usize,
    /// Backend and profile of both endpoints (default: portable, no profile).
    pub chosen: Chosen,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { bytes: 256 << 20, streams: 4, echo_bytes: 64 << 10, chosen: Chosen::default() }
    }
}

/// Everything the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Packet backend.
    pub backend: String,
    /// What the probe found, if it ran.
    pub probe: Option<Capabilities>,
    /// The probe's tier and profile the endpoints ran with, if any.
    pub selection: Option<Selection>,
    /// The backend's capabilities.
    pub capabilities: IoCapabilities,
    /// Largest UDP payload.
    pub max_payload: usize,
    /// Bytes that went through ECHO and came back identical.
    pub echo_bytes: usize,
    /// The verified download.
    pub download: Report,
    /// The verified upload.
    pub upload: Report,
    /// The `GLIBC_TUNABLES` environment variable, if set.
    pub glibc_tunables: Option<String>,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The development PKI could not be made.
    #[error(transparent)]
    Tls(#[from] stoq_core::TlsError),
    /// An endpoint could not start.
    #[error(transparent)]
    Endpoint(#[from] stoq_core::EndpointError),
    /// The client could not connect.
    #[error(transparent)]
    Connect(#[from] stoq_core::ConnectError),
    /// The echo stream failed.
    #[error("echo round trip failed: {0}")]
    Echo(String),
    /// The echo came back different.
    #[error("echo round trip returned {got} bytes that differ from the {sent} sent (first difference at {at})")]
    EchoMismatch {
        /// Bytes sent.
        sent: usize,
        /// Bytes returned.
        got: usize,
        /// First differing offset.
        at: usize,
    },
    /// A perf transfer failed.
    #[error("perf {mode} failed: {source}")]
    Perf {
        /// Which transfer.
        mode: &'static str,
        /// Why.
        source: ClientError,
    },
}

/// Runs the demo and returns its measurements.
pub fn run_demo(opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    let pki = DevPki::generate(&["localhost", "127.0.0.1"])?;
    let mut cfg = ServerConfig::new(pki.server_tls());
    opts.chosen.apply(&mut cfg.endpoint);
    let server = Endpoint::server("127.0.0.1:0".parse().expect("literal address"), cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ep, st) = (server.clone(), stop.clone());
    let serving = std::thread::spawn(move || serve(&ep, &st));
    let result = demo_with_server(&server, &pki, opts);
    stop.store(true, Ordering::Relaxed);
    let _ = serving.join();
    server.shutdown();
    result
}

fn demo_with_server(server: &Endpoint, pki: &DevPki, opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    let mut cfg = ClientConfig::new(pki.client_tls());
    opts.chosen.apply(&mut cfg.endpoint);
    let max_payload = cfg.endpoint.transport.max_udp_payload;
    let client = Endpoint::client("127.0.0.1:0".parse().expect("literal address"), cfg)?;
    let peer = server.local_addr();
    echo_round_trip(&client, peer, opts.echo_bytes)?;

    let mut perf = ClientOptions::new(peer.to_string(), pki.client_tls());
    perf.amount = Amount::Bytes(opts.bytes);
    perf.streams = opts.streams;
    perf.max_payload = max_payload;
    perf.output = Output::Quiet;
    perf.mode = Mode::Download;
    let download =
        run_client_on(&client, peer, &perf).map_err(|source| DemoError::Perf { mode: "download", source })?;
    perf.mode = Mode::Upload;
    let upload = run_client_on(&client, peer, &perf).map_err(|source| DemoError::Perf { mode: "upload", source })?;

    Ok(DemoReport {
        backend: client.backend().name().to_owned(),
        probe: opts.chosen.probe.clone(),
        selection: opts.chosen.selection.clone(),
        capabilities: client.capabilities(),
        max_payload,
        echo_bytes: opts.echo_bytes,
        download,
        upload,
        glibc_tunables: std::env::var("GLIBC_TUNABLES").ok(),
    })
}

/// Sends `len` bytes through ECHO and checks they come back identical.
pub fn echo_round_trip(client: &Endpoint, peer: std::net::SocketAddr, len: usize) -> Result<(), DemoError> {
    let conn = client.connect(peer, "localhost")?;
    let (mut send, mut recv) = conn.open_bi().map_err(|e| DemoError::Echo(e.to_string()))?;
    let mut msg = vec![0u8; len];
    fill(0xec40, 0, &mut msg);
    // The echo comes back while we send: read it on another thread so that
    // neither side's buffers can fill up and stall.
    let reader = std::thread::spawn(move || recv.read_to_end(len + 1));
    let sent = send.write_all(&TAG_ECHO).and_then(|()| send.write_all(&msg)).and_then(|()| send.finish());
    let back = reader.join().map_err(|_| DemoError::Echo("echo reader panicked".into()))?;
    sent.map_err(|e| DemoError::Echo(e.to_string()))?;
    let back = back.map_err(|e| DemoError::Echo(e.to_string()))?;
    conn.close(0, b"echo done");
    if back != msg {
        let at = back.iter().zip(&msg).position(|(a, b)| a != b).unwrap_or(back.len().min(msg.len()));
        return Err(DemoError::EchoMismatch { sent: msg.len(), got: back.len(), at });
    }
    Ok(())
}

impl DemoReport {
    /// A human summary.
    pub fn summary(&self) -> String {
        let c = &self.capabilities;
        let mut s = String::new();
        s += "STOQ node demo: server and client in this process over 127.0.0.1, TLS 1.3 with a generated dev CA\n";
        s += &format!("backend: {}\n", self.backend);
        s += &format!(
            "  capabilities (what the backend's socket accepted, not a hardware probe): GSO segments {}, GRO {}, ECN {}, \
             kernel pacing {}, rx batch {}, tx batch {}, socket buffers {} KiB receive / {} KiB send\n",
            c.max_gso_segments,
            yes(c.gro),
            yes(c.ecn),
            yes(c.kernel_pacing),
            c.rx_batch,
            c.tx_batch,
            c.recv_buffer >> 10,
            c.send_buffer >> 10
        );
        s += &match (&self.probe, &self.selection) {
            (Some(caps), Some(sel)) => hw_detect::report::render(caps, Some(sel), sel.interface.as_deref()),
            _ => "profile: none (--tier none): built-in defaults and the backend asked for\n".to_owned(),
        };
        s += &format!("max UDP payload: {} bytes\n", self.max_payload);
        s += &format!("echo: {} bytes sent through ECHO came back identical\n", self.echo_bytes);
        for (name, r) in [("download", &self.download), ("upload", &self.upload)] {
            s += &format!(
                "perf {name:<8}: {} bytes verified over {} streams in {:.3} s = {:.3} Gbit/s; datagrams tx {} rx {}; lost {}; rtt {:.3} ms; CPU {:.2} s user + {:.2} s sys = {}\n",
                r.bytes,
                r.streams,
                r.seconds,
                r.goodput_gbps,
                r.datagrams_sent,
                r.datagrams_received,
                r.packets_lost,
                r.rtt_ms,
                r.cpu_user_s,
                r.cpu_sys_s,
                fmt_per_cpu(r.bytes_per_cpu_s)
            );
        }
        s += "  (CPU is the whole process: client and server ends together; datagrams are the client endpoint's)\n";
        s += &match &self.glibc_tunables {
            Some(v) => format!("GLIBC_TUNABLES: set ({v})\n"),
            None => "GLIBC_TUNABLES: not set\n".to_owned(),
        };
        s += "result: every byte verified";
        s
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
