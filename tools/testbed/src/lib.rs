//! # stoq-testbed: real links for integration tests
//!
//! Two network namespaces joined by a veth pair (MTU 1500), created by the
//! test and deleted when the [`NetnsPair`] is dropped, optionally shaped
//! with a `tbf` qdisc. Tests run code inside a namespace on a thread
//! ([`NetnsPair::run_in`]: sockets it opens stay there) or run a whole
//! program there ([`NetnsPair::command`], `ip netns exec`, which also
//! remounts `/sys` so the program sees the namespace's interfaces).
//!
//! Needs root: in CI (which runs as root, `CI` set) a failure to create the
//! namespaces fails the test; elsewhere [`NetnsPair::create`] says the test
//! is skipped and returns `None` ([`skip_unless_ci`], which other tests that
//! cannot set up use too).
//!
//! Also a seccomp filter that denies io_uring to a thread
//! ([`deny_io_uring_setup`]), for tests of hosts without it.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod seccomp;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(target_os = "linux")]
pub use seccomp::deny_io_uring_setup;

/// For a test that cannot set up (`why`): panics when `CI` is set (CI has
/// root and the hardware, so it must not skip); elsewhere says the test is
/// skipped, and the caller returns.
pub fn skip_unless_ci(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "cannot set up under CI: {why}");
    eprintln!("SKIPPED (CI runs it): {why}");
}

/// True when this process is root. Otherwise says that `what` is skipped,
/// or panics when `CI` is set ([`skip_unless_ci`]).
pub fn root_or_skip(what: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    skip_unless_ci(&format!("{what} needs root"));
    false
}

/// Two namespaces and the veth pair between them.
pub struct NetnsPair {
    /// Namespace names, `[a, b]`.
    pub names: [String; 2],
    /// The veth ends, `[in a, in b]`.
    pub links: [String; 2],
    /// Each end's IPv4 address.
    pub addrs: [IpAddr; 2],
}

/// Runs `cmd args` and returns its stdout, or what it said on stderr.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl NetnsPair {
    /// Creates the pair, or returns `None` (after saying why) when this is
    /// not root and not CI.
    pub fn create() -> Option<Self> {
        Self::setup(None)
    }

    /// [`create`](Self::create) with `rx` receive and `tx` transmit queues
    /// on each veth end (rather than the kernel's one per possible CPU).
    pub fn create_with_queues(rx: u32, tx: u32) -> Option<Self> {
        Self::setup(Some((rx, tx)))
    }

    fn setup(queues: Option<(u32, u32)>) -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let names = [format!("stoq-{tag}-a"), format!("stoq-{tag}-b")];
        let subnet = 1 + (std::process::id() % 200) as u8;
        let addrs = [Ipv4Addr::new(10, 213, subnet, 1 + 2 * n as u8), Ipv4Addr::new(10, 213, subnet, 2 + 2 * n as u8)];
        let links = [format!("sq{tag}a"), format!("sq{tag}b")];
        // Built before the setup so that Drop cleans up half-made pairs.
        let pair = NetnsPair { names: names.clone(), links: links.clone(), addrs: addrs.map(IpAddr::V4) };
        let setup = || -> Result<(), String> {
            for ns in &names {
                run("ip", &["netns", "add", ns])?;
            }
            let queues = queues.map(|(rx, tx)| [rx.to_string(), tx.to_string()]);
            let mut link_add = vec!["link", "add"];
            for i in 0..2 {
                if i == 1 {
                    link_add.extend(["type", "veth", "peer", "name"]);
                }
                link_add.extend([links[i].as_str(), "netns", &names[i]]);
                if let Some([rx, tx]) = &queues {
                    link_add.extend(["numrxqueues", rx, "numtxqueues", tx]);
                }
            }
            run("ip", &link_add)?;
            for i in 0..2 {
                run("ip", &["-n", &names[i], "addr", "add", &format!("{}/24", addrs[i]), "dev", &links[i]])?;
                run("ip", &["-n", &names[i], "link", "set", &links[i], "mtu", "1500", "up"])?;
                run("ip", &["-n", &names[i], "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        match setup() {
            Ok(()) => Some(pair),
            Err(e) => {
                skip_unless_ci(&format!("cannot create network namespaces (needs root): {e}"));
                None
            }
        }
    }

    /// Runs `f` on a new thread inside namespace `i` (sockets it opens stay
    /// in that namespace) and returns its handle.
    pub fn run_in<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = self.path(i);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }

    /// Runs `f`, which may borrow, inside namespace `i` on a scoped thread
    /// and returns its result; a panic in `f` goes on here.
    pub fn run_scoped<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path(i);
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&path);
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn path(&self, i: usize) -> String {
        format!("/var/run/netns/{}", self.names[i])
    }

    /// `program` to be run inside namespace `i` (`ip netns exec`).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i], program]);
        c
    }

    /// Runs `program args` inside namespace `i` (as [`command`](Self::command)
    /// does) and returns its stdout, or on failure what it said on stderr.
    pub fn output(&self, i: usize, program: &str, args: &[&str]) -> Result<String, String> {
        run("ip", &[&["netns", "exec", &self.names[i], program], args].concat())
    }

    /// Shapes the egress of end `i` with a root `tbf` qdisc, replacing any
    /// root qdisc. `rate` as tc spells it (`90mbit`, `2gbit`); the bucket
    /// holds 2 ms at that rate (at least 64 KiB, so a GSO packet fits) and
    /// the queue 20 ms.
    pub fn shape(&self, i: usize, rate: &str, bits_per_s: u64) -> Result<(), String> {
        let burst = (bits_per_s / 8 / 500).max(64 << 10).to_string();
        let link = &self.links[i];
        let args = ["qdisc", "replace", "dev", link, "root", "tbf", "rate", rate, "burst", &burst, "latency", "20ms"];
        self.output(i, "tc", &args).map(drop)
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) {
    let ns = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    #[test]
    fn each_end_sits_in_its_own_namespace_until_the_pair_is_dropped() {
        let Some(net) = NetnsPair::create_with_queues(2, 3) else { return };
        for i in 0..2 {
            let queues = net.output(i, "ls", &[&format!("/sys/class/net/{}/queues", net.links[i])]).unwrap();
            assert_eq!(queues.split_whitespace().collect::<Vec<_>>(), ["rx-0", "rx-1", "tx-0", "tx-1", "tx-2"]);
            let peer = &net.links[1 - i];
            assert!(net.output(i, "ip", &["link", "show", peer]).is_err(), "{peer} is not in namespace {i}");
        }
        // Sockets opened in a namespace bind its end's address, and reach the other end.
        let rx = net.run_scoped(1, || UdpSocket::bind((net.addrs[1], 4433))).unwrap();
        let sent = net.run_scoped(0, || {
            let tx = UdpSocket::bind((net.addrs[0], 0))?;
            tx.send_to(b"veth", (net.addrs[1], 4433))
        });
        assert_eq!(sent.unwrap(), 4);
        let mut buf = [0; 8];
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.ip()), (&b"veth"[..], net.addrs[0]));
        assert!(UdpSocket::bind((net.addrs[0], 0)).is_err(), "end 0's address is not in this namespace");

        let names = net.names.clone();
        drop(net);
        let listed = run("ip", &["netns", "list"]).unwrap();
        assert!(names.iter().all(|ns| !listed.contains(ns.as_str())), "{names:?} left in {listed}");
    }
}
