//! The client: one connection, one PERF stream, a download verified byte
//! for byte or an upload whose server result is checked, and the
//! [`Outcome`] with goodput and the process's CPU cost.

use std::net::SocketAddr;
use std::time::Instant;

use quinn::{Connection, RecvStream, SendStream, WriteError};
use serde::Serialize;
use stoq_perf::cpu::CpuTime;
use stoq_perf::pattern::{Generator, Mismatch, Verifier};
use stoq_perf::protocol::{Direction, PerfResult, RESULT_LEN, Request, Status, TAG_PERF};
use stoq_perf::report::{fmt_per_cpu, gbps, per_cpu};

use crate::{CHUNK, MAX_UDP_PAYLOAD};

/// Which way the payload flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The server sends; the client verifies.
    Download,
    /// The client sends; the server verifies.
    Upload,
}

impl Mode {
    fn direction(self) -> Direction {
        match self {
            Mode::Download => Direction::Download,
            Mode::Upload => Direction::Upload,
        }
    }
}

/// Why a run failed. Mismatches, length errors and rejected uploads mean
/// bytes arrived wrong; the rest that they did not arrive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be started.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A downloaded byte did not match the pattern.
    #[error("download verification FAILED: {0}")]
    Mismatch(Mismatch),
    /// The download ended early or ran long.
    #[error("download verification FAILED: {got} bytes arrived, {want} were requested")]
    Length {
        /// Bytes that arrived (verified).
        got: u64,
        /// Bytes requested.
        want: u64,
    },
    /// The server did not confirm every uploaded byte.
    #[error("upload verification FAILED: server says {status}, {verified} bytes verified of {sent} sent")]
    ServerRejected {
        /// The server's status.
        status: Status,
        /// Bytes the server verified.
        verified: u64,
        /// Bytes the client sent.
        sent: u64,
    },
    /// The upload's result was not 16 bytes.
    #[error("upload result is malformed: {0}")]
    BadResult(String),
    /// Reading the stream failed.
    #[error("reading the stream failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing the stream failed.
    #[error("writing the stream failed: {0}")]
    Write(#[from] WriteError),
}

/// What a run moved and what it cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    /// `download` or `upload`.
    pub mode: Mode,
    /// Payload bytes verified by the receiver.
    pub bytes: u64,
    /// Wall-clock seconds from opening the stream to the last verified byte
    /// (download) or the server's result (upload).
    pub secs: f64,
    /// `bytes` as Gbit/s over `secs`.
    pub gbps: f64,
    /// Client process user CPU seconds.
    pub cpu_user: f64,
    /// Client process system CPU seconds.
    pub cpu_sys: f64,
    /// `bytes` per client CPU-second.
    pub bytes_per_cpu_s: f64,
    /// Every byte was verified (an outcome only exists when so).
    pub verified: bool,
    /// UDP datagrams the connection sent.
    pub datagrams_sent: u64,
    /// UDP datagrams the connection received.
    pub datagrams_received: u64,
    /// Send calls (`sendmsg`): fewer than `datagrams_sent` when GSO
    /// batches. (quinn counts received packets, not receive calls, so there
    /// is no receive-side figure.)
    pub send_calls: u64,
    /// Packets quinn declared lost.
    pub packets_lost: u64,
    /// Smoothed RTT at the end, milliseconds.
    pub rtt_ms: f64,
    /// Largest UDP payload.
    pub max_payload: u16,
    /// The `GLIBC_TUNABLES` environment variable, if set.
    pub glibc_tunables: Option<String>,
}

impl Outcome {
    /// One line of text, shaped like stoq-perf's total line.
    pub fn line(&self) -> String {
        let cpu = self.cpu_user + self.cpu_sys;
        format!(
            "[{:6.2}-{:6.2} s] {:7.3} Gbit/s  dgrams tx {:>8} rx {:>8}  sendmsg {:>8}  lost {:>5}  rtt {:7.3} ms  cpu {:5.2} s  {}  TOTAL {} bytes verified ({}, quinn)",
            0.0,
            self.secs,
            self.gbps,
            self.datagrams_sent,
            self.datagrams_received,
            self.send_calls,
            self.packets_lost,
            self.rtt_ms,
            cpu,
            fmt_per_cpu(self.bytes_per_cpu_s),
            self.bytes,
            match self.mode {
                Mode::Download => "down",
                Mode::Upload => "up",
            },
        )
    }
}

/// Connects to `server` and moves `bytes` payload bytes in `mode` over one
/// stream, verifying them.
pub async fn run_client(
    endpoint: &quinn::Endpoint,
    server: SocketAddr,
    mode: Mode,
    bytes: u64,
) -> Result<Outcome, ClientError> {
    let conn = endpoint.connect(server, "localhost")?.await?;
    let result = transfer(&conn, mode, bytes).await;
    conn.close(0u32.into(), b"perf run done");
    result
}

/// Runs one PERF transfer on an established connection.
pub async fn transfer(conn: &Connection, mode: Mode, bytes: u64) -> Result<Outcome, ClientError> {
    let (cpu0, start, stats0) = (CpuTime::now(), Instant::now(), conn.stats());
    let (mut send, recv) = conn.open_bi().await?;
    let req = Request { direction: mode.direction(), length: Some(bytes), seed: stoq_perf::client::stream_seed(0) };
    let mut hello = [0u8; 24];
    hello[..4].copy_from_slice(&TAG_PERF);
    hello[4..].copy_from_slice(&req.encode());
    send.write_all(&hello).await?;
    let verified = match mode {
        Mode::Download => {
            // The request is all the client sends (docs/perf-protocol.md).
            let _ = send.finish();
            download(recv, req.seed, bytes).await?
        }
        Mode::Upload => upload(send, recv, req.seed, bytes).await?,
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = CpuTime::now().since(&cpu0);
    let stats = conn.stats();
    Ok(Outcome {
        mode,
        bytes: verified,
        secs,
        gbps: gbps(verified, secs),
        cpu_user: cpu.user,
        cpu_sys: cpu.sys,
        bytes_per_cpu_s: per_cpu(verified, cpu.total()),
        verified: true,
        datagrams_sent: stats.udp_tx.datagrams - stats0.udp_tx.datagrams,
        datagrams_received: stats.udp_rx.datagrams - stats0.udp_rx.datagrams,
        send_calls: stats.udp_tx.ios - stats0.udp_tx.ios,
        packets_lost: stats.path.lost_packets - stats0.path.lost_packets,
        rtt_ms: stats.path.rtt.as_secs_f64() * 1e3,
        max_payload: MAX_UDP_PAYLOAD,
        glibc_tunables: std::env::var("GLIBC_TUNABLES").ok(),
    })
}

/// Reads and verifies the download; returns the verified byte count.
async fn download(mut recv: RecvStream, seed: u64, want: u64) -> Result<u64, ClientError> {
    let mut v = Verifier::new(seed);
    // Chunks straight from quinn's buffers, as stoq-perf reads STOQ's.
    while let Some(chunk) = recv.read_chunk(CHUNK, true).await? {
        let n = chunk.bytes.len();
        if v.verified() + n as u64 > want {
            return Err(ClientError::Length { got: v.verified() + n as u64, want });
        }
        v.push(&chunk.bytes).map_err(ClientError::Mismatch)?;
    }
    if v.verified() != want {
        return Err(ClientError::Length { got: v.verified(), want });
    }
    Ok(v.verified())
}

/// Sends the upload and checks the server's result; returns the bytes the
/// server verified. An early result (the server found a bad byte and
/// stopped the stream) ends the sending at once.
async fn upload(mut send: SendStream, mut recv: RecvStream, seed: u64, length: u64) -> Result<u64, ClientError> {
    let mut g = Generator::new(seed);
    let mut buf = vec![0u8; CHUNK];
    let mut stopped = false;
    'send: while g.offset() < length {
        let chunk = &mut buf[..(length - g.offset()).min(CHUNK as u64) as usize];
        g.next_chunk(chunk);
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            match send.write(rest).await {
                Ok(n) => rest = &rest[n..],
                Err(WriteError::Stopped(_)) => {
                    g.unread(rest.len());
                    stopped = true;
                    break 'send;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if !stopped {
        let _ = send.finish();
    }
    let sent = g.offset();
    let answer = recv.read_to_end(RESULT_LEN).await.map_err(|e| match e {
        quinn::ReadToEndError::Read(e) => ClientError::Read(e),
        quinn::ReadToEndError::TooLong => ClientError::BadResult(format!("more than {RESULT_LEN} bytes")),
    })?;
    let res = PerfResult::decode(&answer).ok_or_else(|| ClientError::BadResult(format!("{} bytes", answer.len())))?;
    if res.status != Status::Ok || res.bytes_verified != sent || sent != length {
        return Err(ClientError::ServerRejected { status: res.status, verified: res.bytes_verified, sent });
    }
    Ok(res.bytes_verified)
}
