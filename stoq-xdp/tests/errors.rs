//! Where the AF_XDP backend cannot run, opening it fails with an error that
//! names the problem and what to do, and leaves nothing attached. Runs in
//! a pair of network namespaces joined by veth; needs root (CI is root).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use stoq_core::io::{BackendKind, IoCounters, SocketOptions};
use stoq_core::{DevPki, Endpoint, ServerConfig};
use stoq_testbed::NetnsPair;
use stoq_xdp::{AttachMode, XdpConfig, XdpError, XdpIo, ZeroCopy};

fn open(net: &NetnsPair, cfg: XdpConfig, port: u16) -> Result<XdpIo, XdpError> {
    let addr = SocketAddr::new(net.addrs[0], port);
    net.run_scoped(0, || XdpIo::open(&cfg, addr, &SocketOptions::default(), Arc::new(IoCounters::default())))
}

fn attached(net: &NetnsPair) -> bool {
    net.output(0, "ip", &["-d", "link", "show", &net.links[0]]).unwrap().contains("prog/xdp")
}

#[test]
fn each_reason_it_cannot_run_is_a_clear_error() {
    let Some(net) = NetnsPair::create() else { return };
    let veth = || XdpConfig::new(&net.links[0]);
    let err = |cfg, port| match open(&net, cfg, port) {
        Ok(_) => panic!("opened where it cannot run"),
        Err(e) => e.to_string(),
    };

    let e = err(XdpConfig::new("nosuch0"), 4433);
    assert!(e.contains("no interface named \"nosuch0\""), "{e}");
    let e = err(XdpConfig::new("lo"), 4433);
    assert!(e.contains("lo is not an Ethernet interface") && e.contains("io_uring"), "{e}");
    let e = err(XdpConfig { queues: Some(vec![0, 3]), ..veth() }, 4433);
    assert!(e.contains("has 1 receive queue(s), so there is no queue 3"), "{e}");
    // veth has no zero-copy AF_XDP.
    let e = err(XdpConfig { zero_copy: ZeroCopy::Required, mode: AttachMode::Native, ..veth() }, 4433);
    assert!(e.contains("bind failed") && e.contains("no zero-copy"), "{e}");
    let e = err(XdpConfig { zero_copy: ZeroCopy::Required, mode: AttachMode::Generic, ..veth() }, 4433);
    assert!(e.contains("zero-copy AF_XDP needs native XDP"), "{e}");
    // Another process holds the port, even on another address: the
    // program would take its traffic, so the backend refuses to start.
    let holder = net.run_scoped(0, || UdpSocket::bind(("127.0.0.1", 4434))).unwrap();
    let e = err(veth(), 4434);
    assert!(e.contains("cannot bind the companion UDP socket") && e.contains("in use"), "{e}");
    drop(holder);
    // An address this host does not have.
    let e = match net.run_scoped(0, || {
        let addr = SocketAddr::from(([192, 0, 2, 9], 4435));
        XdpIo::open(&veth(), addr, &SocketOptions::default(), Arc::new(IoCounters::default()))
    }) {
        Ok(_) => panic!("bound an address the host does not have"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("192.0.2.9:4435") && e.contains("not on this host"), "{e}");
    // An MTU one UMEM frame cannot hold.
    net.output(0, "ip", &["link", "set", &net.links[0], "mtu", "9000"]).unwrap();
    let e = err(veth(), 4433);
    assert!(e.contains("has MTU 9000") && e.contains("up to 3822"), "{e}");
    net.output(0, "ip", &["link", "set", &net.links[0], "mtu", "1500"]).unwrap();
    // A failed open leaves no program behind.
    assert!(!attached(&net));

    // And it opens where it can, reporting copy mode.
    let io = open(&net, veth(), 4433).expect("AF_XDP on veth");
    assert!(attached(&net));
    assert_eq!(io.queues(), [(0, false)], "queue 0, copy mode");
    drop(io);
    assert!(!attached(&net), "detached when the backend closes");
}

#[test]
fn an_endpoint_without_the_opener_says_where_af_xdp_lives() {
    let pki = DevPki::generate(&["localhost"]).unwrap();
    let mut cfg = ServerConfig::new(pki.server_tls());
    cfg.endpoint.backend = BackendKind::AfXdp;
    let e = Endpoint::server("127.0.0.1:0".parse().unwrap(), cfg).err().expect("no opener, no AF_XDP").to_string();
    assert!(e.contains("stoq-xdp crate") && e.contains("--backend io_uring"), "{e}");
}
