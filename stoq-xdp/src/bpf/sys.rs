//! The `bpf(2)` system call and the parts of `union bpf_attr` we use: all of
//! this layer's `unsafe`, kept here so the rest is safe code.
//!
//! Each attribute struct is a prefix of one member of `union bpf_attr`
//! (include/uapi/linux/bpf.h). The kernel copies `size` bytes of it and
//! treats the rest of the union as zero, so a prefix is a complete request;
//! the layouts are checked against the header's offsets below.

use std::ffi::CStr;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::insn::Insn;

// Commands, `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_LINK_DETACH: libc::c_int = 34;

/// `BPF_OBJ_NAME_LEN` (include/uapi/linux/bpf.h): names hold 15 bytes and a NUL.
const OBJ_NAME_LEN: usize = 16;

/// `BPF_MAP_CREATE` (include/uapi/linux/bpf.h), up to `map_name`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
}

/// `BPF_MAP_*_ELEM` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `BPF_PROG_LOAD` (include/uapi/linux/bpf.h), up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `BPF_PROG_TEST_RUN` (include/uapi/linux/bpf.h, the `test` member), up
/// to `ctx_out`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}

/// `BPF_OBJ_GET_INFO_BY_FD` (include/uapi/linux/bpf.h, the `info` member).
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `BPF_LINK_CREATE` (include/uapi/linux/bpf.h, the `link_create` member),
/// the fields every link type shares.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `BPF_LINK_DETACH` (include/uapi/linux/bpf.h, the `link_detach` member).
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}

/// `struct xdp_md` (include/uapi/linux/bpf.h): an XDP program's context,
/// here the input context of a test run.
#[repr(C)]
#[derive(Default)]
pub(super) struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

/// The start of `struct bpf_prog_info` (include/uapi/linux/bpf.h); the
/// kernel fills as much as we pass.
#[repr(C)]
#[derive(Default)]
struct ProgInfoPrefix {
    prog_type: u32,
    id: u32,
}

// The offsets of include/uapi/linux/bpf.h (Linux 6.x), so a field typo
// cannot send the kernel a different request.
const _: () = {
    assert!(offset_of!(MapCreateAttr, max_entries) == 12 && offset_of!(MapCreateAttr, map_name) == 28);
    assert!(size_of::<MapCreateAttr>() == 44);
    assert!(offset_of!(MapElemAttr, key) == 8 && offset_of!(MapElemAttr, flags) == 24);
    assert!(offset_of!(ProgLoadAttr, log_level) == 24 && offset_of!(ProgLoadAttr, log_buf) == 32);
    assert!(offset_of!(ProgLoadAttr, prog_name) == 48 && offset_of!(ProgLoadAttr, expected_attach_type) == 68);
    assert!(offset_of!(TestRunAttr, data_in) == 16 && offset_of!(TestRunAttr, repeat) == 32);
    assert!(offset_of!(TestRunAttr, ctx_in) == 48 && size_of::<TestRunAttr>() == 64);
    assert!(offset_of!(InfoAttr, info) == 8 && size_of::<LinkCreateAttr>() == 16);
    assert!(offset_of!(XdpMd, rx_queue_index) == 16 && size_of::<XdpMd>() == 24);
    assert!(size_of::<Insn>() == 8);
};

/// The attribute structs above; only they may be handed to [`bpf`].
trait Attr {}
impl Attr for MapCreateAttr {}
impl Attr for MapElemAttr {}
impl Attr for ProgLoadAttr {}
impl Attr for TestRunAttr {}
impl Attr for InfoAttr {}
impl Attr for LinkCreateAttr {}
impl Attr for LinkDetachAttr {}

/// `bpf(cmd, attr, sizeof attr)`: the non-negative result, or errno.
fn bpf<A: Attr>(cmd: libc::c_int, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed #[repr(C)] prefix of
    // `union bpf_attr` for `cmd`, and `size` is its exact length; every
    // pointer inside it refers to memory its caller keeps borrowed for the
    // duration of this call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, size_of::<A>() as libc::c_uint) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// [`bpf`] for the commands that return a new file descriptor.
fn bpf_fd<A: Attr>(cmd: libc::c_int, attr: &mut A) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: on success these commands return a new descriptor (opened
    // O_CLOEXEC by the kernel) that nothing else in this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `name` as a kernel object name: the first 15 bytes, NUL-padded. Callers
/// pass names of `[A-Za-z0-9_.]` (the only bytes the kernel accepts).
fn obj_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut out = [0; OBJ_NAME_LEN];
    for (o, b) in out.iter_mut().zip(name.bytes().take(OBJ_NAME_LEN - 1)) {
        *o = b;
    }
    out
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are never negative.
    fd.as_raw_fd() as u32
}

/// `BPF_MAP_CREATE` for a map of `u32` keys and values.
pub(super) fn map_create_u32(map_type: u32, max_entries: u32, name: &str) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size: 4,
        value_size: 4,
        max_entries,
        map_name: obj_name(name),
        ..Default::default()
    };
    bpf_fd(BPF_MAP_CREATE, &mut attr)
}

/// `BPF_MAP_UPDATE_ELEM` of a `u32 -> u32` map (`flags`: `BPF_ANY` = 0).
pub(super) fn map_update_u32(map: BorrowedFd<'_>, key: u32, value: u32, flags: u64) -> io::Result<()> {
    let mut attr =
        MapElemAttr { map_fd: fd_u32(map), key: &key as *const u32 as u64, value: &value as *const u32 as u64, flags };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `BPF_MAP_DELETE_ELEM` of a map with `u32` keys.
pub(super) fn map_delete_u32(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    let mut attr = MapElemAttr { map_fd: fd_u32(map), key: &key as *const u32 as u64, ..Default::default() };
    bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// What [`prog_load`] loads.
pub(super) struct ProgSpec<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub insns: &'a [Insn],
    pub license: &'a CStr,
    pub name: &'a str,
}

/// `BPF_PROG_LOAD`. With `log`, the verifier writes its level-1 log there
/// (NUL-terminated; `ENOSPC` when it did not fit).
pub(super) fn prog_load(spec: &ProgSpec<'_>, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let insn_cnt = u32::try_from(spec.insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = ProgLoadAttr {
        prog_type: spec.prog_type,
        insn_cnt,
        insns: spec.insns.as_ptr() as u64,
        license: spec.license.as_ptr() as u64,
        prog_name: obj_name(spec.name),
        expected_attach_type: spec.expected_attach_type,
        ..Default::default()
    };
    if let Some(log) = log {
        attr.log_level = 1;
        // The kernel wants at most u32::MAX >> 2 bytes.
        attr.log_size = log.len().min(u32::MAX as usize >> 2) as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    bpf_fd(BPF_PROG_LOAD, &mut attr)
}

/// `BPF_PROG_TEST_RUN` once on `data`, with `ctx` as the input context when
/// given; the program's return value. Output data is not copied back.
pub(super) fn prog_test_run(prog: BorrowedFd<'_>, data: &[u8], ctx: Option<&XdpMd>) -> io::Result<u32> {
    let data_size_in = u32::try_from(data.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = TestRunAttr {
        prog_fd: fd_u32(prog),
        data_size_in,
        data_in: data.as_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    if let Some(ctx) = ctx {
        attr.ctx_size_in = size_of::<XdpMd>() as u32;
        attr.ctx_in = ctx as *const XdpMd as u64;
    }
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(attr.retval)
}

/// The kernel's id of a loaded program (`bpf_prog_info.id`), the number
/// `ip link` and `bpftool prog` show.
pub(super) fn prog_id(prog: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = ProgInfoPrefix::default();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(prog),
        info_len: size_of::<ProgInfoPrefix>() as u32,
        info: &mut info as *mut ProgInfoPrefix as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.id)
}

/// `BPF_LINK_CREATE` of `prog` to network interface `ifindex`; the link
/// lives as long as the returned descriptor (and its duplicates).
pub(super) fn link_create(prog: BorrowedFd<'_>, ifindex: u32, attach_type: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr { prog_fd: fd_u32(prog), target_ifindex: ifindex, attach_type, flags };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// `BPF_LINK_DETACH`: detaches the link's program now, even while other
/// copies of its descriptor (say, in a child that has not yet exec'd) keep
/// the link object alive.
pub(super) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetachAttr { link_fd: fd_u32(link) };
    bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}

/// A bound AF_XDP socket for tests: its UMEM, fill/completion and RX rings
/// (xdpilone), on queue `queue` of `ifindex` in copy mode. Drop order
/// keeps the memory alive until the sockets are gone.
#[cfg(test)]
pub(super) struct TestXsk {
    user: xdpilone::User,
    _rx: xdpilone::RingRx,
    _fq_cq: xdpilone::DeviceQueue,
    _umem: xdpilone::Umem,
    _area: Box<TestUmemArea>,
}

/// 16 frames of 4 KiB, page-aligned as a UMEM must be.
#[cfg(test)]
#[repr(C, align(4096))]
pub(super) struct TestUmemArea([u8; 16 * 4096]);

#[cfg(test)]
impl TestXsk {
    /// Binds a socket to `queue` of `ifindex` in the calling thread's
    /// network namespace.
    pub(super) fn bind(ifindex: u32, queue: u32) -> Result<Self, String> {
        use std::num::NonZeroU32;
        use xdpilone::{IfInfo, Socket, SocketConfig, Umem, UmemConfig};
        let mut area = Box::new(TestUmemArea([0; 16 * 4096]));
        let mem = std::ptr::NonNull::from(&mut area.0[..]);
        let config = UmemConfig { fill_size: 16, complete_size: 16, ..UmemConfig::default() };
        // SAFETY: `mem` is page-aligned (TestUmemArea's alignment) and lives
        // in a Box that this struct owns and drops after the UMEM.
        let umem = unsafe { Umem::new(config, mem) }.map_err(|e| format!("UMEM: {e:?}"))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex).map_err(|e| format!("ifindex {ifindex}: {e:?}"))?;
        info.set_queue(queue);
        let sock = Socket::with_shared(&info, &umem).map_err(|e| format!("socket: {e:?}"))?;
        // xdpilone opens the socket without SOCK_CLOEXEC: keep the processes
        // other tests spawn from holding it (and its map entry) open.
        // SAFETY: fcntl on a descriptor the socket owns; F_SETFD takes an int.
        if unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(format!("FD_CLOEXEC: {}", io::Error::last_os_error()));
        }
        let fq_cq = umem.fq_cq(&sock).map_err(|e| format!("fill/completion rings: {e:?}"))?;
        let rings = SocketConfig { rx_size: NonZeroU32::new(16), tx_size: None, bind_flags: 0 };
        let user = umem.rx_tx(&sock, &rings).map_err(|e| format!("rx ring: {e:?}"))?;
        let rx = user.map_rx().map_err(|e| format!("map rx ring: {e:?}"))?;
        umem.bind(&user).map_err(|e| format!("bind to queue {queue} of ifindex {ifindex}: {e:?}"))?;
        Ok(TestXsk { user, _rx: rx, _fq_cq: fq_cq, _umem: umem, _area: area })
    }

    /// The socket's descriptor, for the XSKMAP.
    pub(super) fn fd(&self) -> RawFd {
        self.user.as_raw_fd()
    }
}
