//! Helpers shared by the integration tests: an in-process perf server, and
//! a `stoq-perf server` process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use serde_json::Value;
use stoq_core::{DevPki, Endpoint, ServerConfig};
use stoq_perf::client::{Amount, ClientOptions, Mode};
use stoq_testbed::NetnsPair;

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
        Self::on(endpoint, pki)
    }

    /// Serves the perf service on `endpoint`, whose certificate `pki` issued.
    pub fn on(endpoint: Endpoint, pki: DevPki) -> Self {
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

/// A `stoq-perf server` process, killed (SIGKILL) on drop.
pub struct ServerProcess(pub Child);

impl ServerProcess {
    /// Spawns `cmd` (a `stoq-perf server` command line) and waits until it
    /// says it is listening; panics with what it said if it exits first.
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut server = ServerProcess(cmd.stderr(Stdio::piped()).spawn().expect("spawn stoq-perf server"));
        let mut said = String::new();
        let mut lines = BufReader::new(server.0.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            said += &line;
            said.push('\n');
            if line.contains("listening on") {
                // Keep reading: a closed pipe would kill the server early.
                std::thread::spawn(move || lines.for_each(drop));
                return server;
            }
        }
        panic!("stoq-perf server exited before listening: {said}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stoq-perf binary under test.
pub const PERF: &str = env!("CARGO_BIN_EXE_stoq-perf");

/// A successful command's stdout as JSON; panics with its stderr otherwise.
pub fn json_of(out: Output, what: &str) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed ({}): {stderr}", out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: no JSON on stdout ({e}); stderr: {stderr}"))
}

/// `stoq-perf probe --json` in namespace `i`, for its veth end.
pub fn probe(net: &NetnsPair, i: usize) -> Value {
    let out = net.command(i, PERF).args(["probe", "--json", "--interface", &net.links[i]]).output().unwrap();
    json_of(out, "stoq-perf probe")
}
