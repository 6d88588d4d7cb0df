//! Every packet backend carries real transfers byte for byte: on loopback,
//! over a dual-stack wildcard socket (packet info picks the reply source),
//! and across a veth pair between two network namespaces (MTU 1500).

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::*;
use stoq_core::io::BackendKind;
use stoq_core::{Connection, Endpoint};
use stoq_testbed::NetnsPair;

/// Every socket backend, or those named in `STOQ_TEST_BACKENDS` (comma-separated)
/// when working on one.
fn kinds() -> Vec<BackendKind> {
    match std::env::var("STOQ_TEST_BACKENDS") {
        Ok(list) => list.split(',').map(|n| n.trim().parse().expect("backend name")).collect(),
        Err(_) => BackendKind::SOCKETS.to_vec(),
    }
}

fn on(kind: BackendKind) -> impl Fn(&mut stoq_core::EndpointConfig) + Copy {
    move |e| e.backend = kind
}

/// Sends `len` pattern bytes from `tx` to `rx` on one stream and checks them.
fn send_and_verify(tx: Connection, rx: &Connection, len: usize, what: &str) {
    let data = pattern(len as u64 ^ 0x5eed, len);
    let expected = data.clone();
    let writer = thread::spawn(move || {
        let mut send = tx.open_uni().unwrap();
        for chunk in data.chunks(256 << 10) {
            send.write_all(chunk).unwrap();
        }
        send.finish().unwrap();
        tx
    });
    let got = rx.accept_uni().unwrap().read_to_end(len + 1).unwrap();
    assert_eq!(got.len(), len, "{what}: length");
    assert_eq!(first_difference(&got, &expected), None, "{what}: first wrong byte");
    writer.join().unwrap();
}

/// Both directions between a connected pair.
fn both_ways(c: &Connection, s: &Connection, len: usize, what: &str) {
    send_and_verify(c.clone(), s, len, &format!("{what} upload"));
    send_and_verify(s.clone(), c, len, &format!("{what} download"));
}

fn batching_evident(e: &Endpoint, kind: BackendKind) {
    let st = e.stats();
    assert_eq!((st.tx_errors, st.rx_errors), (0, 0), "{kind}: {st:?}");
    if kind != BackendKind::Portable {
        // Several datagrams per system call is the point of these backends.
        assert!(st.tx_datagrams > 2 * st.tx_syscalls, "{kind}: no send batching: {st:?}");
    }
}

#[test]
fn every_backend_moves_32_mib_each_way_on_loopback() {
    for kind in kinds() {
        let server = server_with(localhost(), on(kind));
        let client = client_with(localhost(), on(kind));
        assert_eq!((server.backend(), client.backend()), (kind, kind));
        let (c, s) = pair(&server, &client);
        both_ways(&c, &s, 32 << 20, kind.name());
        batching_evident(&server, kind);
        batching_evident(&client, kind);
    }
}

#[test]
fn backends_interoperate_with_each_other() {
    let kinds = kinds();
    for (i, &a) in kinds.iter().enumerate() {
        let b = kinds[(i + 1) % kinds.len()];
        let (server, client) = (server_with(localhost(), on(a)), client_with(localhost(), on(b)));
        let (c, s) = pair(&server, &client);
        both_ways(&c, &s, 4 << 20, &format!("{b} client -> {a} server"));
    }
}

#[test]
fn wildcard_dual_stack_server_replies_from_the_addressed_ip_on_every_backend() {
    for kind in kinds() {
        let server = server_with("[::]:0".parse().unwrap(), on(kind));
        let port = server.local_addr().port();
        for (bind, target) in [("127.0.0.1:0", format!("127.0.0.1:{port}")), ("[::1]:0", format!("[::1]:{port}"))] {
            let client = client_with(bind.parse().unwrap(), on(kind));
            let target: SocketAddr = target.parse().unwrap();
            let s = server.clone();
            let accept = thread::spawn(move || s.accept_timeout(Duration::from_secs(10)).expect("accepted"));
            let c = client.connect(target, "localhost").unwrap_or_else(|e| panic!("{kind} {bind}: {e}"));
            let s = accept.join().unwrap();
            // The server's side of the path is the exact address the client
            // used (packet info; the portable backend cannot tell).
            if kind != BackendKind::Portable {
                assert_eq!(s.local_addr().ip().to_canonical(), target.ip(), "{kind}");
            }
            both_ways(&c, &s, 1 << 20, &format!("{kind} {bind}"));
        }
    }
}

#[test]
fn every_backend_moves_32_mib_each_way_across_a_veth_pair() {
    let Some(net) = NetnsPair::create() else { return };
    for kind in kinds() {
        let server_addr = SocketAddr::new(net.addrs[1], 4433);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let server = net.run_in(1, move || {
            let server = server_with(server_addr, on(kind));
            ready_tx.send(()).unwrap();
            let s = server.accept_timeout(Duration::from_secs(20)).expect("accepted across veth");
            (server, s)
        });
        ready_rx.recv().unwrap();
        let client = net.run_in(0, move || client_with(SocketAddr::new(net_addr_any(), 0), on(kind))).join().unwrap();
        let c = client.connect(server_addr, "localhost").unwrap_or_else(|e| panic!("{kind}: {e}"));
        let (server, s) = server.join().unwrap();
        both_ways(&c, &s, 32 << 20, &format!("{kind} over veth"));
        batching_evident(&server, kind);
        batching_evident(&client, kind);
    }
}

fn net_addr_any() -> std::net::IpAddr {
    std::net::Ipv4Addr::UNSPECIFIED.into()
}
