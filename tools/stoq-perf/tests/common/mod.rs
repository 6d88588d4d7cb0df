//! Helpers shared by the integration tests: an in-process perf server.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use stoq_core::{DevPki, Endpoint, ServerConfig};
use stoq_perf::client::{Amount, ClientOptions, Mode};

/// A perf server on 127.0.0.1 that stops when dropped.
pub struct TestServer {
    pub endpoint: Endpoint,
    pub pki: DevPki,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let pki = DevPki::generate(&["localhost"]).expect("dev PKI");
        let endpoint = Endpoint::server("127.0.0.1:0".parse().unwrap(), ServerConfig::new(pki.server_tls()))
            .expect("server endpoint");
        let stop = Arc::new(AtomicBool::new(false));
        let (ep, st) = (endpoint.clone(), stop.clone());
        let thread = std::thread::spawn(move || stoq_perf::server::run_server(&ep, &st));
        Self { endpoint, pki, stop, thread: Some(thread) }
    }

    pub fn options(&self, mode: Mode, bytes: u64, streams: usize) -> ClientOptions {
        let mut o = ClientOptions::new(self.endpoint.local_addr().to_string(), self.pki.client_tls());
        o.mode = mode;
        o.amount = Amount::Bytes(bytes);
        o.streams = streams;
        o
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.endpoint.shutdown();
    }
}

/// A small deterministic generator for test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        stoq_perf::pattern::mix64(self.0)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
