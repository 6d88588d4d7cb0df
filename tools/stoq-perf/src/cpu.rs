//! Process CPU time (user + system) from `getrusage(RUSAGE_SELF)`. It covers
//! every thread of the process, including the STOQ shard threads, so it is
//! the CPU cost of the whole transfer on this host (both ends when client
//! and server share a process).

use nix::sys::resource::{UsageWho, getrusage};

/// CPU time consumed by the process so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// Seconds in user mode.
    pub user: f64,
    /// Seconds in the kernel on the process's behalf.
    pub sys: f64,
}

impl CpuTime {
    /// The process's CPU time now; zero if the kernel refuses (it does not on
    /// Linux for `RUSAGE_SELF`).
    pub fn now() -> Self {
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(u) => {
                let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
                Self { user: secs(u.user_time()), sys: secs(u.system_time()) }
            }
            Err(e) => {
                log::warn!("getrusage failed ({e}); CPU figures will read zero");
                Self::default()
            }
        }
    }

    /// User plus system seconds.
    pub fn total(&self) -> f64 {
        self.user + self.sys
    }

    /// CPU time spent since `earlier`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime { user: self.user - earlier.user, sys: self.sys - earlier.sys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_consumes_cpu() {
        let before = CpuTime::now();
        let start = std::time::Instant::now();
        let mut x = 1u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = crate::pattern::mix64(x);
        }
        std::hint::black_box(x);
        let used = CpuTime::now().since(&before);
        assert!(used.total() > 0.02, "50 ms of spinning used only {:?}", used);
        assert!(used.user >= 0.0 && used.sys >= 0.0);
    }
}
