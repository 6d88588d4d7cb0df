use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::*;
use crate::io::linux::testing::{datagram, drain, exchange};

fn open_with(addr: &str, depth: u16) -> (UringIo, Arc<IoCounters>) {
    let counters = Arc::new(IoCounters::default());
    let io = UringIo::bind_with_depth(addr.parse().unwrap(), &SocketOptions::default(), counters.clone(), depth)
        .unwrap_or_else(|e| panic!("io_uring backend on this host: {e}"));
    (io, counters)
}

fn open(addr: &str) -> (UringIo, Arc<IoCounters>) {
    open_with(addr, RING_DEPTH)
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[test]
fn gso_and_gro_carry_every_datagram_exactly_once() {
    let (mut tx, tc) = open("127.0.0.1:0");
    let (mut rx, rc) = open("127.0.0.1:0");
    assert!(tx.capabilities().max_gso_segments > 1, "this kernel has UDP GSO (4.18+)");
    // Runs of equal sizes (GSO) broken by short tails and size changes.
    let size = |s: u32| if s % 17 == 16 { 100 + (s as usize % 900) } else { 1452 };
    let got = exchange(&mut tx, &mut rx, 20_000, size);
    assert_eq!(got, (0..20_000).collect::<Vec<_>>(), "in order, none lost or repeated");
    assert_eq!((load(&tc.tx_datagrams), load(&rc.rx_datagrams)), (20_000, 20_000));
    assert_eq!(load(&tc.tx_errors) + load(&rc.rx_errors), 0);
    assert!(load(&tc.tx_syscalls) * 20 < 20_000, "GSO + one enter per batch: {} send calls", load(&tc.tx_syscalls));
    assert_eq!(load(&tc.gso_fallbacks), 0);
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
fn a_refused_gso_send_falls_back_without_losing_datagrams() {
    let (mut tx, tc) = open("127.0.0.1:0");
    let (mut rx, _) = open("127.0.0.1:0");
    // With UDP checksums off the kernel refuses GSO sends (EINVAL), as a
    // device without checksum offload does with EIO.
    sys::setsockopt(tx.fd, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1 as libc::c_int).unwrap();
    let got = exchange(&mut tx, &mut rx, 5_000, |_| 1200);
    assert_eq!(got, (0..5_000).collect::<Vec<_>>());
    assert_eq!(load(&tc.gso_fallbacks), 1);
    assert_eq!(load(&tc.tx_datagrams), 5_000);
    assert_eq!(tx.capabilities().max_gso_segments, 1, "GSO stays off on this socket");
}

#[test]
fn ecn_and_destination_address_are_reported() {
    let (mut tx, _) = open("127.0.0.1:0");
    let (mut rx, rc) = open("0.0.0.0:0");
    let dst = SocketAddr::new([127, 0, 0, 1].into(), rx.local_addr().port());
    let mut batch = TxBatch::new(4, 1, 1452);
    for (seq, ecn) in [(0u32, 0b10u8), (1, 0b11)] {
        datagram(seq, 64, batch.slot_mut());
        batch.commit_with(64, dst, tx.local_addr(), None, ecn);
    }
    assert!(tx.send(&mut batch).unwrap());
    let (seqs, metas) = drain(&mut rx, 2, Duration::from_secs(2), |_| 64);
    assert_eq!(seqs, [0, 1]);
    assert_eq!(metas.iter().map(|m| m.ecn).collect::<Vec<_>>(), [0b10, 0b11]);
    assert!(metas.iter().all(|m| m.dst == dst && m.src == tx.local_addr()), "{metas:?}");
    assert_eq!(load(&rc.rx_ecn_ce), 1);
}

#[test]
fn a_wildcard_socket_sends_from_the_address_it_is_told() {
    let (mut tx, _) = open("0.0.0.0:0");
    let (mut rx, _) = open("127.0.0.1:0");
    let src = SocketAddr::new([127, 0, 0, 2].into(), tx.local_addr().port());
    let mut batch = TxBatch::new(4, 1, 1452);
    datagram(7, 100, batch.slot_mut());
    batch.commit(100, rx.local_addr(), src);
    assert!(tx.send(&mut batch).unwrap());
    let (_, metas) = drain(&mut rx, 1, Duration::from_secs(2), |_| 100);
    assert_eq!(metas[0].src, src);
}

#[test]
fn a_send_to_an_unreachable_peer_is_dropped_and_the_rest_go_out() {
    let (mut tx, tc) = open("127.0.0.1:0");
    let (mut rx, _) = open("127.0.0.1:0");
    let mut batch = TxBatch::new(4, 1, 1452);
    // An IPv6 destination from an IPv4 socket fails (EAFNOSUPPORT), and the
    // link chain cancels what follows; those must be resent, not lost.
    datagram(0, 100, batch.slot_mut());
    batch.commit(100, rx.local_addr(), tx.local_addr());
    datagram(1, 100, batch.slot_mut());
    batch.commit(100, "[::1]:9".parse().unwrap(), tx.local_addr());
    datagram(2, 100, batch.slot_mut());
    batch.commit(100, rx.local_addr(), tx.local_addr());
    assert!(tx.send(&mut batch).unwrap());
    assert!(batch.is_empty());
    let (seqs, _) = drain(&mut rx, 2, Duration::from_secs(2), |_| 100);
    assert_eq!(seqs, [0, 2]);
    assert_eq!((load(&tc.tx_errors), load(&tc.tx_datagrams)), (1, 2));
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
        // struct sock_filter (include/uapi/linux/filter.h): load the syscall
        // number (offset 0 of struct seccomp_data, include/uapi/linux/seccomp.h),
        // fail io_uring_setup with `errno`, allow everything else.
        let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
        let mut filter = [
            op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
            op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, libc::SYS_io_uring_setup as u32),
            op(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32),
            op(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ];
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
        // SAFETY: prctl with integer arguments only; affects this thread.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, 0);
        // SAFETY: `prog` and the filter it points to outlive the call, which
        // copies them; the filter only affects this thread.
        let r =
            unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) };
        assert_eq!(r, 0, "install seccomp filter: {}", io::Error::last_os_error());
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
