use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::*;
use crate::io::linux::testing::{datagram, drain};

fn open_with(addr: &str, depth: u16) -> (UringIo, Arc<IoCounters>) {
    let counters = Arc::new(IoCounters::default());
    let io = UringIo::bind_with_depth(addr.parse().unwrap(), &SocketOptions::default(), counters.clone(), depth)
        .unwrap_or_else(|e| panic!("io_uring backend on this host: {e}"));
    (io, counters)
}

fn open(addr: &str) -> (UringIo, Arc<IoCounters>) {
    open_with(addr, RING_DEPTH)
}

fn open_boxed(addr: &str) -> (Box<dyn PacketIo>, Arc<IoCounters>, RawFd) {
    let (io, counters) = open(addr);
    let fd = io.fd;
    (Box::new(io), counters, fd)
}

crate::io::linux::testing::backend_tests!(open_boxed);

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[test]
fn an_exhausted_buffer_ring_is_rearmed_and_nothing_queued_is_lost() {
    const DEPTH: u16 = 4;
    let (mut rx, rc) = open_with("127.0.0.1:0", DEPTH);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = rx.local_addr();
    let mut buf = [0u8; 200];
    // Flood without receiving: the ring fills, the multishot receive ends
    // with ENOBUFS, the socket buffer takes what fits and drops the rest.
    let flood = 5_000u32;
    for seq in 0..flood {
        datagram(seq, 200, &mut buf);
        sender.send_to(&buf, dst).unwrap();
    }
    let (seqs, _) = drain(&mut rx, flood as usize, Duration::from_millis(300), |_| 200);
    assert!(
        rc.rx_buffers_exhausted.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the ring ran dry and the receive was re-armed"
    );
    assert!(seqs.len() > usize::from(DEPTH) * 4, "only {} datagrams arrived after the ring ran dry", seqs.len());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, none repeated");
    assert_eq!(load(&rc.rx_datagrams), seqs.len() as u64);
    // The receive still works after the flood.
    datagram(flood, 200, &mut buf);
    sender.send_to(&buf, dst).unwrap();
    let (last, _) = drain(&mut rx, 1, Duration::from_secs(2), |_| 200);
    assert_eq!(last, [flood], "the datagram sent after the flood arrives");
    assert_eq!(load(&rc.rx_errors), 0);
}

#[test]
fn a_wake_from_another_thread_ends_a_wait_without_timeout() {
    let (mut io, _) = open("127.0.0.1:0");
    let waker = io.waker();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake().unwrap();
    });
    let start = Instant::now();
    io.wait(None, false).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "woken promptly");
    t.join().unwrap();
    // The waker is re-armed: a second wake works too, even before the wait.
    io.waker().wake().unwrap();
    let start = Instant::now();
    io.wait(None, false).unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    // And without a wake, a timeout ends the wait.
    let start = Instant::now();
    io.wait(Some(Duration::from_millis(30)), false).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(25), "{:?}", start.elapsed());
}

#[test]
fn the_factory_opens_it_by_name() {
    let counters = Arc::new(IoCounters::default());
    let io = crate::io::open(BackendKind::IoUring, "127.0.0.1:0".parse().unwrap(), &SocketOptions::default(), counters)
        .unwrap();
    assert_eq!((io.kind(), io.kind().name()), (BackendKind::IoUring, "io_uring"));
    assert!(io.capabilities().ecn);
}

/// Binds on a thread whose seccomp filter fails `io_uring_setup` with
/// `errno`, as container runtimes and `kernel.io_uring_disabled` do. The
/// filter is per thread and dies with it.
fn bind_with_io_uring_denied(errno: i32) -> BackendError {
    std::thread::spawn(move || {
        stoq_testbed::deny_io_uring_setup(errno).unwrap_or_else(|e| panic!("install seccomp filter: {e}"));
        let counters = Arc::new(IoCounters::default());
        UringIo::bind("127.0.0.1:0".parse().unwrap(), &SocketOptions::default(), counters)
            .err()
            .expect("bind must fail")
    })
    .join()
    .unwrap()
}

#[test]
fn a_host_without_io_uring_gets_a_clear_error_naming_the_alternative() {
    for errno in [libc::EPERM, libc::ENOSYS] {
        let e = bind_with_io_uring_denied(errno);
        assert!(matches!(e, BackendError::Unsupported { backend: BackendKind::IoUring, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("--backend linux-batch"), "{msg}");
        assert!(msg.contains(if errno == libc::EPERM { "not permitted" } else { "no io_uring" }), "{msg}");
    }
}
