//! Broken peers: servers (written here directly on stoq-core) that corrupt,
//! cut short or misreport, clients that send bad requests, and a path that
//! goes dead. Each must end in a clear error, never a hang or a pass.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use stoq_core::{Connection, DevPki, Endpoint, RecvStream, SendStream, ServerConfig, WriteError};
use stoq_perf::client::{ClientError, Mode, run_client};
use stoq_perf::pattern::fill;
use stoq_perf::protocol::{Direction, PerfResult, REQUEST_LEN, Request, Status, TAG_PERF, read_exact, read_tag};

/// A server that answers one connection's PERF streams with `behave`.
fn fake_server<F>(behave: F) -> (Endpoint, DevPki)
where
    F: Fn(Request, SendStream, RecvStream) + Send + Sync + 'static,
{
    let pki = DevPki::generate(&["localhost"]).unwrap();
    let ep = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(pki.server_tls())).unwrap();
    let server = ep.clone();
    let behave = Arc::new(behave);
    std::thread::spawn(move || {
        let Some(conn) = server.accept() else { return };
        while let Ok((send, mut recv)) = conn.accept_bi() {
            let behave = behave.clone();
            std::thread::spawn(move || {
                assert_eq!(read_tag(&mut recv).unwrap(), TAG_PERF);
                let mut hdr = [0u8; REQUEST_LEN];
                read_exact(&mut recv, &mut hdr, "header").unwrap();
                behave(Request::decode(&hdr).unwrap(), send, recv);
            });
        }
    });
    (ep, pki)
}

fn options(ep: &Endpoint, pki: &DevPki, mode: Mode, bytes: u64) -> stoq_perf::ClientOptions {
    let mut o = stoq_perf::ClientOptions::new(ep.local_addr().to_string(), pki.client_tls());
    o.mode = mode;
    o.amount = stoq_perf::client::Amount::Bytes(bytes);
    o
}

#[test]
fn corrupted_download_fails_at_the_corrupted_offset() {
    let (ep, pki) = fake_server(|req, mut send, _recv| {
        let mut payload = vec![0u8; req.length.unwrap() as usize];
        fill(req.seed, 0, &mut payload);
        payload[300_001] ^= 0x01;
        let _ = send.write_all(&payload);
        let _ = send.finish();
    });
    let err = run_client(&options(&ep, &pki, Mode::Download, 1 << 20)).expect_err("corruption must fail the run");
    match &err {
        ClientError::Mismatch { mismatch, stream } => {
            assert_eq!(mismatch.offset, 300_001);
            assert_eq!(mismatch.found, mismatch.expected ^ 0x01);
            assert_eq!(stream.direction, Direction::Download);
        }
        e => panic!("expected a mismatch, got {e:?}"),
    }
    assert!(err.is_verification_failure());
    assert!(err.to_string().contains("VERIFICATION FAILED"), "{err}");
}

#[test]
fn short_download_fails_with_the_counts() {
    let (ep, pki) = fake_server(|req, mut send, _recv| {
        let mut payload = vec![0u8; req.length.unwrap() as usize / 2];
        fill(req.seed, 0, &mut payload);
        let _ = send.write_all(&payload);
        let _ = send.finish();
    });
    let err = run_client(&options(&ep, &pki, Mode::Download, 1 << 20)).expect_err("short stream must fail");
    assert!(matches!(err, ClientError::Length { got: 524_288, want: 1_048_576, .. }), "{err:?}");
}

#[test]
fn server_that_verified_fewer_bytes_than_sent_fails_the_upload() {
    let (ep, pki) = fake_server(|_req, mut send, mut recv| {
        let mut n = 0u64;
        let mut buf = vec![0u8; 65536];
        while let Ok(Some(k)) = recv.read(&mut buf) {
            n += k as u64;
        }
        let r = PerfResult { status: Status::Ok, bytes_verified: n - 1 };
        let _ = send.write_all(&r.encode());
        let _ = send.finish();
    });
    let err = run_client(&options(&ep, &pki, Mode::Upload, 1 << 20)).expect_err("undercount must fail");
    assert!(
        matches!(err, ClientError::ServerRejected { verified: 1_048_575, sent: 1_048_576, status: Status::Ok, .. }),
        "{err:?}"
    );
}

#[test]
fn early_server_rejection_ends_a_large_upload_quickly() {
    let (ep, pki) = fake_server(|_req, mut send, mut recv| {
        let mut buf = vec![0u8; 100_000];
        let _ = read_exact(&mut recv, &mut buf, "some payload");
        drop(recv);
        let r = PerfResult { status: Status::PatternMismatch, bytes_verified: 12_345 };
        let _ = send.write_all(&r.encode());
        let _ = send.finish();
    });
    let t = Instant::now();
    let err = run_client(&options(&ep, &pki, Mode::Upload, 1 << 40)).expect_err("rejected upload must fail");
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert!(
        matches!(err, ClientError::ServerRejected { status: Status::PatternMismatch, verified: 12_345, .. }),
        "{err:?}"
    );
}

/// Opens a stream to a real perf server and sends `bytes` after the tag.
fn raw_stream(server: &TestServer) -> (Endpoint, Connection, SendStream, RecvStream) {
    let mut cfg = stoq_core::ClientConfig::new(server.pki.client_tls());
    // Fail fast rather than after the 30 s default if the stream hangs.
    cfg.endpoint.transport.idle_timeout = Duration::from_secs(3);
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let conn = client.connect(server.endpoint.local_addr(), "localhost").unwrap();
    let (send, recv) = conn.open_bi().unwrap();
    (client, conn, send, recv)
}

fn result_of(mut send: SendStream, mut recv: RecvStream, bytes: &[u8]) -> PerfResult {
    send.write_all(bytes).unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(64).unwrap();
    PerfResult::decode(&answer).unwrap_or_else(|| panic!("result of {} bytes", answer.len()))
}

#[test]
fn server_rejects_unknown_version_and_direction_with_status_3() {
    let server = TestServer::start();
    for (i, patch) in [(0usize, 9u8), (1, 2)] {
        let (_c, _conn, send, recv) = raw_stream(&server);
        let mut hdr = Request { direction: Direction::Upload, length: Some(10), seed: 1 }.encode();
        hdr[i] = patch;
        let mut msg = TAG_PERF.to_vec();
        msg.extend_from_slice(&hdr);
        let r = result_of(send, recv, &msg);
        assert_eq!(r.status, Status::BadRequest, "byte {i} = {patch}");
        assert_eq!(r.bytes_verified, 0);
    }
}

fn upload_message(length: Option<u64>, payload_len: usize, corrupt_at: Option<usize>) -> Vec<u8> {
    let req = Request { direction: Direction::Upload, length, seed: 77 };
    let mut payload = vec![0u8; payload_len];
    fill(77, 0, &mut payload);
    if let Some(at) = corrupt_at {
        payload[at] = !payload[at];
    }
    let mut msg = TAG_PERF.to_vec();
    msg.extend_from_slice(&req.encode());
    msg.extend_from_slice(&payload);
    msg
}

#[test]
fn server_verifies_uploads_and_reports_what_it_found() {
    let server = TestServer::start();
    let cases = [
        (Some(100_000), 100_000, None, Status::Ok, 100_000),
        (None, 54_321, None, Status::Ok, 54_321),
        (Some(100_000), 100_000, Some(77_777), Status::PatternMismatch, 77_777),
        (Some(100_000), 60_000, None, Status::LengthMismatch, 60_000),
        (Some(100_000), 100_005, None, Status::LengthMismatch, 100_000),
    ];
    for (length, len, corrupt, status, verified) in cases {
        log::info!("case: length {length:?}, sent {len}, corrupt {corrupt:?}");
        let (_c, _conn, send, recv) = raw_stream(&server);
        let r = result_of(send, recv, &upload_message(length, len, corrupt));
        assert_eq!(
            (r.status, r.bytes_verified),
            (status, verified),
            "length {length:?}, sent {len}, corrupt {corrupt:?}"
        );
    }
}

#[test]
fn unknown_tag_gets_the_stream_finished_without_data() {
    let server = TestServer::start();
    let (_c, _conn, mut send, mut recv) = raw_stream(&server);
    send.write_all(b"NOPEsome bytes").unwrap();
    // The server finishes its half without sending anything.
    assert_eq!(recv.read_to_end(1024).unwrap(), Vec::<u8>::new());
}

/// Once the server has stopped the stream, later writes fail with
/// `Stopped(0)` or `Closed` (stoq-core d67e5be fixed writes that used to
/// block instead).
#[test]
fn unknown_tag_stop_sending_fails_later_writes() {
    let server = TestServer::start();
    let (_c, _conn, mut send, mut recv) = raw_stream(&server);
    send.write_all(b"NOPEsome bytes").unwrap();
    assert_eq!(recv.read_to_end(1024).unwrap(), Vec::<u8>::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match send.write(&[0u8; 4096]) {
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => panic!("writes still accepted 5 s after the server stopped the stream"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, WriteError::Stopped(0) | WriteError::Closed), "{err:?}");
}

/// Forwards UDP between one client and `server` until `dead` is set, then
/// drops everything (a path that goes silent).
fn relay(server: SocketAddr, dead: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut client = None;
        let mut buf = vec![0u8; 65536];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            if dead.load(Ordering::Relaxed) {
                continue;
            }
            let to = if from == server {
                match client {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                client = Some(from);
                server
            };
            let _ = sock.send_to(&buf[..n], to);
        }
    });
    addr
}

#[test]
fn dead_path_ends_the_run_with_a_timeout_not_a_hang() {
    let server = TestServer::start();
    let dead = Arc::new(AtomicBool::new(false));
    let via = relay(server.endpoint.local_addr(), dead.clone());
    let mut o = server.options(Mode::Download, 1 << 40, 1);
    o.server = via.to_string();
    o.idle_timeout = Some(Duration::from_secs(2));
    let killer = {
        let dead = dead.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            dead.store(true, Ordering::Relaxed);
        })
    };
    let t = Instant::now();
    let err = run_client(&o).expect_err("a dead path cannot complete 1 TiB");
    killer.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn unknown_backend_exits_2_listing_the_backends() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stoq-perf"))
        .args(["client", "127.0.0.1:4433", "--insecure", "--backend", "warp-drive"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warp-drive") && err.contains("available backends: portable"), "{err}");
}

#[test]
fn bad_size_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stoq-perf"))
        .args(["client", "127.0.0.1:4433", "--insecure", "--bytes", "12Q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("suffix"));
}
