//! The server: accepts connections and PERF streams (any number of each)
//! and serves uploads (verifying every byte) and downloads (generating the
//! pattern), as `stoq-perf server` does.

use std::time::Instant;

use quinn::{Connection, RecvStream, SendStream, VarInt, WriteError};
use stoq_perf::pattern::{Generator, Verifier};
use stoq_perf::protocol::{Direction, PerfResult, REQUEST_LEN, Request, Status, TAG_PERF, tag_display};
use stoq_perf::report::gbps;

use crate::CHUNK;

/// Why a stream could not be served.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("reading failed: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("the request did not arrive: {0}")]
    ReadExact(#[from] quinn::ReadExactError),
    #[error("sending failed: {0}")]
    Write(#[from] WriteError),
    #[error("stream already closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    #[error("bad PERF request: {0}")]
    BadRequest(#[from] stoq_perf::protocol::RequestError),
}

/// Accepts connections on `endpoint` until it is closed, serving each on its
/// own task.
pub async fn serve(endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            match incoming.await {
                Ok(conn) => {
                    log::info!("connection from {peer}");
                    let why = serve_connection(conn).await;
                    log::info!("connection from {peer} ended: {why}");
                }
                Err(e) => log::warn!("handshake with {peer} failed: {e}"),
            }
        });
    }
}

/// Serves the connection's bidirectional streams, each on its own task;
/// returns why the connection ended.
pub async fn serve_connection(conn: Connection) -> quinn::ConnectionError {
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => return e,
        };
        let peer = conn.remote_address();
        tokio::spawn(async move {
            let id = recv.id();
            if let Err(e) = serve_stream(send, recv).await {
                log::warn!("{peer} stream {id}: {e}");
            }
        });
    }
}

async fn serve_stream(mut send: SendStream, mut recv: RecvStream) -> Result<(), StreamError> {
    let mut tag = [0u8; 4];
    recv.read_exact(&mut tag).await?;
    if tag != TAG_PERF {
        log::warn!("stream {} has unknown service tag {}; stopping it", recv.id(), tag_display(&tag));
        let _ = recv.stop(VarInt::from_u32(0));
        send.finish()?;
        return Ok(());
    }
    let mut hdr = [0u8; REQUEST_LEN];
    recv.read_exact(&mut hdr).await?;
    let start = Instant::now();
    let req = match Request::decode(&hdr) {
        Ok(r) => r,
        Err(e) => {
            send.write_all(&PerfResult { status: Status::BadRequest, bytes_verified: 0 }.encode()).await?;
            send.finish()?;
            return Err(e.into());
        }
    };
    let (bytes, verdict) = match req.direction {
        Direction::Upload => {
            let (status, verified) = verify_upload(&mut send, recv, req).await?;
            (verified, format!("upload verified, result {status}"))
        }
        Direction::Download => (send_download(&mut send, req).await?, "download sent, receiver verifies".into()),
    };
    let secs = start.elapsed().as_secs_f64();
    log::info!("{}: {verdict}, {bytes} bytes, {secs:.3} s, {:.3} Gbit/s", send.id(), gbps(bytes, secs));
    Ok(())
}

/// Verifies an upload and sends the result; returns the status and the
/// verified byte count.
async fn verify_upload(
    send: &mut SendStream,
    mut recv: RecvStream,
    req: Request,
) -> Result<(Status, u64), StreamError> {
    let mut v = Verifier::new(req.seed);
    let status = loop {
        match recv.read_chunk(CHUNK, true).await? {
            Some(chunk) => {
                let n = chunk.bytes.len();
                let room = req.length.map_or(u64::MAX, |l| l - v.verified());
                let take = (n as u64).min(room) as usize;
                if let Err(m) = v.push(&chunk.bytes[..take]) {
                    log::warn!("upload stream {}: {m}", recv.id());
                    break Status::PatternMismatch;
                }
                if take < n {
                    break Status::LengthMismatch;
                }
            }
            None if req.length.is_some_and(|l| l != v.verified()) => break Status::LengthMismatch,
            None => break Status::Ok,
        }
    };
    // Answering early: stop the client's half first (a no-op after its FIN).
    let _ = recv.stop(VarInt::from_u32(0));
    send.write_all(&PerfResult { status, bytes_verified: v.verified() }.encode()).await?;
    send.finish()?;
    Ok((status, v.verified()))
}

/// Sends the download; returns the bytes handed to the stream.
async fn send_download(send: &mut SendStream, req: Request) -> Result<u64, StreamError> {
    let mut g = Generator::new(req.seed);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let want = req.length.map_or(CHUNK as u64, |l| (l - g.offset()).min(CHUNK as u64)) as usize;
        if want == 0 {
            break;
        }
        g.next_chunk(&mut buf[..want]);
        match send.write_all(&buf[..want]).await {
            Ok(()) => {}
            // Unbounded downloads end when the client stops reading or leaves.
            Err(WriteError::Stopped(_) | WriteError::ConnectionLost(_)) if req.length.is_none() => {
                return Ok(g.offset());
            }
            Err(e) => return Err(e.into()),
        }
    }
    send.finish()?;
    Ok(g.offset())
}
