//! Host probes against this machine, cross-checked with what the kernel
//! shows in sysfs/procfs and `nproc`. The cases that change the process for
//! good (seccomp filter, dropped capabilities) are in `tests/host.rs`, which
//! runs them in a re-executed copy of its test binary.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use super::uring::{OPCODE_NAMES, opcode_name, setup_failed, supported_opcodes};
use super::*;
use crate::sysfs::{ParseError, parse_cpulist};

fn sys(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_owned()
}

/// The CPUs a kernel CPU list file names; an empty file (a node without CPUs) names none.
fn cpus_in(path: &str) -> Vec<usize> {
    match parse_cpulist(&sys(path)) {
        Err(ParseError::Empty) => Vec::new(),
        r => r.unwrap_or_else(|e| panic!("{path}: {e}")),
    }
}

#[test]
fn topology_counts_match_the_kernel() {
    let topo = cpu_topology().into_option().expect("hwloc topology");
    let online: BTreeSet<usize> = cpus_in("/sys/devices/system/cpu/online").into_iter().collect();
    let nproc: usize =
        String::from_utf8(Command::new("nproc").output().unwrap().stdout).unwrap().trim().parse().unwrap();

    // hwloc keeps the CPUs this process may run on, as nproc counts them.
    assert_eq!(topo.threads, nproc, "{topo:?}");
    let in_nodes: BTreeSet<usize> = topo.numa_nodes.iter().flat_map(|n| n.cpus.iter().copied()).collect();
    assert_eq!(in_nodes.len(), nproc, "{topo:?}");
    assert!(in_nodes.is_subset(&online), "{in_nodes:?} not within online {online:?}");

    // Packages and cores as sysfs numbers them, over the same CPUs.
    let topology = |cpu: usize, file: &str| sys(&format!("/sys/devices/system/cpu/cpu{cpu}/topology/{file}"));
    let packages: BTreeSet<String> = in_nodes.iter().map(|&c| topology(c, "physical_package_id")).collect();
    let cores: BTreeSet<(String, String)> =
        in_nodes.iter().map(|&c| (topology(c, "physical_package_id"), topology(c, "core_id"))).collect();
    assert_eq!(topo.packages, packages.len(), "{topo:?}");
    assert_eq!(topo.cores, cores.len(), "{topo:?}");

    // NUMA nodes by OS number, as /sys/devices/system/node lists them.
    let node_dir = std::path::Path::new("/sys/devices/system/node");
    if node_dir.exists() {
        for node in &topo.numa_nodes {
            let cpus = cpus_in(&format!("/sys/devices/system/node/node{}/cpulist", node.os_index));
            assert!(node.cpus.iter().all(|c| cpus.contains(c)), "node {}: {:?} vs {cpus:?}", node.os_index, node.cpus);
        }
    }
}

#[test]
fn caches_have_sizes_and_match_sysfs() {
    let topo = cpu_topology().into_option().expect("hwloc topology");
    assert!(!topo.caches.is_empty(), "{topo:?}");
    for c in &topo.caches {
        assert!(c.level >= 1 && c.count >= 1, "{c:?}");
        assert!(matches!(c.kind.as_str(), "data" | "instruction" | "unified"), "{c:?}");
        assert!(c.size.is_some_and(|s| s >= 1024), "{c:?}");
    }
    assert!(topo.caches.iter().any(|c| c.level == 1), "no L1 in {:?}", topo.caches);

    // Every cache sysfs shows for the first CPU hwloc reports appears with the same level, kind and size.
    let cpu = topo.numa_nodes.iter().flat_map(|n| n.cpus.first()).min().copied().unwrap_or(0);
    let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cache");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no {dir}: sysfs cross-check skipped");
        return;
    };
    let mut checked = 0;
    for entry in entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("index")) {
        let read = |f: &str| sys(&entry.path().join(f).to_string_lossy());
        let level: u32 = read("level").parse().unwrap();
        let kind = read("type").to_lowercase();
        let size = read("size");
        let size: u64 = size.strip_suffix('K').expect("size in K").parse::<u64>().unwrap() * 1024;
        assert!(
            topo.caches.iter().any(|c| c.level == level && c.kind == kind && c.size == Some(size)),
            "sysfs L{level} {kind} {size} B missing from {:?}",
            topo.caches
        );
        checked += 1;
    }
    assert!(checked > 0, "{dir} lists no caches");
}

#[test]
fn opcode_table_has_one_name_per_opcode() {
    let codes: BTreeSet<u8> = OPCODE_NAMES.iter().map(|(c, _)| *c).collect();
    let names: BTreeSet<&str> = OPCODE_NAMES.iter().map(|(_, n)| *n).collect();
    assert_eq!((codes.len(), names.len()), (OPCODE_NAMES.len(), OPCODE_NAMES.len()));
    // The kernel's numbering (include/uapi/linux/io_uring.h).
    assert_eq!(
        (opcode_name(0), opcode_name(9), opcode_name(10), opcode_name(22)),
        (Some("Nop"), Some("SendMsg"), Some("RecvMsg"), Some("Read"))
    );
    assert_eq!(opcode_name(250), None);
}

#[test]
fn supported_opcodes_follow_the_probe_and_number_unnamed_ones() {
    let got = supported_opcodes(|code| [10, 9, 250].contains(&code));
    assert_eq!(got, ["SendMsg", "RecvMsg", "opcode 250"]);
    assert!(supported_opcodes(|_| false).is_empty());
}

#[test]
fn io_uring_setup_errors_map_to_absent_or_unknown() {
    for errno in [libc::EPERM, libc::ENOSYS, libc::EACCES] {
        let got = setup_failed(&io::Error::from_raw_os_error(errno)).into_option().expect("known");
        assert_eq!((got.opcodes.len(), got.usable_by_stoq, got.missing.len()), (0, false, 1));
        let text = Errno::from_raw(errno).desc();
        assert!(got.missing[0].starts_with(&format!("io_uring_setup: {text} (")), "{:?}", got.missing);
    }
    let other = setup_failed(&io::Error::from_raw_os_error(libc::EMFILE));
    assert_eq!(other, Known::Unknown("io_uring_setup: Too many open files".into()));
}

#[test]
fn io_uring_here_is_usable_by_stoq() {
    let got = io_uring().into_option().expect("io_uring probe");
    assert!(got.usable_by_stoq, "{got:?}");
    assert!(got.missing.is_empty(), "{got:?}");
    for op in ["RecvMsg", "SendMsg", "Read", "PollAdd", "Nop"] {
        assert!(got.opcodes.iter().any(|o| o == op), "{op} missing from {:?}", got.opcodes);
    }
}

#[test]
fn udp_gso_and_gro_are_accepted_here() {
    assert_eq!(udp_offloads(), UdpOffloads { gso: Known::Known(true), gro: Known::Known(true) });
}

#[test]
fn setsockopt_answers_map_to_support() {
    assert_eq!(offload_answer("UDP_GRO", Ok(())), Known::Known(true));
    assert_eq!(offload_answer("UDP_GRO", Err(Errno::ENOPROTOOPT)), Known::Known(false));
    assert_eq!(
        offload_answer("UDP_SEGMENT", Err(Errno::EBADF)),
        Known::Unknown("setsockopt UDP_SEGMENT on a test UDP socket: Bad file number (EBADF: Bad file number)".into())
    );
}

#[test]
fn root_has_every_privilege() {
    if !stoq_testbed::root_or_skip("root_has_every_privilege") {
        return;
    }
    let all = Privileges { net_admin: true, net_raw: true, bpf: true, sys_admin: true };
    assert_eq!(privileges(), Known::Known(all));
}

#[test]
fn addresses_list_loopback_and_match_procfs() {
    let all = addresses().expect("getifaddrs");
    let lo = all.get("lo").expect("lo listed");
    assert!(lo.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{lo:?}");
    for (name, list) in &all {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "{name}: not sorted and unique: {list:?}");
    }
    // Every IPv6 address the kernel lists in /proc/net/if_inet6 (hex address, ifindex, prefix, scope, flags, name).
    let if_inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    for line in if_inet6.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let addr = Ipv6Addr::from(u128::from_str_radix(fields[0], 16).unwrap());
        let name = fields[5];
        assert!(all.get(name).is_some_and(|l| l.contains(&IpAddr::V6(addr))), "{name} {addr} missing: {all:?}");
    }
}
