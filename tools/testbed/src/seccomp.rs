//! A seccomp filter that denies io_uring to the calling thread.

use std::io;

/// Makes `io_uring_setup` fail with `errno` on the calling thread (and
/// threads it spawns later), as container runtimes' seccomp profiles do.
pub fn deny_io_uring_setup(errno: i32) -> io::Result<()> {
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
    // struct sock_fprog (include/uapi/linux/filter.h).
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: prctl with integer arguments only; affects this thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` and the filter it points to outlive the call, which
    // copies them; the filter only affects this thread.
    let r = unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
