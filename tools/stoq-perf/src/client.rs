//! The client side: opens connections and PERF streams, moves and verifies
//! the payload, samples the counters every interval and builds the
//! [`Report`].

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stoq_core::io::BackendKind;
use stoq_core::{
    ClientConfig, ClientTls, ConnectError, Connection, ConnectionError, Endpoint, EndpointError, ReadError, RecvStream,
    SendStream, WriteError,
};

use crate::CHUNK;
use crate::pattern::{Generator, Mismatch, Verifier, mix64};
use crate::protocol::{Direction, PerfResult, RESULT_LEN, Request, Status, TAG_PERF};
use crate::report::{Report, ReportHead, Sampler};

/// Which directions to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The client sends; the server verifies.
    Upload,
    /// The server sends; the client verifies.
    Download,
    /// Both at once: one upload and one download stream per unit.
    Bidir,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Upload => "upload",
            Mode::Download => "download",
            Mode::Bidir => "bidir",
        }
    }

    fn directions(self) -> &'static [Direction] {
        match self {
            Mode::Upload => &[Direction::Upload],
            Mode::Download => &[Direction::Download],
            Mode::Bidir => &[Direction::Upload, Direction::Download],
        }
    }
}

/// How much to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Exactly this many payload bytes per direction, split over all streams.
    Bytes(u64),
    /// Unbounded streams, stopped after this long.
    Time(Duration),
}

/// Where interval lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Nowhere (library use).
    Quiet,
    /// Standard output (and a progress bar when it is a terminal).
    Stdout,
    /// Standard error (used with --json, which owns stdout).
    Stderr,
}

/// Everything a client run needs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Server address: `host:port` or `[v6]:port`.
    pub server: String,
    /// Name checked against the server's certificate.
    pub server_name: String,
    /// How to verify the server.
    pub tls: ClientTls,
    /// Directions to test.
    pub mode: Mode,
    /// How much to move.
    pub amount: Amount,
    /// Stream units per connection.
    pub streams: usize,
    /// QUIC connections.
    pub connections: usize,
    /// Packet backend.
    pub backend: BackendKind,
    /// Opens `backend` when stoq-core cannot by itself (AF_XDP).
    pub opener: Option<std::sync::Arc<dyn stoq_core::io::OpenBackend>>,
    /// Reporting interval.
    pub interval: Duration,
    /// Largest UDP payload.
    pub max_payload: usize,
    /// The tier profile to run with (windows, congestion control, pacing,
    /// buffers, batch); `None`: stoq-core's defaults. `backend` and
    /// `max_payload` apply on top of it.
    pub profile: Option<stoq_core::profile::Profile>,
    /// Idle timeout override (stoq-core's default when `None`).
    pub idle_timeout: Option<Duration>,
    /// Where interval lines go.
    pub output: Output,
}

impl ClientOptions {
    /// Defaults: download 1 GiB over one stream, portable backend, quiet.
    pub fn new(server: impl Into<String>, tls: ClientTls) -> Self {
        Self {
            server: server.into(),
            server_name: "localhost".into(),
            tls,
            mode: Mode::Download,
            amount: Amount::Bytes(1 << 30),
            streams: 1,
            connections: 1,
            backend: BackendKind::Portable,
            opener: None,
            interval: Duration::from_secs(1),
            max_payload: 1452,
            profile: None,
            idle_timeout: None,
            output: Output::Quiet,
        }
    }
}

/// One stream of a run, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLabel {
    /// Connection index.
    pub conn: usize,
    /// Stream unit index within the connection.
    pub unit: usize,
    /// Direction.
    pub direction: Direction,
}

impl std::fmt::Display for StreamLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stream {} of connection {}", self.direction.name(), self.unit, self.conn)
    }
}

/// Why a client run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The options cannot work.
    #[error("invalid options: {0}")]
    Options(String),
    /// The server address did not resolve.
    #[error("cannot resolve {addr}: {why} (use host:port or [v6]:port)")]
    Resolve {
        /// What was given.
        addr: String,
        /// Why.
        why: String,
    },
    /// The client endpoint could not start.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The connection could not be established.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A stream could not be opened.
    #[error("cannot open a stream: {0}")]
    Open(ConnectionError),
    /// A downloaded byte did not match the pattern.
    #[error("VERIFICATION FAILED on {stream}: {mismatch}")]
    Mismatch {
        /// Which stream.
        stream: StreamLabel,
        /// Where and what.
        mismatch: Mismatch,
    },
    /// A download carried a different number of bytes than requested.
    #[error("VERIFICATION FAILED on {stream}: received {got} bytes, requested {want}")]
    Length {
        /// Which stream.
        stream: StreamLabel,
        /// Bytes that arrived (and matched).
        got: u64,
        /// Bytes requested.
        want: u64,
    },
    /// The server reported a failed upload.
    #[error(
        "VERIFICATION FAILED on {stream}: server reported {status} after verifying {verified} of {sent} bytes sent"
    )]
    ServerRejected {
        /// Which stream.
        stream: StreamLabel,
        /// The server's status.
        status: Status,
        /// Bytes the server verified.
        verified: u64,
        /// Bytes the client sent.
        sent: u64,
    },
    /// The server's result was not 16 bytes.
    #[error("{stream}: server's result was {len} bytes instead of 16 (is it a perf server?)")]
    BadResult {
        /// Which stream.
        stream: StreamLabel,
        /// Bytes received.
        len: usize,
    },
    /// The run was stopped (another stream failed) before this one ended.
    #[error("{stream} was stopped because another stream failed")]
    Aborted {
        /// Which stream.
        stream: StreamLabel,
    },
    /// Reading failed.
    #[error("{stream} failed while reading: {source}")]
    Read {
        /// Which stream.
        stream: StreamLabel,
        /// The failure.
        source: ReadError,
    },
    /// Writing failed.
    #[error("{stream} failed while writing: {source}")]
    Write {
        /// Which stream.
        stream: StreamLabel,
        /// The failure.
        source: WriteError,
    },
}

impl ClientError {
    /// Whether this error means bytes arrived wrong (rather than not at all).
    pub fn is_verification_failure(&self) -> bool {
        matches!(self, Self::Mismatch { .. } | Self::Length { .. } | Self::ServerRejected { .. })
    }
}

/// Resolves `host:port` or `[v6]:port` to its first address.
pub fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    let err = |why: String| ClientError::Resolve { addr: addr.to_owned(), why };
    addr.to_socket_addrs().map_err(|e| err(e.to_string()))?.next().ok_or_else(|| err("no addresses".into()))
}

/// Where a client talking to `peer` binds: the unspecified address of the
/// peer's family, any port.
pub fn bind_for(peer: SocketAddr) -> SocketAddr {
    let ip: IpAddr = if peer.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    SocketAddr::new(ip, 0)
}

/// Runs a client: a new endpoint, `opts.connections` connections, the
/// transfer, and the report.
pub fn run_client(opts: &ClientOptions) -> Result<Report, ClientError> {
    check(opts)?;
    let peer = resolve(&opts.server)?;
    let mut cfg = ClientConfig::new(opts.tls.clone());
    if let Some(p) = &opts.profile {
        p.apply(&mut cfg.endpoint);
    }
    cfg.endpoint.backend = opts.backend;
    cfg.endpoint.opener = opts.opener.clone();
    cfg.endpoint.transport.max_udp_payload = opts.max_payload;
    if let Some(t) = opts.idle_timeout {
        cfg.endpoint.transport.idle_timeout = t;
    }
    let endpoint = Endpoint::client(bind_for(peer), cfg)?;
    run_client_on(&endpoint, peer, opts)
}

fn check(opts: &ClientOptions) -> Result<(), ClientError> {
    let bad = |m: &str| Err(ClientError::Options(m.to_owned()));
    if opts.streams == 0 || opts.connections == 0 {
        return bad("--streams and --connections must be at least 1");
    }
    if opts.interval.is_zero() {
        return bad("--interval must be greater than zero");
    }
    if let Amount::Time(t) = opts.amount
        && t.is_zero()
    {
        return bad("--time must be greater than zero");
    }
    Ok(())
}

/// Like [`run_client`], on an existing client endpoint (its backend and
/// payload size apply; those in `opts` are only reported).
pub fn run_client_on(endpoint: &Endpoint, peer: SocketAddr, opts: &ClientOptions) -> Result<Report, ClientError> {
    check(opts)?;
    let conns =
        (0..opts.connections).map(|_| endpoint.connect(peer, &opts.server_name)).collect::<Result<Vec<_>, _>>()?;
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::channel();
    let mut sampler = Sampler::start(endpoint, &conns, 0);
    let units = opts.connections * opts.streams;
    let mut workers = 0;
    for (ci, conn) in conns.iter().enumerate() {
        for unit in 0..opts.streams {
            let length = match opts.amount {
                Amount::Bytes(n) => {
                    let i = (ci * opts.streams + unit) as u64;
                    let share = n / units as u64;
                    Some(if i == units as u64 - 1 { n - share * (units as u64 - 1) } else { share })
                }
                Amount::Time(_) => None,
            };
            for &direction in opts.mode.directions() {
                let label = StreamLabel { conn: ci, unit, direction };
                let req = Request { direction, length, seed: stream_seed(workers) };
                let (conn, counters, tx) = (conn.clone(), counters.clone(), tx.clone());
                std::thread::Builder::new()
                    .name(format!("perf-{ci}-{unit}-{}", workers % 2))
                    .spawn(move || {
                        let r = run_stream(&conn, label, req, &counters);
                        let _ = tx.send(r.map(|n| (direction, n)));
                    })
                    .map_err(|e| ClientError::Options(format!("cannot start a stream thread: {e}")))?;
                workers += 1;
            }
        }
    }
    drop(tx);
    let mut uploads_left = if opts.mode == Mode::Download { 0 } else { workers / opts.mode.directions().len() };
    let mut time_up_closed = false;
    let bar = progress_bar(opts);
    let start = Instant::now();
    let deadline = match opts.amount {
        Amount::Time(t) => Some(start + t),
        Amount::Bytes(_) => None,
    };
    let mut next_tick = start + opts.interval;
    let (mut up, mut down) = (0u64, 0u64);
    let mut failure = None;
    while workers > 0 {
        let mut wake = next_tick;
        if let Some(d) = deadline.filter(|_| !counters.stop.load(Ordering::Relaxed)) {
            wake = wake.min(d);
        }
        if bar.is_some() {
            wake = wake.min(Instant::now() + Duration::from_millis(200));
        }
        match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(r) => {
                workers -= 1;
                if matches!(r, Ok((Direction::Upload, _))) {
                    uploads_left = uploads_left.saturating_sub(1);
                }
                match r {
                    Ok((Direction::Upload, n)) => up += n,
                    Ok((Direction::Download, n)) => down += n,
                    Err(e) => {
                        if failure.is_none() {
                            counters.stop.store(true, Ordering::Relaxed);
                            for c in &conns {
                                c.close(1, b"perf run failed");
                            }
                            failure = Some(e);
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            counters.stop.store(true, Ordering::Relaxed);
            // Timed downloads end when the connection closes; uploads need
            // their results first. Closing (rather than only stopping the
            // download streams) also unblocks a reader waiting for data.
            if uploads_left == 0 && failure.is_none() && !time_up_closed {
                time_up_closed = true;
                for c in &conns {
                    c.close(0, b"time is up");
                }
            }
        }
        if let Some(b) = &bar {
            b.set_position(progress(opts, &counters, start));
        }
        if now >= next_tick {
            let iv = sampler.sample(endpoint, &conns, counters.moved());
            emit(opts, bar.as_ref(), &iv.line());
            next_tick += opts.interval;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let last = sampler.sample(endpoint, &conns, counters.moved());
    if last.end_s - last.start_s > 0.05 {
        emit(opts, None, &last.line());
    }
    for c in &conns {
        c.close(0, b"perf run done");
    }
    let head = ReportHead {
        mode: opts.mode.name().into(),
        backend: endpoint.backend().name().into(),
        tier: opts.profile.as_ref().map(|p| p.tier.name().to_owned()),
        connections: opts.connections,
        streams: opts.streams,
        max_payload: opts.max_payload,
    };
    let report = sampler.finish(head, up, down);
    emit(opts, None, &report.total_line());
    Ok(report)
}

#[derive(Default)]
struct Counters {
    /// Upload bytes handed to streams.
    up_sent: AtomicU64,
    /// Download bytes verified.
    down_verified: AtomicU64,
    /// Time is up (or a stream failed): stop sending and reading.
    stop: AtomicBool,
}

impl Counters {
    fn moved(&self) -> u64 {
        self.up_sent.load(Ordering::Relaxed) + self.down_verified.load(Ordering::Relaxed)
    }
}

/// A different pattern key for every stream of every run.
pub fn stream_seed(i: usize) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let base = mix64(now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32));
    mix64(base.wrapping_add(i as u64))
}

/// Runs one PERF stream; returns the receiver-verified byte count.
fn run_stream(conn: &Connection, label: StreamLabel, req: Request, c: &Counters) -> Result<u64, ClientError> {
    let (mut send, mut recv) = conn.open_bi().map_err(ClientError::Open)?;
    let write_err = |source| ClientError::Write { stream: label, source };
    let read_err = |source| ClientError::Read { stream: label, source };
    let mut hello = [0u8; 24];
    hello[..4].copy_from_slice(&TAG_PERF);
    hello[4..].copy_from_slice(&req.encode());
    send.write_all(&hello).map_err(write_err)?;
    match req.direction {
        Direction::Download => {
            // The request is all the client sends (docs/perf-protocol.md).
            send.finish().map_err(write_err)?;
            let mut v = Verifier::new(req.seed);
            loop {
                if c.stop.load(Ordering::Relaxed) {
                    if req.length.is_none() {
                        return Ok(v.verified()); // dropping `recv` stops the server
                    }
                    return Err(ClientError::Aborted { stream: label });
                }
                let chunk = match recv.read_chunk(CHUNK) {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    // A timed run ends by closing the connection.
                    Err(ReadError::ConnectionLost(ConnectionError::LocallyClosed { .. }))
                        if req.length.is_none() && c.stop.load(Ordering::Relaxed) =>
                    {
                        return Ok(v.verified());
                    }
                    Err(e) => return Err(read_err(e)),
                };
                let n = chunk.len();
                if req.length.is_some_and(|l| v.verified() + n as u64 > l) {
                    let got = v.verified() + n as u64;
                    return Err(ClientError::Length { stream: label, got, want: req.length.unwrap_or(0) });
                }
                v.push(&chunk).map_err(|mismatch| ClientError::Mismatch { stream: label, mismatch })?;
                c.down_verified.fetch_add(n as u64, Ordering::Relaxed);
            }
            match req.length {
                Some(want) if want != v.verified() => {
                    Err(ClientError::Length { stream: label, got: v.verified(), want })
                }
                _ => Ok(v.verified()),
            }
        }
        Direction::Upload => upload(conn, label, req, c, send, recv),
    }
}

/// Sends the upload while another thread waits for the server's result, so
/// that an early result (the server found a bad byte and stopped reading)
/// ends the run at once. It also works around stoq-core, whose writes after
/// the peer's STOP_SENDING block instead of failing: closing the connection
/// is what unblocks the writer then.
fn upload(
    conn: &Connection,
    label: StreamLabel,
    req: Request,
    c: &Counters,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<u64, ClientError> {
    let write_err = |source| ClientError::Write { stream: label, source };
    let writing = Arc::new(AtomicBool::new(true));
    let (w, conn2) = (writing.clone(), conn.clone());
    let reader = std::thread::spawn(move || {
        let r = recv.read_to_end(RESULT_LEN);
        if w.load(Ordering::Acquire) && r.is_ok() {
            conn2.close(1, b"upload rejected early");
        }
        r
    });
    let mut g = Generator::new(req.seed);
    let mut buf = vec![0u8; CHUNK];
    let mut failed = None;
    'send: loop {
        let left = req.length.map_or(CHUNK as u64, |l| l - g.offset());
        if left == 0 || c.stop.load(Ordering::Relaxed) || reader.is_finished() {
            break;
        }
        let chunk = &mut buf[..left.min(CHUNK as u64) as usize];
        g.next_chunk(chunk);
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            match send.write(rest) {
                Ok(n) => {
                    c.up_sent.fetch_add(n as u64, Ordering::Relaxed);
                    rest = &rest[n..];
                }
                Err(e) => {
                    g.unread(rest.len());
                    failed = Some(e);
                    break 'send;
                }
            }
        }
    }
    // Before the FIN: from here on the result is the normal ending.
    writing.store(false, Ordering::Release);
    if failed.is_none()
        && let Err(e) = send.finish()
    {
        failed = Some(e);
    }
    let sent = g.offset();
    let answer = reader.join().unwrap_or(Err(ReadError::Reset(0)));
    let answer = match (answer, failed) {
        (Ok(a), _) => a,
        (Err(_), Some(w)) => return Err(write_err(w)),
        (Err(e), None) => return Err(ClientError::Read { stream: label, source: e }),
    };
    let res = PerfResult::decode(&answer).ok_or(ClientError::BadResult { stream: label, len: answer.len() })?;
    if res.status != Status::Ok || res.bytes_verified != sent || req.length.is_some_and(|l| l != sent) {
        return Err(ClientError::ServerRejected {
            stream: label,
            status: res.status,
            verified: res.bytes_verified,
            sent,
        });
    }
    Ok(res.bytes_verified)
}

fn progress_bar(opts: &ClientOptions) -> Option<indicatif::ProgressBar> {
    if opts.output != Output::Stdout || !std::io::stdout().is_terminal() {
        return None;
    }
    let (len, template) = match opts.amount {
        Amount::Bytes(n) => {
            (n * opts.mode.directions().len() as u64, "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec}")
        }
        Amount::Time(t) => (t.as_secs().max(1), "{bar:40} {pos}/{len} s"),
    };
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    Some(bar)
}

fn progress(opts: &ClientOptions, c: &Counters, start: Instant) -> u64 {
    match opts.amount {
        Amount::Bytes(_) => c.moved(),
        Amount::Time(_) => start.elapsed().as_secs(),
    }
}

fn emit(opts: &ClientOptions, bar: Option<&indicatif::ProgressBar>, line: &str) {
    match (opts.output, bar) {
        (Output::Quiet, _) => {}
        (Output::Stdout, Some(b)) => b.println(line),
        (Output::Stdout, None) => println!("{line}"),
        (Output::Stderr, _) => eprintln!("{line}"),
    }
}
