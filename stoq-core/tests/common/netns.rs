//! Two network namespaces joined by a veth pair (MTU 1500), for tests that
//! cross a real link. Needs root: in CI (which runs as root) a failure to
//! create them fails the test; elsewhere the test says it is skipped.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct NetnsPair {
    pub names: [String; 2],
    pub addrs: [IpAddr; 2],
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
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
        let pair = NetnsPair { names: names.clone(), addrs: addrs.map(IpAddr::V4) };
        let links = [format!("sq{tag}a"), format!("sq{tag}b")];
        let setup = || -> Result<(), String> {
            for ns in &names {
                ip(&["netns", "add", ns])?;
            }
            ip(&[
                "link", "add", &links[0], "netns", &names[0], "type", "veth", "peer", "name", &links[1], "netns",
                &names[1],
            ])?;
            for i in 0..2 {
                ip(&["-n", &names[i], "addr", "add", &format!("{}/24", addrs[i]), "dev", &links[i]])?;
                ip(&["-n", &names[i], "link", "set", &links[i], "mtu", "1500", "up"])?;
                ip(&["-n", &names[i], "link", "set", "lo", "up"])?;
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
    /// in that namespace) and returns its result.
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
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
