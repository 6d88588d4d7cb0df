//! The node's services and demo, over real loopback connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use stoq_perf::profile::{Chosen, ProfileArgs};

use stoq_core::io::BackendKind;
use stoq_core::{ClientConfig, Connection, DevPki, Endpoint};
use stoq_node::demo::{DemoOptions, echo_round_trip, run_demo};
use stoq_node::serve::{serve, start_server};
use stoq_perf::pattern::fill;
use stoq_perf::server::CertSource;

struct Node {
    endpoint: Endpoint,
    ca: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A scratch directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Node {
    fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("stoq-node-test-{name}-{}", std::process::id()));
        let cert = CertSource::DevPkiIn(dir.clone());
        let (endpoint, ca) = start_server("127.0.0.1:0".parse().unwrap(), &cert, &Default::default()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (ep, st) = (endpoint.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(&ep, &st));
        Self { endpoint, ca: ca.expect("dev PKI has a CA"), stop, thread: Some(thread), _dir: tempdir::Dir(dir) }
    }

    fn connect(&self) -> (Endpoint, Connection) {
        let client = Endpoint::client(
            "127.0.0.1:0".parse().unwrap(),
            ClientConfig::new(stoq_core::ClientTls::CaFile(self.ca.clone())),
        )
        .unwrap();
        let conn = client.connect(self.endpoint.local_addr(), "localhost").unwrap();
        (client, conn)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.endpoint.shutdown();
    }
}

#[test]
fn demo_moves_and_verifies_the_requested_bytes() {
    let opts = DemoOptions { bytes: 4 << 20, streams: 3, echo_bytes: 32 << 10, ..DemoOptions::default() };
    let r = run_demo(&opts).expect("demo succeeds");
    assert_eq!(r.download.bytes_download, 4 << 20);
    assert_eq!(r.download.bytes_upload, 0);
    assert_eq!(r.upload.bytes_upload, 4 << 20);
    assert_eq!(r.upload.bytes_download, 0);
    assert!(r.download.verified && r.upload.verified);
    assert_eq!(r.backend, "portable");
    assert_eq!(r.echo_bytes, 32 << 10);
    let text = r.summary();
    assert!(text.contains("not a hardware probe") && text.contains("Gbit/s"), "{text}");
    assert!(text.contains("profile: none (--tier none)"), "{text}");
}

#[test]
fn demo_with_the_probed_profile_shows_the_probe_and_runs_with_its_settings() {
    let chosen = ProfileArgs::default().resolve(true, "127.0.0.1".parse().unwrap(), None).expect("a profile");
    let sel = chosen.selection.clone().expect("auto probes");
    assert_eq!(sel.interface.as_deref(), Some("lo"), "the demo runs on loopback");
    let opts = DemoOptions { bytes: 4 << 20, streams: 2, echo_bytes: 1 << 10, chosen };
    let r = run_demo(&opts).expect("demo succeeds");
    assert_eq!((r.download.bytes_download, r.upload.bytes_upload), (4 << 20, 4 << 20));
    // The profile really reached the backend, not just the report.
    assert_eq!(r.backend, sel.profile.backend.name());
    assert_eq!(r.capabilities.rx_batch, sel.profile.batch);
    assert_eq!(r.max_payload, sel.profile.max_udp_payload);
    let text = r.summary();
    for part in ["Host", "Interface lo", "Tier: ", "Profile", "Step-downs"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

#[test]
fn demo_runs_on_the_linux_backends() {
    for backend in [BackendKind::LinuxBatch, BackendKind::IoUring] {
        let chosen = Chosen { backend, ..Chosen::default() };
        let opts = DemoOptions { bytes: 2 << 20, streams: 2, echo_bytes: 1 << 10, chosen };
        let r = run_demo(&opts).unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!((r.download.bytes_download, r.upload.bytes_upload), (2 << 20, 2 << 20), "{backend}");
        assert_eq!(r.backend, backend.name());
    }
}

#[test]
fn echo_returns_exactly_what_was_sent() {
    let node = Node::start("echo");
    let (_client, conn) = node.connect();
    let (mut send, mut recv) = conn.open_bi().unwrap();
    let mut msg = vec![0u8; 300_000];
    fill(5, 0, &mut msg);
    let reader = std::thread::spawn(move || recv.read_to_end(1 << 20));
    send.write_all(b"ECHO").unwrap();
    send.write_all(&msg).unwrap();
    send.finish().unwrap();
    let back = reader.join().unwrap().unwrap();
    assert_eq!(back.len(), msg.len());
    assert!(back == msg, "echo altered the bytes");
}

#[test]
fn echo_of_nothing_is_nothing() {
    let node = Node::start("echo-empty");
    let (_client, conn) = node.connect();
    let (mut send, mut recv) = conn.open_bi().unwrap();
    send.write_all(b"ECHO").unwrap();
    send.finish().unwrap();
    assert_eq!(recv.read_to_end(16).unwrap(), b"");
}

#[test]
fn echo_helper_round_trips_through_the_node() {
    let node = Node::start("echo-helper");
    let client = Endpoint::client(
        "127.0.0.1:0".parse().unwrap(),
        ClientConfig::new(stoq_core::ClientTls::CaFile(node.ca.clone())),
    )
    .unwrap();
    echo_round_trip(&client, node.endpoint.local_addr(), 10_000).expect("echo round trip");
}

#[test]
fn unknown_tag_gets_an_empty_finished_stream() {
    let node = Node::start("unknown");
    let (_client, conn) = node.connect();
    let (mut send, mut recv) = conn.open_bi().unwrap();
    send.write_all(b"WHAT are you").unwrap();
    // What actually happens: the server stops our half and finishes its own
    // without data, so the read ends cleanly and empty (not an error).
    assert_eq!(recv.read_to_end(1024).unwrap(), Vec::<u8>::new());
    // The connection stays usable for other services.
    let (mut send, mut recv) = conn.open_bi().unwrap();
    send.write_all(b"ECHOhi").unwrap();
    send.finish().unwrap();
    assert_eq!(recv.read_to_end(16).unwrap(), b"hi");
}

#[test]
fn perf_service_is_hosted_by_the_node() {
    let node = Node::start("perf");
    let mut o = stoq_perf::ClientOptions::new(
        node.endpoint.local_addr().to_string(),
        stoq_core::ClientTls::CaFile(node.ca.clone()),
    );
    o.mode = stoq_perf::client::Mode::Bidir;
    o.amount = stoq_perf::client::Amount::Bytes(2 << 20);
    o.streams = 2;
    let r = stoq_perf::run_client(&o).expect("perf against the node");
    assert_eq!((r.bytes_upload, r.bytes_download), (2 << 20, 2 << 20));
}

#[test]
fn missing_certificate_files_are_reported() {
    let cert = CertSource::Files { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
    let Err(err) = start_server("127.0.0.1:0".parse().unwrap(), &cert, &Default::default()) else {
        panic!("missing files must not start a server");
    };
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn dev_pki_is_usable_by_a_client() {
    // A sanity check that the node's generated CA is what clients verify with.
    let node = Node::start("pki");
    assert!(node.ca.ends_with("ca.pem"));
    let other = DevPki::generate(&["localhost"]).unwrap();
    let client = Endpoint::client("127.0.0.1:0".parse().unwrap(), ClientConfig::new(other.client_tls())).unwrap();
    assert!(client.connect(node.endpoint.local_addr(), "localhost").is_err(), "a foreign CA must be refused");
}
