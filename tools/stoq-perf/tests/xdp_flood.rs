//! `stoq-perf baseline-udp --receive` through AF_XDP on a real link: a
//! verifying receiver on the AF_XDP backend in one network namespace, a
//! linux-batch sender in the other (veth, MTU 1500), native and generic
//! XDP. What `tools/bench-xdp-rx.sh` measures, kept from rotting. Needs
//! root (CI is root); elsewhere the test says it is skipped.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use stoq_core::io::BackendKind;
use stoq_perf::udp_flood::{FloodOptions, receive, send};
use stoq_testbed::NetnsPair;
use stoq_xdp::{AttachMode, XdpConfig, XdpOpener};

#[test]
fn af_xdp_receiver_verifies_a_flood_in_native_and_generic_mode() {
    let Some(net) = NetnsPair::create() else { return };
    let at = SocketAddr::new(net.addrs[0], 4500);
    for mode in [AttachMode::Native, AttachMode::Generic] {
        let (ready, listening) = mpsc::channel();
        let rx = FloodOptions {
            backend: BackendKind::AfXdp,
            opener: Some(XdpOpener::shared(XdpConfig { mode, ..XdpConfig::new(&net.links[0]) })),
            addr: at,
            payload: 64,
            duration: Duration::from_secs(20),
        };
        let receiver = net.run_in(0, move || receive(&rx, |a| ready.send(a).unwrap()));
        let Ok(addr) = listening.recv() else {
            panic!("{mode:?}: the AF_XDP receiver did not open: {:?}", receiver.join().unwrap().err());
        };
        assert_eq!(addr, at);
        let tx = FloodOptions {
            backend: BackendKind::LinuxBatch,
            opener: None,
            addr,
            payload: 64,
            duration: Duration::from_millis(300),
        };
        let s = net.run_scoped(1, || send(&tx)).expect("the sender ran");
        let r = receiver.join().unwrap().expect("the receiver verified what arrived");
        eprintln!("{mode:?}: sent {s:?}\nreceived {r:?}");
        assert_eq!(r.backend, "af_xdp");
        assert!(!r.zero_copy, "veth has no zero-copy AF_XDP");
        assert_eq!(r.datagrams_sent, Some(s.datagrams_sent), "the end marker arrived with the count");
        // Most of it arrives (the rings may drop a little under the flood),
        // and through the AF_XDP socket, not the companion kernel socket.
        assert!(r.datagrams_received * 2 > s.datagrams_sent, "{mode:?}: {r:?}");
        assert!(r.rx_kernel_path * 100 < r.datagrams_received, "{mode:?}: {r:?}");
        assert_eq!(r.bytes_verified, r.datagrams_received * 56);
    }
}
