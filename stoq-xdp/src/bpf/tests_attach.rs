//! Attaching to a veth end inside a [`NetnsPair`]: both modes, both
//! mechanisms, what `ip -d link show` says before and after; refusals; a
//! killed process's attachment; and a bound AF_XDP socket in the XSKMAP.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hw_detect::linux::netlink::Rtnetlink;
use stoq_testbed::NetnsPair;

use super::insn::{Insn, Reg};
use super::tests::{STOQ, v4};
use super::*;

const MODES: [XdpMode; 2] = [XdpMode::Native, XdpMode::Generic];

fn ifindex(net: &NetnsPair, i: usize, link: &str) -> u32 {
    let out = net.output(i, "cat", &[&format!("/sys/class/net/{link}/ifindex")]).unwrap();
    out.trim().parse().unwrap_or_else(|e| panic!("ifindex of {link}: {out:?}: {e}"))
}

/// What `ip -d link show` says about end 0's XDP: the mode word of its
/// first line (`xdp`, `xdpgeneric`, …), and the ids after `prog/xdp id`.
fn shown(net: &NetnsPair) -> (Option<String>, Vec<u32>) {
    let out = net.output(0, "ip", &["-d", "link", "show", "dev", &net.links[0]]).unwrap();
    let first = out.lines().next().unwrap_or_default();
    let mode = first.split_whitespace().find(|w| w.starts_with("xdp")).map(str::to_string);
    let words: Vec<&str> = out.split_whitespace().collect();
    let ids = words.windows(3).filter(|w| w[0] == "prog/xdp" && w[1] == "id").filter_map(|w| w[2].parse().ok());
    (mode, ids.collect())
}

fn ip_word(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Native => "xdp",
        XdpMode::Generic => "xdpgeneric",
    }
}

fn pass_program() -> Program {
    Program::load("pass", &[Insn::mov64_imm(Reg::R0, XdpAction::Pass as i32), Insn::exit()]).unwrap()
}

#[test]
fn attach_shows_in_ip_link_and_drop_detaches() {
    let Some(net) = NetnsPair::create() else { return };
    let link = net.links[0].clone();
    let idx = ifindex(&net, 0, &link);
    for mode in MODES {
        for (asked, used) in [(Mechanism::Link, Mechanism::Link), (Mechanism::Netlink, Mechanism::Netlink)]
            .into_iter()
            .chain([(Mechanism::Auto, Mechanism::Link)])
        {
            let what = format!("{mode} via {asked}");
            let mut xdp = StoqXdp::load(&[STOQ], MAX_REDIRECT_LEN, 1).unwrap();
            let got = net.run_scoped(0, || {
                xdp.attach(idx, &link, mode, asked).map(|a| (a.mechanism(), a.mode(), a.prog_id(), a.ifindex()))
            });
            let id = xdp.program().id();
            assert_eq!(got.unwrap_or_else(|e| panic!("{what}: {e}")), (used, mode, id, idx), "{what}");
            assert_eq!(shown(&net), (Some(ip_word(mode).to_string()), vec![id]), "{what}");
            // Dropped on this thread, outside the namespace: the netlink
            // socket opened inside still reaches the interface.
            drop(xdp);
            assert_eq!(shown(&net), (None, vec![]), "{what}: still attached after drop");
        }
    }
}

#[test]
fn second_program_is_refused_and_the_first_stays() {
    let Some(net) = NetnsPair::create() else { return };
    let link = net.links[0].clone();
    let idx = ifindex(&net, 0, &link);
    let mechanisms = [Mechanism::Link, Mechanism::Netlink, Mechanism::Auto];
    for mode in MODES {
        for first in [Mechanism::Link, Mechanism::Netlink] {
            let mut xdp = StoqXdp::load(&[STOQ], MAX_REDIRECT_LEN, 1).unwrap();
            net.run_scoped(0, || xdp.attach(idx, &link, mode, first).map(drop)).unwrap();
            let other = pass_program();
            for second in mechanisms {
                for second_mode in MODES {
                    let what = format!("{mode} via {first}, then {second_mode} via {second}");
                    let e = net.run_scoped(0, || attach(&other, idx, &link, second_mode, second)).unwrap_err();
                    assert!(matches!(e, AttachError::AlreadyAttached { .. }), "{what}: {e:?}");
                    let msg = e.to_string();
                    let want =
                        format!("interface {link} already has an XDP program attached (see `ip link show {link}`)");
                    assert!(msg.starts_with(&want), "{what}: {msg}");
                    assert_eq!(shown(&net).1, vec![xdp.program().id()], "{what}");
                }
            }
            // Attaching the same StoqXdp again replaces its own attachment.
            let again = net.run_scoped(0, || xdp.attach(idx, &link, mode, first).map(|a| a.prog_id()));
            assert_eq!(again.unwrap(), xdp.program().id());
            assert_eq!(shown(&net), (Some(ip_word(mode).to_string()), vec![xdp.program().id()]));
        }
    }
}

#[test]
fn missing_interfaces_and_drivers_without_xdp_are_explained() {
    let Some(net) = NetnsPair::create() else { return };
    let prog = pass_program();
    for mode in MODES {
        for mechanism in [Mechanism::Link, Mechanism::Netlink, Mechanism::Auto] {
            let what = format!("{mode} via {mechanism}");
            for ifindex in [999_999, 0] {
                let e = net.run_scoped(0, || attach(&prog, ifindex, "nope0", mode, mechanism)).unwrap_err();
                assert!(matches!(e, AttachError::NoSuchInterface { ifindex: i } if i == ifindex), "{what}: {e:?}");
                let want = format!("no network interface has index {ifindex} in this network namespace");
                assert!(e.to_string().starts_with(&want), "{e}");
            }
        }
    }
    // Loopback (this namespace's own) has no driver XDP.
    for mechanism in [Mechanism::Link, Mechanism::Netlink, Mechanism::Auto] {
        let e = net.run_scoped(0, || attach(&prog, 1, "lo", XdpMode::Native, mechanism)).unwrap_err();
        assert!(matches!(e, AttachError::NativeUnsupported { .. }), "{mechanism}: {e:?}");
        assert!(e.to_string().starts_with("the driver of lo has no native XDP; use generic mode"), "{e}");
    }
}

#[test]
fn netlink_detach_leaves_a_replacement_alone() {
    let Some(net) = NetnsPair::create() else { return };
    let link = net.links[0].clone();
    let idx = ifindex(&net, 0, &link);
    let ours = pass_program();
    let theirs = pass_program();
    let mode = XdpMode::Generic;
    let att = net.run_scoped(0, || attach(&ours, idx, &link, mode, Mechanism::Netlink)).unwrap();
    // Someone else takes the interface over.
    net.output(0, "ip", &["link", "set", "dev", &link, "xdpgeneric", "off"]).unwrap();
    let their_att = net.run_scoped(0, || attach(&theirs, idx, &link, mode, Mechanism::Netlink)).unwrap();
    drop(att);
    assert_eq!(shown(&net), (Some("xdpgeneric".into()), vec![theirs.id()]), "removed someone else's program");
    drop(their_att);
    assert_eq!(shown(&net), (None, vec![]));

    // The path for kernels without XDP_FLAGS_REPLACE compares ids.
    let _att = net.run_scoped(0, || attach(&ours, idx, &link, mode, Mechanism::Netlink)).unwrap();
    net.run_scoped(0, || {
        let mut rtnl = Rtnetlink::open().unwrap();
        assert_eq!(rtnl.link_xdp_progs(idx).unwrap().skb, Some(ours.id()));
        attach::detach_if_ours(&mut rtnl, idx, mode, theirs.id()).unwrap();
        assert_eq!(rtnl.link_xdp_progs(idx).unwrap().skb, Some(ours.id()), "detached a program by another id");
        attach::detach_if_ours(&mut rtnl, idx, mode, ours.id()).unwrap();
        assert_eq!(rtnl.link_xdp_progs(idx).unwrap().skb, None);
    });
}

const HELPER_ENV: &str = "STOQ_XDP_ATTACH_HELPER";

/// Not a test by itself: the child process of
/// [`a_killed_process_link_detaches_netlink_stays`], which attaches and
/// waits to be killed. Does nothing unless `STOQ_XDP_ATTACH_HELPER` is set.
#[test]
fn attach_and_wait_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else { return };
    let (link, netlink) = spec.split_once(',').unwrap();
    let mechanism = if netlink == "netlink" { Mechanism::Netlink } else { Mechanism::Link };
    // `ip netns exec` remounted /sys for this namespace.
    let idx: u32 = std::fs::read_to_string(format!("/sys/class/net/{link}/ifindex")).unwrap().trim().parse().unwrap();
    let mut xdp = StoqXdp::load(&[STOQ], MAX_REDIRECT_LEN, 1).unwrap();
    let id = xdp.attach(idx, link, XdpMode::Generic, mechanism).unwrap().prog_id();
    // The harness may have written "test … ... " on this line already.
    println!("ATTACHED {id}");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_process_link_detaches_netlink_stays() {
    let Some(net) = NetnsPair::create() else { return };
    let exe = std::env::current_exe().unwrap();
    for mechanism in ["link", "netlink"] {
        let mut child = net
            .command(0, exe.to_str().unwrap())
            .args(["--exact", "bpf::tests_attach::attach_and_wait_helper", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, format!("{},{mechanism}", net.links[0]))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let id =
            stdout.lines().map_while(Result::ok).find_map(|l| l.split_once("ATTACHED ")?.1.trim().parse::<u32>().ok());
        let Some(id) = id else {
            let _ = child.kill();
            panic!("{mechanism}: the helper did not attach: {:?}", child.wait());
        };
        assert_eq!(shown(&net).1, vec![id], "{mechanism}");
        child.kill().unwrap(); // SIGKILL: no destructor runs.
        child.wait().unwrap();
        let start = Instant::now();
        while !shown(&net).1.is_empty() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if mechanism == "link" {
            assert_eq!(shown(&net), (None, vec![]), "the kernel kept a dead process's link");
        } else {
            assert_eq!(shown(&net).1, vec![id], "netlink attachments outlive their process");
            net.output(0, "ip", &["link", "set", "dev", &net.links[0], "xdpgeneric", "off"]).unwrap();
        }
    }
}

/// A real AF_XDP socket bound to queue 0 makes the filter redirect packets
/// of queue 0, and only those, while it is in the map.
#[test]
fn a_bound_xsk_in_the_map_gets_the_redirect() {
    let Some(net) = NetnsPair::create_with_queues(2, 2) else { return };
    let link = net.links[0].clone();
    let idx = ifindex(&net, 0, &link);
    net.run_scoped(0, || {
        let xdp = StoqXdp::load_with(&[STOQ], MAX_REDIRECT_LEN, 2, NoSocket::Drop).unwrap();
        let prog = xdp.program();
        let xsk = sys::TestXsk::bind(idx, 0).unwrap_or_else(|e| panic!("AF_XDP socket on {link}: {e}"));
        xdp.map().insert(0, xsk.fd()).unwrap();
        let [redirect, drop_, pass] = [XdpAction::Redirect, XdpAction::Drop, XdpAction::Pass].map(|a| a as u32);
        assert_eq!(prog.test_run(&v4(STOQ)).unwrap(), redirect);
        assert_eq!(prog.test_run_on(&v4(STOQ), idx, 0).unwrap(), redirect);
        assert_eq!(prog.test_run_on(&v4(STOQ), idx, 1).unwrap(), drop_, "queue 1 has no socket");
        assert_eq!(prog.test_run_on(&v4(53), idx, 0).unwrap(), pass);
        let e = prog.test_run_on(&v4(STOQ), idx, 2).unwrap_err();
        assert!(matches!(e, TestRunError::Kernel { .. }), "queue 2 does not exist: {e:?}");
        xdp.map().remove(0).unwrap();
        assert_eq!(prog.test_run(&v4(STOQ)).unwrap(), drop_);
        // A socket that closes leaves the map by itself. (Once the last
        // descriptor closes: a process another test spawns may hold a
        // copy for a moment, as xdpilone does not set SOCK_CLOEXEC.)
        xdp.map().insert(0, xsk.fd()).unwrap();
        assert_eq!(prog.test_run(&v4(STOQ)).unwrap(), redirect);
        drop(xsk);
        let start = Instant::now();
        while prog.test_run(&v4(STOQ)).unwrap() == redirect && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(prog.test_run(&v4(STOQ)).unwrap(), drop_);
    });
}

/// The kernel's reason (its extended ACK) reaches the error: veth refuses
/// native XDP when it has fewer receive queues than its peer transmit
/// queues. A BPF link cannot say why, so `Auto` asks netlink.
#[test]
fn the_kernels_reason_reaches_the_error() {
    let Some(net) = NetnsPair::create_with_queues(1, 2) else { return };
    let link = net.links[0].clone();
    let idx = ifindex(&net, 0, &link);
    let prog = pass_program();
    let why = "XDP expects number of rx queues not less than peer tx queues";
    for mechanism in [Mechanism::Netlink, Mechanism::Auto] {
        let e = net.run_scoped(0, || attach(&prog, idx, &link, XdpMode::Native, mechanism)).unwrap_err();
        assert!(matches!(e, AttachError::Kernel { mechanism: Mechanism::Netlink, .. }), "{mechanism}: {e:?}");
        assert!(e.to_string().contains(why), "{mechanism}: {e}");
    }
    let e = net.run_scoped(0, || attach(&prog, idx, &link, XdpMode::Native, Mechanism::Link)).unwrap_err();
    assert!(matches!(e, AttachError::Kernel { mechanism: Mechanism::Link, .. }), "{e:?}");
    assert!(e.to_string().contains("netlink mechanism"), "{e}");
    // Generic mode has no such limit.
    let att = net.run_scoped(0, || attach(&prog, idx, &link, XdpMode::Generic, Mechanism::Auto)).unwrap();
    assert_eq!(att.mechanism(), Mechanism::Link);
}
