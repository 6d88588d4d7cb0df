//! Shared helpers for stoq-core's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use stoq_core::{ClientConfig, Connection, DevPki, Endpoint, EndpointConfig, ServerConfig};

pub fn init_logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// One development PKI for the whole test binary.
pub fn pki() -> &'static DevPki {
    static PKI: OnceLock<DevPki> = OnceLock::new();
    PKI.get_or_init(|| DevPki::generate(&["localhost"]).expect("generate dev PKI"))
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn server_with(addr: SocketAddr, f: impl FnOnce(&mut EndpointConfig)) -> Endpoint {
    init_logs();
    let mut cfg = ServerConfig::new(pki().server_tls());
    f(&mut cfg.endpoint);
    Endpoint::server(addr, cfg).expect("bind server")
}

pub fn server() -> Endpoint {
    server_with(localhost(), |_| {})
}

pub fn client_with(addr: SocketAddr, f: impl FnOnce(&mut EndpointConfig)) -> Endpoint {
    init_logs();
    let mut cfg = ClientConfig::new(pki().client_tls());
    f(&mut cfg.endpoint);
    Endpoint::client(addr, cfg).expect("bind client")
}

pub fn client() -> Endpoint {
    client_with(localhost(), |_| {})
}

/// A connected pair: (client connection, server connection).
pub fn pair(server: &Endpoint, client: &Endpoint) -> (Connection, Connection) {
    let s = server.clone();
    let accept = std::thread::spawn(move || s.accept_timeout(Duration::from_secs(10)).expect("server accepted"));
    let c = client.connect(server.local_addr(), "localhost").expect("client connected");
    (c, accept.join().unwrap())
}

/// Deterministic test data: a xorshift stream, so reordering, duplication or
/// loss of any chunk changes the bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Index of the first differing byte, for readable failures without
/// printing megabytes.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then(|| a.len().min(b.len())))
}
