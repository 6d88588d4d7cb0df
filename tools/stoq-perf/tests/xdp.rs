//! The AF_XDP backend on a real link: two network namespaces joined by a
//! veth pair (MTU 1500), STOQ's XDP program in native and in generic mode.
//! Needs root (CI is root); elsewhere each test says it is skipped.
//!
//! - 256 MiB each way, verified byte for byte by stoq-perf's receiver, with
//!   AF_XDP on the server and the kernel path (linux-batch) on the client,
//!   then AF_XDP on both; the endpoints' counters show the datagrams took
//!   the AF_XDP path, not the companion kernel socket.
//! - While the program is attached, ping and a plain UDP socket on another
//!   port keep working.
//! - A `stoq-perf server` killed with SIGKILL leaves no program behind.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{PERF, ServerProcess, TestServer, json_of, probe};
use stoq_core::io::BackendKind;
use stoq_core::{DevPki, Endpoint, EndpointStats, ServerConfig};
use stoq_perf::client::{Mode, run_client};
use stoq_perf::report::Report;
use stoq_testbed::NetnsPair;
use stoq_xdp::{AttachMode, XdpConfig, XdpOpener};

const BYTES: u64 = 256 << 20;
const PORT: u16 = 4433;

/// Transfers share two cores; one test at a time keeps them from starving
/// each other's handshakes.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A perf server with the AF_XDP backend on end 0's veth, in namespace 0.
fn xdp_server(net: &NetnsPair, mode: AttachMode) -> TestServer {
    let pki = DevPki::generate(&["localhost"]).unwrap();
    let mut cfg = ServerConfig::new(pki.server_tls());
    cfg.endpoint.backend = BackendKind::AfXdp;
    cfg.endpoint.opener = Some(XdpOpener::shared(XdpConfig { mode, ..XdpConfig::new(&net.links[0]) }));
    let listen = SocketAddr::new(net.addrs[0], PORT);
    let endpoint = net.run_scoped(0, || Endpoint::server(listen, cfg)).expect("AF_XDP server endpoint");
    TestServer::on(endpoint, pki)
}

/// Runs a verified transfer from namespace 1 and returns the client's
/// report fields that matter here.
fn transfer(net: &NetnsPair, server: &TestServer, mode: Mode, client_xdp: Option<AttachMode>) -> Report {
    let mut o = server.options(mode, BYTES, 2);
    if let Some(m) = client_xdp {
        o.backend = BackendKind::AfXdp;
        o.opener = Some(XdpOpener::shared(XdpConfig { mode: m, ..XdpConfig::new(&net.links[1]) }));
    } else {
        o.backend = BackendKind::LinuxBatch;
    }
    let r = net.run_scoped(1, || run_client(&o)).unwrap_or_else(|e| panic!("{mode:?} transfer failed: {e}"));
    assert!(r.verified);
    let (got, want) = match mode {
        Mode::Download => (r.bytes_download, BYTES),
        _ => (r.bytes_upload, BYTES),
    };
    assert_eq!(got, want, "every byte arrived and was checked");
    r
}

/// Datagrams a side may move through its kernel socket besides 1%: the
/// handshake's first packets (sent before the neighbour entry exists) and,
/// in generic mode, a kernel peer's GSO bursts of handshake packets.
const STRAGGLERS: u64 = 16;

/// Most datagrams took the AF_XDP path: the companion kernel socket saw
/// only the handshake's first packets and stragglers ([`STRAGGLERS`]). With `rx_by_kernel`, received data is expected
/// through the kernel instead (see below).
fn assert_xdp_path(what: &str, rx: u64, rx_kernel: u64, tx: u64, tx_kernel: u64, rx_by_kernel: bool) {
    eprintln!("{what}: rx {rx} ({rx_kernel} via the kernel socket), tx {tx} ({tx_kernel} via the kernel socket)");
    // One side carries the data, the other mostly ACKs (far fewer).
    assert!(rx + tx > 50_000 && rx.min(tx) > 100, "{what}: too little traffic to judge");
    if rx_by_kernel {
        assert!(rx_kernel * 2 > rx, "{what}: only {rx_kernel} of {rx} received datagrams came through the kernel");
    } else {
        assert!(rx_kernel <= rx / 100 + STRAGGLERS, "{what}: {rx_kernel} of {rx} received datagrams bypassed AF_XDP");
    }
    assert!(tx_kernel <= tx / 100 + STRAGGLERS, "{what}: {tx_kernel} of {tx} sent datagrams bypassed AF_XDP");
}

/// Generic XDP runs before a veth peer's UDP GSO bursts are segmented, so
/// the program passes those (longer than any wire frame) to the kernel,
/// which segments them for the companion socket: a kernel-path client's
/// uploads reach a generic-mode server that way. Native XDP on veth makes
/// the peer segment before sending.
fn server_path(what: &str, before: &EndpointStats, after: &EndpointStats, rx_by_kernel: bool) {
    assert_xdp_path(
        what,
        after.rx_datagrams - before.rx_datagrams,
        after.rx_kernel_path - before.rx_kernel_path,
        after.tx_datagrams - before.tx_datagrams,
        after.tx_kernel_path - before.tx_kernel_path,
        rx_by_kernel,
    );
}

/// Whether namespace `i`'s veth end has an XDP program attached.
fn has_xdp(net: &NetnsPair, i: usize) -> bool {
    let out = net.output(i, "ip", &["-d", "link", "show", &net.links[i]]).expect("ip link show");
    out.contains("prog/xdp")
}

#[test]
fn af_xdp_carries_256_mib_each_way_in_native_and_generic_mode() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = NetnsPair::create() else { return };
    for mode in [AttachMode::Native, AttachMode::Generic] {
        let server = xdp_server(&net, mode);
        assert!(has_xdp(&net, 0), "{mode:?}: the program is attached");
        assert!(!server.endpoint.capabilities().zero_copy, "veth has no zero-copy AF_XDP");
        for client in [None, Some(mode)] {
            for dir in [Mode::Download, Mode::Upload] {
                let what =
                    format!("{mode:?} XDP, client {}, {dir:?}", if client.is_some() { "AF_XDP" } else { "kernel" });
                let before = server.endpoint.stats();
                let started = Instant::now();
                let r = transfer(&net, &server, dir, client);
                eprintln!(
                    "{what}: {:.3} Gbit/s verified, {} packets lost, {:.1} s",
                    r.goodput_gbps,
                    r.packets_lost,
                    started.elapsed().as_secs_f64()
                );
                let gso_uploads = mode == AttachMode::Generic && client.is_none() && dir == Mode::Upload;
                server_path(&format!("{what}, server"), &before, &server.endpoint.stats(), gso_uploads);
                if client.is_some() {
                    assert_eq!(r.backend, "af_xdp");
                    assert_xdp_path(
                        &format!("{what}, client"),
                        r.datagrams_received,
                        r.rx_kernel_path,
                        r.datagrams_sent,
                        r.tx_kernel_path,
                        false,
                    );
                }
            }
        }
        drop(server);
        assert!(!has_xdp(&net, 0), "{mode:?}: the program is detached when the endpoint closes");
    }
}

#[test]
fn ping_and_other_udp_keep_working_while_the_program_is_attached() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = NetnsPair::create() else { return };
    let server = xdp_server(&net, AttachMode::Native);
    assert!(has_xdp(&net, 0));
    // ICMP (and the ARP that precedes it) is passed to the kernel.
    let addr0 = net.addrs[0].to_string();
    net.output(1, "ping", &["-c", "3", "-i", "0.2", "-W", "2", &addr0]).expect("ping through the attached program");
    // UDP to another port reaches a plain kernel socket, both ways.
    let rx = net.run_scoped(0, || UdpSocket::bind((net.addrs[0], 5555))).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = net.run_scoped(1, || UdpSocket::bind((net.addrs[1], 0))).unwrap();
    tx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tx.send_to(b"not for STOQ", (net.addrs[0], 5555)).unwrap();
    let mut buf = [0; 64];
    let (n, from) = rx.recv_from(&mut buf).expect("UDP to another port is passed to the kernel");
    assert_eq!(&buf[..n], b"not for STOQ");
    rx.send_to(b"reply", from).unwrap();
    let (n, _) = tx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"reply");
    // And STOQ still works beside them.
    let before = server.endpoint.stats();
    let o = server.options(Mode::Download, 1 << 20, 1);
    let r = net.run_scoped(1, || run_client(&o)).expect("a STOQ transfer beside them");
    assert_eq!(r.bytes_download, 1 << 20);
    let after = server.endpoint.stats();
    assert!(after.rx_datagrams - before.rx_datagrams > after.rx_kernel_path - before.rx_kernel_path);
}

#[test]
fn the_program_is_gone_after_the_process_is_killed() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = NetnsPair::create() else { return };
    let pki = tempfile::tempdir().unwrap();
    let listen = SocketAddr::new(net.addrs[0], PORT).to_string();
    let mut server = ServerProcess::spawn(
        net.command(0, PERF)
            .args(["server", "--listen", &listen, "--tier", "none", "--backend", "af_xdp"])
            .args(["--interface", &net.links[0], "--dev-pki"])
            .arg(pki.path()),
    );
    assert!(has_xdp(&net, 0), "attached while the server runs");
    server.0.kill().unwrap(); // SIGKILL: no destructor runs
    server.0.wait().unwrap();
    // Closing the last descriptor of the BPF link detaches the program; the
    // kernel releases a dead process's files as it reaps it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while has_xdp(&net, 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!has_xdp(&net, 0), "the XDP program outlived its process");
    // The port is free again for a new server.
    let addr: IpAddr = net.addrs[0];
    net.run_scoped(0, || UdpSocket::bind((addr, PORT))).expect("the port is free again");
}

#[test]
fn without_privileges_af_xdp_fails_cleanly_and_says_why() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = NetnsPair::create() else { return };
    let listen = SocketAddr::new(net.addrs[0], PORT).to_string();
    // An empty bounding set leaves root no capabilities after exec: what an
    // unprivileged operator gets.
    let out = net
        .command(0, "setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--", PERF, "server", "--listen", &listen])
        .args(["--tier", "none", "--backend", "af_xdp", "--interface", &net.links[0]])
        .output()
        .expect("setpriv (util-linux)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unprivileged AF_XDP server started: {said}");
    assert!(said.contains("CAP_BPF") && said.contains("--backend io_uring"), "{said}");
    assert!(!has_xdp(&net, 0), "nothing attached");
}

#[test]
fn the_probe_picks_af_xdp_for_an_enterprise_link_and_stoq_runs_on_it() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(net) = NetnsPair::create() else { return };
    // veth has native XDP; shaped to 12 Gbit/s it is an Enterprise link.
    for i in 0..2 {
        net.shape(i, "12gbit", 12_000_000_000).unwrap();
    }
    for i in 0..2 {
        let sel = &probe(&net, i)["selection"];
        assert_eq!(
            (sel["tier"].as_str(), sel["profile"]["backend"].as_str()),
            (Some("enterprise"), Some("af_xdp")),
            "{sel}"
        );
    }
    let pki = tempfile::tempdir().unwrap();
    let listen = SocketAddr::new(net.addrs[0], PORT).to_string();
    let server = ServerProcess::spawn(
        net.command(0, PERF).args(["server", "--tier", "auto", "--listen", &listen, "--dev-pki"]).arg(pki.path()),
    );
    assert!(has_xdp(&net, 0), "the probed profile runs AF_XDP");
    let out = net
        .command(1, PERF)
        .args(["client", &listen, "--tier", "auto", "--json", "--mode", "download", "--bytes", "67108864", "--ca"])
        .arg(pki.path().join("ca.pem"))
        .output()
        .unwrap();
    drop(server);
    let r = json_of(out, "stoq-perf client --tier auto");
    assert_eq!((r["verified"].as_bool(), r["bytes_download"].as_u64()), (Some(true), Some(64 << 20)));
    assert_eq!((r["tier"].as_str(), r["backend"].as_str()), (Some("enterprise"), Some("af_xdp")));
    let rx = r["datagrams_received"].as_u64().unwrap();
    assert!(r["rx_kernel_path"].as_u64().unwrap() * 100 < rx, "{r}");
}
