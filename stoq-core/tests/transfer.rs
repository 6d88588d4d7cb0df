//! Real transfers over loopback UDP, checked byte for byte.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use stoq_core::{ConnectionError, ReadError, WriteError};

#[test]
fn handshake_negotiates_stoq_alpn_and_reports_stats() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    assert_eq!(c.remote_addr(), server.local_addr());
    assert_eq!(s.remote_addr().port(), client.local_addr().port());
    let st = c.stats().unwrap();
    assert!(st.sent_packets > 0 && st.recv_packets > 0, "{st:?}");
    assert!(st.rtt > Duration::ZERO && st.cwnd > 0, "{st:?}");
    // The default server demands a Retry round trip first (one per Initial
    // datagram of the client's first flight, which a post-quantum key share
    // can spread over two).
    assert!(server.stats().retries_sent >= 1);
    assert_eq!(server.stats().accepted, 1);
}

fn transfer(upload: bool, len: usize) {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let (tx_conn, rx_conn) = if upload { (c.clone(), s.clone()) } else { (s.clone(), c.clone()) };
    let data = pattern(len as u64, len);
    let expected = data.clone();
    let writer = thread::spawn(move || {
        let mut send = tx_conn.open_uni().unwrap();
        for chunk in data.chunks(100_000) {
            send.write_all(chunk).unwrap();
        }
        send.finish().unwrap();
        tx_conn
    });
    let mut recv = rx_conn.accept_uni().unwrap();
    let got = recv.read_to_end(len + 1).unwrap();
    assert_eq!(got.len(), expected.len());
    assert_eq!(first_difference(&got, &expected), None);
    let tx_conn = writer.join().unwrap();
    let st = tx_conn.stats().unwrap();
    assert!(st.sent_bytes as usize > len, "sender stats count the payload: {st:?}");
}

#[test]
fn upload_64_mib_byte_exact() {
    transfer(true, 64 << 20);
}

#[test]
fn download_64_mib_byte_exact() {
    transfer(false, 64 << 20);
}

#[test]
fn hundred_concurrent_bidirectional_streams_echo_exactly() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let echo = thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..100 {
            let (mut send, mut recv) = s.accept_bi().unwrap();
            workers.push(thread::spawn(move || {
                let msg = recv.read_to_end(1 << 20).unwrap();
                send.write_all(&msg).unwrap();
                send.finish().unwrap();
            }));
        }
        for w in workers {
            w.join().unwrap();
        }
        s
    });
    let mut streams = Vec::new();
    for i in 0..100u64 {
        let c = c.clone();
        streams.push(thread::spawn(move || {
            let (mut send, mut recv) = c.open_bi().unwrap();
            let msg = pattern(i + 1, 20_000 + i as usize * 97);
            send.write_all(&msg).unwrap();
            send.finish().unwrap();
            let back = recv.read_to_end(1 << 20).unwrap();
            assert_eq!(first_difference(&back, &msg), None, "stream {i}");
            send.id()
        }));
    }
    let mut ids: Vec<u64> = streams.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every stream had its own ID");
    echo.join().unwrap();
}

#[test]
fn more_streams_than_the_peer_allows_wait_for_credit() {
    let server = server_with(localhost(), |e| e.transport.max_streams_bidi = 4);
    let client = client();
    let (c, s) = pair(&server, &client);
    let echo = thread::spawn(move || {
        for _ in 0..12 {
            let (mut send, mut recv) = s.accept_bi().unwrap();
            let msg = recv.read_to_end(1024).unwrap();
            send.write_all(&msg).unwrap();
            send.finish().unwrap();
        }
        s
    });
    for i in 0..12u8 {
        let (mut send, mut recv) = c.open_bi().unwrap();
        send.write_all(&[i; 100]).unwrap();
        send.finish().unwrap();
        assert_eq!(recv.read_to_end(1024).unwrap(), vec![i; 100]);
    }
    echo.join().unwrap();
}

#[test]
fn datagrams_arrive_intact_and_oversize_is_refused() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let max = c.max_datagram_size().expect("datagrams negotiated");
    assert!(max > 1000 && max < 1452, "max datagram {max}");
    let err = c.send_datagram(&vec![0; max + 1]).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    let mut got = Vec::new();
    for i in 0..20u8 {
        c.send_datagram(&[i; 500]).unwrap();
        // Loopback rarely drops; wait for each so the test is deterministic.
        let d = s.recv_datagram_timeout(Duration::from_secs(5)).unwrap().expect("datagram arrived");
        got.push(d);
    }
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d, &vec![i as u8; 500]);
    }
    s.send_datagram(b"pong").unwrap();
    assert_eq!(c.recv_datagram_timeout(Duration::from_secs(5)).unwrap().unwrap(), b"pong");
}

#[test]
fn idle_connections_time_out_on_both_sides() {
    let idle = Duration::from_millis(600);
    let server = server_with(localhost(), |e| e.transport.idle_timeout = idle);
    let client = client_with(localhost(), |e| e.transport.idle_timeout = idle);
    let (c, s) = pair(&server, &client);
    let started = std::time::Instant::now();
    let why = c.closed_timeout(Duration::from_secs(10)).expect("client side closed");
    assert!(matches!(why, ConnectionError::TimedOut(_)), "{why:?}");
    assert!(started.elapsed() >= idle / 2, "closed too early: {:?}", started.elapsed());
    let why = s.closed_timeout(Duration::from_secs(10)).expect("server side closed");
    assert!(matches!(why, ConnectionError::TimedOut(_)), "{why:?}");
    // Using a dead connection reports why it died.
    match c.open_bi() {
        Err(ConnectionError::TimedOut(_)) => {}
        other => panic!("open_bi on a timed-out connection: {:?}", other.map(|_| ())),
    }
}

#[test]
fn close_with_code_reaches_the_peer_and_fails_pending_reads() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let (mut send, _recv) = c.open_bi().unwrap();
    send.write_all(b"x").unwrap();
    let (_ssend, mut srecv) = s.accept_bi().unwrap();
    let mut buf = [0; 8];
    assert_eq!(srecv.read(&mut buf).unwrap(), Some(1));
    c.close(42, b"bye");
    match srecv.read(&mut buf) {
        Err(ReadError::ConnectionLost(ConnectionError::ApplicationClosed { code: 42, reason })) => {
            assert_eq!(reason, "bye")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(c.closed(), ConnectionError::LocallyClosed { code: 42, .. }));
    assert!(matches!(send.write(b"more"), Err(WriteError::ConnectionLost(_))));
}

#[test]
fn dropping_a_receiver_stops_the_sender() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let mut send = c.open_uni().unwrap();
    send.write_all(&[1; 1000]).unwrap();
    let recv = s.accept_uni().unwrap();
    drop(recv);
    // Writes fail once the STOP_SENDING arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match send.write(&[2; 65536]) {
            // Which of the two depends on whether quiche reported the stop
            // before it finished resetting the stream.
            Err(WriteError::Stopped(0) | WriteError::Closed) => break,
            Ok(_) if std::time::Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            other => panic!("expected Stopped(0), got {other:?}"),
        }
    }
}

#[test]
fn dual_stack_server_serves_ipv4_and_ipv6_clients() {
    let server = server_with("[::]:0".parse().unwrap(), |_| {});
    let port = server.local_addr().port();
    for (bind, target) in [("127.0.0.1:0", format!("127.0.0.1:{port}")), ("[::1]:0", format!("[::1]:{port}"))] {
        let client = client_with(bind.parse().unwrap(), |_| {});
        let s = server.clone();
        let accept = thread::spawn(move || {
            let conn = s.accept_timeout(Duration::from_secs(10)).expect("accepted");
            let (mut send, mut recv) = conn.accept_bi().unwrap();
            let m = recv.read_to_end(100).unwrap();
            send.write_all(&m).unwrap();
            send.finish().unwrap();
            conn
        });
        let c = client.connect(target.parse().unwrap(), "localhost").unwrap();
        let (mut send, mut recv) = c.open_bi().unwrap();
        send.write_all(bind.as_bytes()).unwrap();
        send.finish().unwrap();
        assert_eq!(recv.read_to_end(100).unwrap(), bind.as_bytes());
        accept.join().unwrap();
    }
}

#[test]
fn without_retry_the_server_accepts_on_the_first_initial() {
    let server = server_with(localhost(), |e| e.retry = false);
    let client = client();
    let (c, _s) = pair(&server, &client);
    assert!(c.stats().unwrap().rtt > Duration::ZERO);
    assert_eq!(server.stats().retries_sent, 0);
    assert_eq!(server.stats().accepted, 1);
}

#[test]
fn full_duplex_echo_on_one_stream_never_stalls() {
    // Both directions of one stream busy at once, with buffers full: the
    // reader's and the writer's wake-ups share one flag, which once lost the
    // reader's.
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let echo = thread::spawn(move || {
        let (mut send, mut recv) = s.accept_bi().unwrap();
        let mut buf = vec![0; 50_000];
        while let Some(n) = recv.read(&mut buf).unwrap() {
            send.write_all(&buf[..n]).unwrap();
        }
        send.finish().unwrap();
        s
    });
    let (mut send, mut recv) = c.open_bi().unwrap();
    let len = 24 << 20;
    let data = pattern(99, len);
    let expected = data.clone();
    let writer = thread::spawn(move || {
        for chunk in data.chunks(70_000) {
            send.write_all(chunk).unwrap();
        }
        send.finish().unwrap();
    });
    let got = recv.read_to_end(len + 1).unwrap();
    writer.join().unwrap();
    assert_eq!(first_difference(&got, &expected), None);
    echo.join().unwrap();
}

#[test]
fn dropping_every_handle_after_finish_still_delivers_everything() {
    // A large send buffer, so most of the data is still queued when the
    // last handle goes.
    let server = server();
    let client = client_with(localhost(), |e| e.transport.stream_buffer = 32 << 20);
    let (c, s) = pair(&server, &client);
    let len = 32 << 20;
    let data = pattern(5, len);
    let reader = thread::spawn(move || {
        let mut recv = s.accept_uni().unwrap();
        let got = recv.read_to_end(len + 1);
        (got, s)
    });
    let mut send = c.open_uni().unwrap();
    send.write_all(&data).unwrap();
    send.finish().unwrap();
    drop(send);
    drop(c); // the last handle: the connection must linger until delivered
    let (got, s) = reader.join().unwrap();
    let got = got.expect("all data arrives before the implicit close");
    assert_eq!(first_difference(&got, &data), None);
    // Then it does close, with code 0.
    match s.closed_timeout(Duration::from_secs(10)) {
        Some(ConnectionError::ApplicationClosed { code: 0, .. }) => {}
        other => panic!("expected the released connection to close with code 0: {other:?}"),
    }
}

#[test]
fn a_peer_cannot_make_an_unaccepting_application_buffer_without_bound() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = server_with(localhost(), |e| e.transport.max_streams_uni = 4);
    let client = client();
    let (c, s) = pair(&server, &client);
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    let writer = thread::spawn(move || {
        for i in 0..20u64 {
            let mut send = c.open_uni().unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            send.write_all(&pattern(i + 1, 256 << 10)).unwrap();
            send.finish().unwrap();
        }
        c
    });
    // Nobody accepts: streams beyond the peer's limit must wait, not pile up.
    thread::sleep(Duration::from_millis(1500));
    let before_accepting = opened.load(Ordering::SeqCst);
    assert!(before_accepting <= 4, "{before_accepting} streams opened against a limit of 4 with none accepted");
    for i in 0..20u64 {
        let mut recv = s.accept_uni().unwrap();
        let got = recv.read_to_end(1 << 20).unwrap();
        assert_eq!(first_difference(&got, &pattern(i + 1, 256 << 10)), None, "stream {i}");
    }
    writer.join().unwrap();
}

#[test]
fn read_chunk_hands_over_the_stream_in_order_within_the_size_asked() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let data = pattern(99, 3 << 20);
    let expected = data.clone();
    let writer = thread::spawn(move || {
        let mut send = s.open_uni().unwrap();
        send.write_all(&data).unwrap();
        send.finish().unwrap();
        s
    });
    let mut recv = c.accept_uni().unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = recv.read_chunk(10_000).unwrap() {
        assert!(!chunk.is_empty() && chunk.len() <= 10_000, "chunk of {}", chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(first_difference(&got, &expected), None);
    assert_eq!(recv.read_chunk(10_000).unwrap(), None, "the end stays the end");
    writer.join().unwrap();
}
