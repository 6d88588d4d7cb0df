//! Handshakes that must fail, and clearly; and a server under garbage.

mod common;

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use stoq_core::{ClientConfig, ClientTls, ConnectError, ConnectionError, DevPki, Endpoint};

#[test]
fn wrong_alpn_fails_with_a_clear_tls_error() {
    let server = server();
    let client = client_with(localhost(), |e| e.alpn = vec![b"not-stoq".to_vec()]);
    let err = client.connect(server.local_addr(), "localhost").unwrap_err();
    match &err {
        ConnectError::Handshake { error: ConnectionError::Tls { alert: 120, .. }, .. } => {}
        other => panic!("expected a no_application_protocol alert, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("no_application_protocol") && msg.contains("ALPN"), "{msg}");
}

#[test]
fn untrusted_certificate_fails_with_a_clear_tls_error() {
    let server = server();
    let other_ca = DevPki::generate(&["localhost"]).unwrap();
    init_logs();
    let client = Endpoint::client(localhost(), ClientConfig::new(other_ca.client_tls())).unwrap();
    let err = client.connect(server.local_addr(), "localhost").unwrap_err();
    match &err {
        ConnectError::Handshake { error: ConnectionError::Tls { by_peer: false, .. }, .. } => {}
        other => panic!("expected a local certificate alert, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("certificate"), "{msg}");
}

#[test]
fn certificate_for_another_name_is_refused() {
    let server = server();
    let client = client();
    let err = client.connect(server.local_addr(), "not-localhost.example").unwrap_err();
    assert!(matches!(err, ConnectError::Handshake { error: ConnectionError::Tls { .. }, .. }), "{err:?}");
}

#[test]
fn skip_verification_is_explicit_and_works() {
    let server = server();
    init_logs();
    let client = Endpoint::client(localhost(), ClientConfig::new(ClientTls::InsecureSkipVerify)).unwrap();
    let c = client.connect(server.local_addr(), "anything").unwrap();
    assert!(c.stats().unwrap().rtt > Duration::ZERO);
}

#[test]
fn missing_certificate_file_is_a_clear_error() {
    let cfg = stoq_core::ServerConfig::new(stoq_core::ServerTls::from_pem_files(
        "/nonexistent/cert.pem",
        "/nonexistent/key.pem",
    ));
    let err = Endpoint::server(localhost(), cfg).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/cert.pem") && msg.contains("certificate chain"), "{msg}");
}

#[test]
fn connecting_to_a_closed_port_times_out_clearly() {
    // Reserve a port, then free it so nothing listens there.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = client_with(localhost(), |e| e.transport.handshake_timeout = Duration::from_millis(800));
    let started = Instant::now();
    let err = client.connect(format!("127.0.0.1:{port}").parse().unwrap(), "localhost").unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ConnectError::TimedOut { .. }), "{err:?}");
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(5), "took {took:?}");
    assert!(err.to_string().contains("nothing is listening"), "{err}");
}

#[test]
fn server_keeps_serving_a_transfer_through_10000_garbage_datagrams() {
    let (server, client) = (server(), client());
    let (c, s) = pair(&server, &client);
    let len = 16 << 20;
    let data = pattern(7, len);
    let expected = data.clone();
    let writer = thread::spawn(move || {
        let mut send = c.open_uni().unwrap();
        send.write_all(&data).unwrap();
        send.finish().unwrap();
        c
    });
    let target = server.local_addr();
    let flood = thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 1500];
        for i in 0..10_000usize {
            let n = 1 + (i * 7919) % 1400;
            for b in buf[..n].iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            // A quarter look like long-header Initials, the rest are random.
            if i % 4 == 0 {
                buf[0] = 0xc0 | (buf[0] & 0x0f);
            }
            sock.send_to(&buf[..n], target).unwrap();
        }
    });
    let mut recv = s.accept_uni().unwrap();
    let got = recv.read_to_end(len + 1).unwrap();
    flood.join().unwrap();
    assert_eq!(first_difference(&got, &expected), None);
    writer.join().unwrap();
    let st = server.stats();
    assert!(st.undecodable + st.unroutable + st.version_negotiations + st.invalid_tokens > 0, "{st:?}");
    assert_eq!(st.accepted, 1, "garbage must not create connections: {st:?}");
    // And the server still accepts new clients afterwards.
    let (c2, _s2) = pair(&server, &client);
    assert!(c2.stats().unwrap().rtt > Duration::ZERO);
}

#[test]
fn invalid_config_is_refused_with_the_setting_named() {
    let mut cfg = stoq_core::ServerConfig::new(pki().server_tls());
    cfg.endpoint.transport.max_udp_payload = 500;
    let err = Endpoint::server(localhost(), cfg).err().expect("must fail");
    assert!(err.to_string().contains("max_udp_payload"), "{err}");
}

#[test]
fn binding_a_port_in_use_is_a_clear_error() {
    let server = server();
    let mut cfg = stoq_core::ServerConfig::new(pki().server_tls());
    cfg.endpoint.retry = true;
    let err = Endpoint::server(server.local_addr(), cfg).err().expect("must fail");
    assert!(err.to_string().contains("cannot bind"), "{err}");
}

#[test]
fn endpoint_shutdown_closes_its_connections_with_a_reason() {
    let (server, client) = (server(), client());
    let (c, _s) = pair(&server, &client);
    server.shutdown();
    match c.closed_timeout(Duration::from_secs(10)).expect("client learns the server left") {
        ConnectionError::ApplicationClosed { code: 0, reason } => assert_eq!(reason, "endpoint shutting down"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn short_header_for_an_unknown_connection_gets_a_smaller_stateless_reset() {
    let server = server();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut pkt = vec![0x5au8; 100];
    pkt[0] = 0x41; // short header, fixed bit set
    sock.send_to(&pkt, server.local_addr()).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from, server.local_addr());
    assert_eq!(n, 43, "RFC 9000 §10.3: at most 43 bytes for a packet this size");
    assert_eq!(buf[0] & 0xc0, 0x40, "looks like a short-header packet");
    // Too small to answer without risking a reset loop: silence.
    sock.send_to(&pkt[..21], server.local_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "no reset for a 21-byte packet");
    assert_eq!(server.stats().stateless_resets_sent, 1);
}

/// Forwards datagrams between one client and a server address that the
/// test can switch, to move a live connection onto another server.
struct Relay {
    addr: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Relay {
    fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = sock.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (target.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut client = None;
            let mut buf = [0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let server = *t.lock().unwrap();
                if from == server {
                    if let Some(c) = client {
                        let _ = sock.send_to(&buf[..n], c);
                    }
                } else if client.is_none_or(|c| c == from) {
                    client = Some(from);
                    let _ = sock.send_to(&buf[..n], server);
                }
                // Anything else (the old server) is dropped.
            }
        });
        Self { addr, target, stop, thread: Some(thread) }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_server_restarted_with_the_same_reset_secret_resets_old_connections() {
    let secret = stoq_core::ResetSecret([9; 32]);
    let first = server_with(localhost(), |e| e.reset_secret = Some(secret.clone()));
    let relay = Relay::start(first.local_addr());
    let client = client();
    let c = client.connect(relay.addr, "localhost").unwrap();
    let _s = first.accept_timeout(Duration::from_secs(5)).expect("accepted through the relay");

    // "Restart": the connection's packets now reach a server that has never
    // seen it, but holds the same secret.
    let restarted = server_with(localhost(), |e| e.reset_secret = Some(secret));
    *relay.target.lock().unwrap() = restarted.local_addr();
    let (mut send, _recv) = c.open_bi().unwrap();
    send.write_all(b"anyone there?").unwrap();
    let started = Instant::now();
    let why = c.closed_timeout(Duration::from_secs(10)).expect("the client learns its connection is gone");
    assert_eq!(why, ConnectionError::Reset, "after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}; the idle timeout is 30 s", started.elapsed());
    assert!(restarted.stats().stateless_resets_sent >= 1);
}
