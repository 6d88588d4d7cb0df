//! The host half of `hw_detect::probe()` on this machine, as a whole process
//! sees it: as root, with io_uring denied by a seccomp filter, and with the
//! network and BPF capabilities dropped. The last two change the process for
//! good, so each runs in a re-executed copy of this test binary.

#![cfg(target_os = "linux")]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use caps::{CapSet, Capability};
use hw_detect::{Known, Overrides, Privileges, UdpOffloads, probe, select};

/// Set in a re-executed child to the name of the test it must run.
const CHILD_ENV: &str = "HW_DETECT_HOST_IT_CHILD";

/// Whether this process is the re-executed child for test `name`.
fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// Runs test `name` alone in a new copy of this binary and fails unless it
/// ran there and passed.
fn run_in_child(name: &str) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .expect("re-execute the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

const ALL: Privileges = Privileges { net_admin: true, net_raw: true, bpf: true, sys_admin: true };
const NONE: Privileges = Privileges { net_admin: false, net_raw: false, bpf: false, sys_admin: false };

#[test]
fn probe_reports_this_hosts_cpus_io_uring_offloads_and_loopback() {
    let caps = probe();
    let host = &caps.host;

    let nproc = Command::new("nproc").output().expect("run nproc");
    let nproc: usize = String::from_utf8_lossy(&nproc.stdout).trim().parse().expect("nproc prints a number");
    let cpu = host.cpu.get().expect("CPU topology");
    assert_eq!(cpu.threads, nproc, "{cpu:?}");
    assert!(cpu.packages >= 1 && cpu.packages <= cpu.cores && cpu.cores <= cpu.threads, "{cpu:?}");
    assert!(cpu.caches.iter().all(|c| c.size.is_some()), "{cpu:?}");

    let uring = host.io_uring.get().expect("io_uring probe");
    assert!(uring.usable_by_stoq && uring.missing.is_empty(), "{uring:?}");
    for op in ["RecvMsg", "SendMsg"] {
        assert!(uring.opcodes.iter().any(|o| o == op), "{op} missing from {:?}", uring.opcodes);
    }

    assert_eq!(host.udp, UdpOffloads { gso: Known::Known(true), gro: Known::Known(true) });

    let lo = caps.interface("lo").expect("lo probed");
    assert!(lo.addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{:?}", lo.addresses);

    if stoq_testbed::root_or_skip("privileges as root") {
        assert_eq!(host.privileges, Known::Known(ALL));
    }
}

#[test]
fn io_uring_denied_by_seccomp_is_reported_with_the_reason() {
    const NAME: &str = "io_uring_denied_by_seccomp_is_reported_with_the_reason";
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    stoq_testbed::deny_io_uring_setup(libc::EPERM).expect("install the seccomp filter");
    let caps = probe();
    let uring = caps.host.io_uring.get().expect("a denied io_uring is a known answer");
    assert!(!uring.usable_by_stoq, "{uring:?}");
    assert!(uring.opcodes.is_empty(), "{uring:?}");
    assert_eq!(uring.missing.len(), 1, "{uring:?}");
    assert!(uring.missing[0].starts_with("io_uring_setup: Operation not permitted"), "{uring:?}");
    // The rest of the host is still probed.
    assert!(caps.host.cpu.get().is_some(), "{:?}", caps.host.cpu);
    assert_eq!(caps.host.udp.gso, Known::Known(true));
}

#[test]
fn unprivileged_probe_reports_missing_capabilities_and_still_selects() {
    const NAME: &str = "unprivileged_probe_reports_missing_capabilities_and_still_selects";
    if !stoq_testbed::root_or_skip(NAME) {
        return;
    }
    if !is_child(NAME) {
        return run_in_child(NAME);
    }
    assert_eq!(probe().host.privileges, Known::Known(ALL), "root starts with every capability");
    let dropped = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW, Capability::CAP_BPF, Capability::CAP_SYS_ADMIN];
    // Effective first: the kernel refuses an effective set wider than the permitted one.
    for set in [CapSet::Effective, CapSet::Permitted] {
        for cap in dropped {
            caps::drop(None, set, cap).unwrap_or_else(|e| panic!("drop {cap} from {set:?}: {e}"));
        }
    }
    let caps = probe();
    assert_eq!(caps.host.privileges, Known::Known(NONE));
    // Only those four went: CAP_CHOWN, for one, is still effective.
    assert_eq!(caps::has_cap(None, CapSet::Effective, Capability::CAP_CHOWN).ok(), Some(true));
    // Still a profile, and where privileges matter the step-downs name them.
    let o = Overrides { tier: Some(stoq_core::profile::Tier::DataCenter), ..Overrides::default() };
    let choice = select(&caps, &o).expect("an unprivileged probe still gives a profile");
    for missing in ["AF_XDP: no CAP_NET_ADMIN", "AF_XDP: no CAP_BPF"] {
        assert!(choice.steps.iter().any(|s| s == missing), "{missing:?} not in {:?}", choice.steps);
    }
}
