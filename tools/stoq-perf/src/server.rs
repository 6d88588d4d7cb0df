//! The server side: accepting connections, dispatching streams by service
//! tag, and the PERF handler that verifies uploads and generates downloads.
//!
//! Threads, not an event loop: one per connection and one per stream. The
//! STOQ shard does the packet work; these threads only copy and check bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use stoq_core::{
    Connection, ConnectionError, DevPki, Endpoint, ReadError, RecvStream, SendStream, ServerTls, TlsError, WriteError,
};

use crate::CHUNK;
use crate::pattern::{Generator, Verifier};
use crate::protocol::{
    Direction, PerfResult, PrefixError, REQUEST_LEN, Request, RequestError, Status, TAG_PERF, read_exact, read_tag,
    tag_display,
};
use crate::report::gbps;

/// Names the development certificate is issued for.
pub const DEV_PKI_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Where a server's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files: certificate chain and private key.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A development CA and certificate generated into this directory.
    DevPkiIn(PathBuf),
    /// A development CA and certificate in a fresh temporary directory.
    DevPkiTemp,
}

/// Why the server's certificate could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The --dev-pki directory could not be created.
    #[error("cannot create the dev PKI directory {path}: {source} (choose a writable directory)")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A certificate file given with --cert/--key does not exist.
    #[error("certificate file {0} does not exist (check --cert and --key, or use --dev-pki DIR)")]
    Missing(PathBuf),
    /// Generating the development PKI failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl CertSource {
    /// The server TLS settings, and the CA file clients should trust when a
    /// development PKI was generated.
    pub fn load(&self) -> Result<(ServerTls, Option<PathBuf>), CertError> {
        match self {
            CertSource::Files { cert, key } => {
                for p in [cert, key] {
                    if !p.exists() {
                        return Err(CertError::Missing(p.clone()));
                    }
                }
                Ok((ServerTls::from_pem_files(cert, key), None))
            }
            CertSource::DevPkiIn(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| CertError::CreateDir { path: dir.clone(), source })?;
                let pki = DevPki::generate_in(dir, DEV_PKI_NAMES)?;
                Ok((pki.server_tls(), Some(pki.ca_cert.clone())))
            }
            CertSource::DevPkiTemp => {
                let pki = DevPki::generate(DEV_PKI_NAMES)?;
                Ok((pki.server_tls(), Some(pki.ca_cert.clone())))
            }
        }
    }
}

/// Prints where a generated CA is, for the user to pass to clients.
pub fn announce_ca(ca: &Path) {
    eprintln!("development CA certificate: {} (clients: --ca {})", ca.display(), ca.display());
}

/// What happened on one finished PERF stream, for the server's log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamSummary {
    /// QUIC stream ID.
    pub stream: u64,
    /// Which way the payload went.
    pub direction: Direction,
    /// Upload: bytes verified. Download: bytes handed to the stream.
    pub bytes: u64,
    /// Upload: the status sent back. Download: `ok` unless the stream failed.
    pub status: Status,
    /// Seconds from the request to the end.
    pub seconds: f64,
    /// `bytes` over `seconds`, Gbit/s.
    pub goodput_gbps: f64,
}

impl std::fmt::Display for StreamSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.direction {
            Direction::Upload => "upload, bytes verified",
            Direction::Download => "download, bytes sent",
        };
        let verdict = match (self.direction, self.status) {
            (Direction::Upload, Status::Ok) => "verified ok".to_owned(),
            (Direction::Upload, s) => format!("verification FAILED ({s})"),
            (Direction::Download, _) => "receiver verifies".to_owned(),
        };
        write!(
            f,
            "stream {}: {what} {}, {verdict}, {:.3} s, {:.3} Gbit/s",
            self.stream, self.bytes, self.seconds, self.goodput_gbps
        )
    }
}

/// Why a PERF stream could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfStreamError {
    /// The request header did not arrive.
    #[error("no PERF request header: {0}")]
    Header(#[from] PrefixError),
    /// The request header was not understood (the client was told, status 3).
    #[error("bad PERF request: {0}")]
    BadRequest(#[from] RequestError),
    /// Reading the upload failed before its end.
    #[error("upload stream failed after {verified} verified bytes: {source}")]
    Read {
        /// Bytes verified before the failure.
        verified: u64,
        /// The failure.
        source: ReadError,
    },
    /// Sending the download or the result failed.
    #[error("sending failed after {sent} bytes: {source}")]
    Write {
        /// Bytes handed to the stream before the failure.
        sent: u64,
        /// The failure.
        source: WriteError,
    },
}

/// Serves one PERF stream whose tag has been read: reads the request
/// header, then verifies the upload or generates the download.
pub fn handle_perf_stream(mut send: SendStream, mut recv: RecvStream) -> Result<StreamSummary, PerfStreamError> {
    let stream = recv.id();
    let mut hdr = [0u8; REQUEST_LEN];
    read_exact(&mut recv, &mut hdr, "PERF request header")?;
    let start = Instant::now();
    let req = match Request::decode(&hdr) {
        Ok(r) => r,
        Err(e) => {
            let reply = PerfResult { status: Status::BadRequest, bytes_verified: 0 };
            let _ = send.write_all(&reply.encode()).and_then(|()| send.finish());
            return Err(e.into());
        }
    };
    let (bytes, status) = match req.direction {
        Direction::Upload => verify_upload(&mut send, recv, req)?,
        Direction::Download => (send_download(&mut send, req)?, Status::Ok),
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(StreamSummary { stream, direction: req.direction, bytes, status, seconds, goodput_gbps: gbps(bytes, seconds) })
}

fn verify_upload(send: &mut SendStream, mut recv: RecvStream, req: Request) -> Result<(u64, Status), PerfStreamError> {
    let mut v = Verifier::new(req.seed);
    let status = loop {
        match recv.read_chunk(CHUNK) {
            Ok(Some(data)) => {
                let mut chunk = &data[..];
                let room = req.length.map_or(u64::MAX, |l| l - v.verified());
                let overrun = (chunk.len() as u64) > room;
                if overrun {
                    chunk = &chunk[..room as usize];
                }
                if let Err(m) = v.push(chunk) {
                    log::warn!("upload stream {}: {m}", recv.id());
                    break Status::PatternMismatch;
                }
                if overrun {
                    break Status::LengthMismatch;
                }
            }
            Ok(None) if req.length.is_some_and(|l| l != v.verified()) => break Status::LengthMismatch,
            Ok(None) => break Status::Ok,
            Err(source) => return Err(PerfStreamError::Read { verified: v.verified(), source }),
        }
    };
    // Stop the client's sending first if it is not done, then answer.
    drop(recv);
    let result = PerfResult { status, bytes_verified: v.verified() };
    send.write_all(&result.encode())
        .and_then(|()| send.finish())
        .map_err(|source| PerfStreamError::Write { sent: 0, source })?;
    Ok((v.verified(), status))
}

fn send_download(send: &mut SendStream, req: Request) -> Result<u64, PerfStreamError> {
    let mut g = Generator::new(req.seed);
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let want = req.length.map_or(CHUNK as u64, |l| (l - sent).min(CHUNK as u64)) as usize;
        if want == 0 {
            break;
        }
        g.next_chunk(&mut buf[..want]);
        let mut rest = &buf[..want];
        while !rest.is_empty() {
            match send.write(rest) {
                Ok(n) => {
                    sent += n as u64;
                    rest = &rest[n..];
                }
                // Unbounded downloads end when the client stops reading or leaves.
                Err(WriteError::Stopped(_) | WriteError::Closed | WriteError::ConnectionLost(_))
                    if req.length.is_none() =>
                {
                    return Ok(sent);
                }
                Err(source) => return Err(PerfStreamError::Write { sent, source }),
            }
        }
    }
    send.finish().map_err(|source| PerfStreamError::Write { sent, source })?;
    Ok(sent)
}

/// Refuses a stream whose service tag nobody serves: stops the receiving
/// half (STOP_SENDING) and finishes the sending half.
pub fn reject_stream(conn: &Connection, tag: [u8; 4], mut send: SendStream, recv: RecvStream) {
    log::warn!(
        "{}: stream {} has unknown service tag {}; stopping it",
        conn.remote_addr(),
        recv.id(),
        tag_display(&tag)
    );
    drop(recv);
    let _ = send.finish();
}

/// Something that serves streams by service tag.
pub trait StreamHandler: Send + Sync + 'static {
    /// Serves one stream whose 4-byte tag has been read. Runs on the
    /// stream's own thread.
    fn handle(&self, conn: &Connection, tag: [u8; 4], send: SendStream, recv: RecvStream);
}

/// The perf server's handler: PERF streams, everything else refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerfService {
    /// Print each stream summary as a JSON line on stdout instead of logging.
    pub json: bool,
}

impl PerfService {
    /// Serves a PERF stream and reports how it went.
    pub fn serve_perf(&self, conn: &Connection, send: SendStream, recv: RecvStream) {
        let id = recv.id();
        match handle_perf_stream(send, recv) {
            Ok(s) => {
                let peer = conn.remote_addr().to_string();
                if self.json {
                    #[derive(Serialize)]
                    struct Line<'a> {
                        peer: String,
                        #[serde(flatten)]
                        summary: &'a StreamSummary,
                    }
                    println!("{}", serde_json::to_string(&Line { peer, summary: &s }).unwrap_or_default());
                } else {
                    log::info!("{peer} {s}");
                }
            }
            Err(e) => log::warn!("stream {id} from {}: {e}", conn.remote_addr()),
        }
    }
}

impl StreamHandler for PerfService {
    fn handle(&self, conn: &Connection, tag: [u8; 4], send: SendStream, recv: RecvStream) {
        if tag == TAG_PERF {
            self.serve_perf(conn, send, recv);
        } else {
            reject_stream(conn, tag, send, recv);
        }
    }
}

/// Accepts the connection's bidirectional streams, reads each one's tag on
/// its own thread and hands it to `handler`. Returns why the connection
/// ended.
pub fn serve_connection<H: StreamHandler>(conn: Connection, handler: Arc<H>) -> ConnectionError {
    loop {
        let (send, mut recv) = match conn.accept_bi() {
            Ok(s) => s,
            Err(e) => return e,
        };
        let (conn2, handler) = (conn.clone(), handler.clone());
        let spawned = std::thread::Builder::new().name(format!("stoq-stream-{}", recv.id())).spawn(move || {
            match read_tag(&mut recv) {
                Ok(tag) => handler.handle(&conn2, tag, send, recv),
                Err(e) => log::warn!("{}: stream {}: {e}", conn2.remote_addr(), recv.id()),
            }
        });
        if let Err(e) = spawned {
            log::error!("cannot start a stream thread ({e}); closing the connection");
            conn.close(2, b"server out of threads");
        }
    }
}

/// Accepts connections until `stop` is set, serving each on its own thread
/// with `handler`, and logs each connection's end.
pub fn run_server_with<H: StreamHandler>(endpoint: &Endpoint, stop: &AtomicBool, handler: Arc<H>) {
    while !stop.load(Ordering::Relaxed) {
        let Some(conn) = endpoint.accept_timeout(Duration::from_millis(200)) else { continue };
        let peer = conn.remote_addr();
        log::info!("connection from {peer}");
        let handler = handler.clone();
        let spawned = std::thread::Builder::new().name(format!("stoq-conn-{peer}")).spawn(move || {
            let why = serve_connection(conn, handler);
            log::info!("connection from {peer} ended: {why}");
        });
        if let Err(e) = spawned {
            log::error!("cannot start a connection thread: {e}");
        }
    }
}

/// Runs the perf service on `endpoint` until `stop` is set.
pub fn run_server(endpoint: &Endpoint, stop: &AtomicBool) {
    run_server_with(endpoint, stop, Arc::new(PerfService::default()));
}
