//! Loopback tests: the quinn-perf server and client in one process on
//! 127.0.0.1, moving real verified bytes, and misbehaving peers that must be
//! caught.

use std::net::SocketAddr;

use quinn::Endpoint;
use quinn_perf::client::{ClientError, Mode, run_client};
use quinn_perf::tls::{insecure_client_config, server_config};
use stoq_perf::pattern::Generator;
use stoq_perf::protocol::{Direction, PerfResult, REQUEST_LEN, Request, Status, TAG_PERF};

const SIZE: u64 = 32 << 20;

fn local() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

fn start_server() -> SocketAddr {
    let ep = quinn_perf::endpoint(local(), Some(server_config().unwrap())).unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(quinn_perf::serve(ep));
    addr
}

fn client() -> Endpoint {
    let mut ep = quinn_perf::endpoint(local(), None).unwrap();
    ep.set_default_client_config(insecure_client_config().unwrap());
    ep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_and_upload_32_mib_are_verified() {
    let server = start_server();
    let ep = client();
    for mode in [Mode::Download, Mode::Upload] {
        let o = run_client(&ep, server, mode, SIZE).await.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(o.bytes, SIZE, "{mode:?}");
        assert!(o.verified && o.gbps > 0.0 && o.datagrams_sent > 0, "{o:?}");
        assert_eq!(o.max_payload, 1452);
    }
    // Sanity of the JSON shape the benchmark scripts read.
    let o = run_client(&ep, server, Mode::Download, 1 << 20).await.unwrap();
    let v = serde_json::to_value(&o).unwrap();
    for key in ["mode", "bytes", "secs", "gbps", "cpu_user", "cpu_sys", "verified"] {
        assert!(v.get(key).is_some(), "JSON lacks {key}: {v}");
    }
    assert_eq!(v["mode"], "download");
}

/// A server that answers downloads with a payload whose byte `flip` is wrong.
fn start_corrupting_server(flip: u64) -> SocketAddr {
    let ep = quinn_perf::endpoint(local(), Some(server_config().unwrap())).unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        let conn = ep.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut hello = [0u8; 4 + REQUEST_LEN];
        recv.read_exact(&mut hello).await.unwrap();
        let req = Request::decode(hello[4..].try_into().unwrap()).unwrap();
        let mut payload = vec![0u8; req.length.unwrap() as usize];
        Generator::new(req.seed).next_chunk(&mut payload);
        payload[flip as usize] ^= 0x01;
        let _ = send.write_all(&payload).await;
        let _ = send.finish();
        conn.closed().await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_download_is_detected() {
    let server = start_corrupting_server(1_000_003);
    match run_client(&client(), server, Mode::Download, 4 << 20).await {
        Err(ClientError::Mismatch(m)) => assert_eq!(m.offset, 1_000_003),
        other => panic!("corruption not detected: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_upload_is_rejected_by_the_server() {
    let server = start_server();
    let conn = client().connect(server, "localhost").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let req = Request { direction: Direction::Upload, length: Some(4 << 20), seed: 7 };
    send.write_all(&TAG_PERF).await.unwrap();
    send.write_all(&req.encode()).await.unwrap();
    let mut payload = vec![0u8; 4 << 20];
    Generator::new(7).next_chunk(&mut payload);
    payload[2_000_001] ^= 0x80;
    // The server may stop the stream as soon as it sees the bad byte.
    if send.write_all(&payload).await.is_ok() {
        let _ = send.finish();
    }
    let answer = recv.read_to_end(64).await.unwrap();
    let res = PerfResult::decode(&answer).unwrap();
    assert_eq!(res.status, Status::PatternMismatch);
    assert_eq!(res.bytes_verified, 2_000_001);
}
