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
//! is skipped and returns `None`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Two namespaces and the veth pair between them.
pub struct NetnsPair {
    /// Namespace names, `[a, b]`.
    pub names: [String; 2],
    /// The veth ends, `[in a, in b]`.
    pub links: [String; 2],
    /// Each end's IPv4 address.
    pub addrs: [IpAddr; 2],
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl NetnsPair {
    /// Creates the pair, or returns `None` (after saying why) when this is
    /// not root and not CI.
    pub fn create() -> Option<Self> {
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
            run(
                "ip",
                &[
                    "link", "add", &links[0], "netns", &names[0], "type", "veth", "peer", "name", &links[1], "netns",
                    &names[1],
                ],
            )?;
            for i in 0..2 {
                run("ip", &["-n", &names[i], "addr", "add", &format!("{}/24", addrs[i]), "dev", &links[i]])?;
                run("ip", &["-n", &names[i], "link", "set", &links[i], "mtu", "1500", "up"])?;
                run("ip", &["-n", &names[i], "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        match setup() {
            Ok(()) => Some(pair),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED (needs root; CI runs it): cannot create network namespaces: {e}");
                None
            }
            Err(e) => panic!("cannot create network namespaces in CI: {e}"),
        }
    }

    /// Runs `f` on a new thread inside namespace `i` (sockets it opens stay
    /// in that namespace) and returns its handle.
    pub fn run_in<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.names[i]);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// `program` to be run inside namespace `i` (`ip netns exec`).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i], program]);
        c
    }

    /// Shapes the egress of end `i` with a root `tbf` qdisc, replacing any
    /// root qdisc. `rate` as tc spells it (`90mbit`, `2gbit`); the bucket
    /// holds 2 ms at that rate (at least 64 KiB, so a GSO packet fits) and
    /// the queue 20 ms.
    pub fn shape(&self, i: usize, rate: &str, bits_per_s: u64) -> Result<(), String> {
        let burst = (bits_per_s / 8 / 500).max(64 << 10).to_string();
        let (ns, link) = (&self.names[i], &self.links[i]);
        run(
            "ip",
            &[
                "netns", "exec", ns, "tc", "qdisc", "replace", "dev", link, "root", "tbf", "rate", rate, "burst",
                &burst, "latency", "20ms",
            ],
        )
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}
