//! The cache's policy against a scripted kernel (no privileges needed), then
//! against the real one in a pair of network namespaces.

use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};

use hw_detect::linux::netlink::NeighbourState;

use super::*;

const IF: u32 = 4;
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the scripted kernel answers. Routes not listed have none.
#[derive(Default)]
struct World {
    routes: HashMap<IpAddr, RouteHop>,
    neighbours: HashMap<IpAddr, Neighbour>,
    /// Every request fails to receive.
    broken: bool,
    /// Neighbours asked about, in order.
    asked: Vec<IpAddr>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<World>>);

impl Fake {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    fn route(&self, dst: IpAddr, hop: RouteHop) {
        self.world().routes.insert(dst, hop);
    }

    fn neighbour(&self, ip: IpAddr, mac: Option<[u8; 6]>, state: NeighbourState) {
        self.world().neighbours.insert(ip, Neighbour { mac, state });
    }
}

fn broken(op: &'static str) -> NetlinkError {
    NetlinkError::Recv { op, protocol: "NETLINK_ROUTE", source: io::Error::from_raw_os_error(libc::EAGAIN) }
}

impl Resolve for Fake {
    fn route(&mut self, dst: IpAddr) -> Result<RouteHop, NetlinkError> {
        let w = self.world();
        if w.broken {
            return Err(broken("RTM_GETROUTE"));
        }
        w.routes.get(&dst).copied().ok_or(NetlinkError::NoRoute { dst })
    }

    fn neighbour(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<Neighbour>, NetlinkError> {
        assert_eq!(ifindex, IF, "neighbours are asked on our interface");
        let mut w = self.world();
        if w.broken {
            return Err(broken("RTM_GETNEIGH"));
        }
        w.asked.push(ip);
        Ok(w.neighbours.get(&ip).copied())
    }
}

fn unicast(ifindex: u32, gateway: Option<IpAddr>, prefsrc: Option<IpAddr>) -> RouteHop {
    RouteHop { ifindex, gateway, prefsrc, kind: RouteKind::Unicast }
}

fn hops(fake: &Fake, own: &[IpAddr]) -> NextHops {
    NextHops::with_resolver(IF, own.to_vec(), Box::new(fake.clone()))
}

fn mac(m: [u8; 6], src: IpAddr) -> NextHop {
    NextHop::Mac { dst: MacAddr(m), src_ip: src }
}

const fn kernel(r: KernelReason) -> NextHop {
    NextHop::Kernel(r)
}

#[test]
fn policy() {
    use KernelReason as K;
    let fake = Fake::default();
    let own = v4(1);
    let kind = |kind| RouteHop { ifindex: 0, gateway: None, prefsrc: None, kind };
    fake.route(v4(2), unicast(IF, None, Some(own)));
    fake.route(v4(3), unicast(IF, Some(v4(254)), Some(own)));
    fake.route(v4(4), unicast(IF + 1, None, Some(own)));
    fake.route(own, RouteHop { ifindex: 1, ..kind(RouteKind::Local) });
    fake.route(v4(5), kind(RouteKind::Unreachable));
    fake.route(v4(6), kind(RouteKind::Blackhole));
    fake.route(v4(7), kind(RouteKind::Prohibit));
    fake.route(v4(255), RouteHop { ifindex: IF, ..kind(RouteKind::Other(3)) });
    fake.route(ip("fd00::2"), unicast(IF, None, Some(ip("fd00::1"))));
    fake.route(v4(8), unicast(IF, None, Some(own)));
    fake.neighbour(v4(2), Some(MAC_A), NeighbourState::Reachable);
    fake.neighbour(v4(254), Some(MAC_B), NeighbourState::Stale);
    fake.neighbour(v4(8), None, NeighbourState::Incomplete);

    let mut h = hops(&fake, &[own]);
    let now = Instant::now();
    let cases = [
        (v4(2), mac(MAC_A, own)),
        (v4(3), mac(MAC_B, own)),
        (v4(4), kernel(K::OtherInterface)),
        (own, kernel(K::Local)),
        (v4(5), kernel(K::Unreachable)),
        (v4(6), kernel(K::Unreachable)),
        (v4(7), kernel(K::Unreachable)),
        (v4(9), kernel(K::Unreachable)), // no route
        (v4(255), kernel(K::NotUnicast)),
        (ip("fd00::2"), kernel(K::NoSourceAddress)),
        (v4(8), kernel(K::NeighbourUnresolved)),
        (ip("::ffff:10.0.0.2"), mac(MAC_A, own)),
    ];
    for (dst, want) in cases {
        assert_eq!(h.lookup(dst, now), want, "{dst}");
    }
    // The gateway's neighbour was asked about, not the destination's.
    assert_eq!(fake.world().asked, [v4(2), v4(254), v4(8)]);
    let s = h.stats();
    assert_eq!((s.lookups, s.hits, s.queries), (12, 1, 14));
    assert_eq!(s.kernel(K::Unreachable), 4);
    assert_eq!(s.kernel_total(), 9);
    assert_eq!(KernelReason::ALL.iter().map(|r| s.kernel(*r)).sum::<u64>(), 9);
}

#[test]
fn source_address() {
    let fake = Fake::default();
    let (ll, ula, other) = (ip("fe80::1"), ip("fd00::1"), ip("fd00::99"));
    for (dst, prefsrc) in [(ip("fd00::2"), Some(other)), (ip("fe80::2"), None), (ip("fd00::3"), Some(ula))] {
        fake.route(dst, unicast(IF, None, prefsrc));
        fake.neighbour(dst, Some(MAC_A), NeighbourState::Reachable);
    }
    let mut h = hops(&fake, &[v4(1), ll, ula]);
    let now = Instant::now();
    // prefsrc is not ours: our first address of the family and scope.
    assert_eq!(h.lookup(ip("fd00::2"), now), mac(MAC_A, ula));
    assert_eq!(h.lookup(ip("fe80::2"), now), mac(MAC_A, ll));
    assert_eq!(h.lookup(ip("fd00::3"), now), mac(MAC_A, ula));
    // Told no addresses: the kernel's choice.
    let mut h = hops(&fake, &[]);
    assert_eq!(h.lookup(ip("fd00::2"), now), mac(MAC_A, other));
}

#[test]
fn answers_are_reused_then_revalidated() {
    let fake = Fake::default();
    let own = v4(1);
    fake.route(v4(2), unicast(IF, None, Some(own)));
    fake.route(v4(3), unicast(IF, None, Some(own)));
    fake.neighbour(v4(2), Some(MAC_A), NeighbourState::Reachable);
    fake.neighbour(v4(3), Some(MAC_B), NeighbourState::Reachable);
    let mut h = hops(&fake, &[own]);
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);

    assert_eq!(h.lookup(v4(2), t0), mac(MAC_A, own));
    assert_eq!(h.stats().queries, 2);
    // A run to one peer, then alternating peers: all within the interval.
    for n in 1..100 {
        assert_eq!(h.lookup(v4(2), ms(n)), mac(MAC_A, own));
    }
    assert_eq!(h.lookup(v4(3), ms(100)), mac(MAC_B, own));
    for n in 101..200 {
        let dst = if n % 2 == 0 { v4(2) } else { v4(3) };
        assert!(matches!(h.lookup(dst, ms(n)), NextHop::Mac { .. }));
    }
    let s = h.stats();
    assert_eq!((s.lookups, s.hits, s.queries), (200, 198, 4));

    // The peer's MAC changes and then the route moves: each is seen once
    // the answers expire (the neighbour's may be shared for one more interval).
    fake.neighbour(v4(2), Some(MAC_B), NeighbourState::Reachable);
    assert_eq!(h.lookup(v4(2), ms(999)), mac(MAC_A, own));
    assert_eq!(h.lookup(v4(2), ms(2000)), mac(MAC_B, own));
    fake.route(v4(2), unicast(IF + 1, None, Some(own)));
    assert_eq!(h.lookup(v4(2), ms(2500)), mac(MAC_B, own));
    assert_eq!(h.lookup(v4(2), ms(3000)), kernel(KernelReason::OtherInterface));

    // A neighbour that fails falls back to the kernel at the next check.
    fake.neighbour(v4(3), Some(MAC_B), NeighbourState::Failed);
    assert_eq!(h.lookup(v4(3), ms(3000)), kernel(KernelReason::NeighbourUnresolved));
}

#[test]
fn unresolved_neighbours_are_retried_with_backoff() {
    let fake = Fake::default();
    let own = v4(1);
    fake.route(v4(2), unicast(IF, None, Some(own)));
    let mut h = hops(&fake, &[own]);
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let unresolved = kernel(KernelReason::NeighbourUnresolved);

    // Asked after waits of 20, 40, ... 640 ms, then 1 s (the cap).
    let mut asked_at = Vec::new();
    for n in 0..2700 {
        let before = fake.world().asked.len();
        assert_eq!(h.lookup(v4(2), ms(n)), unresolved);
        if fake.world().asked.len() > before {
            asked_at.push(n);
        }
    }
    assert_eq!(asked_at, [0, 20, 60, 140, 300, 620, 1260, 2260]);

    // Resolved: seen at the next retry, and the backoff starts over after.
    fake.neighbour(v4(2), Some(MAC_A), NeighbourState::Delay);
    assert_eq!(h.lookup(v4(2), ms(3259)), unresolved);
    assert_eq!(h.lookup(v4(2), ms(3260)), mac(MAC_A, own));
    fake.neighbour(v4(2), None, NeighbourState::Incomplete);
    h.neighbours.clear();
    assert_eq!(h.lookup(v4(2), ms(4260)), unresolved);
    assert_eq!(h.dests[&v4(2)].until, ms(4280));
}

#[test]
fn failures_fall_back_and_are_logged_once_per_interval() {
    let fake = Fake::default();
    fake.world().broken = true;
    let mut h = hops(&fake, &[v4(1)]);
    let t0 = Instant::now();
    let failed = kernel(KernelReason::LookupFailed);
    assert_eq!(h.lookup(v4(2), t0), failed);
    assert_eq!(h.dests[&v4(2)].logged, Some(t0));
    // Retried after the interval; not logged again within FAILURE_LOG_INTERVAL.
    let later = t0 + REVALIDATE;
    assert_eq!(h.lookup(v4(2), later - Duration::from_millis(1)), failed);
    assert_eq!(h.lookup(v4(2), later), failed);
    assert_eq!(h.stats().queries, 2);
    assert_eq!(h.dests[&v4(2)].logged, Some(t0));
    let much_later = t0 + FAILURE_LOG_INTERVAL;
    assert_eq!(h.lookup(v4(2), much_later), failed);
    assert_eq!(h.dests[&v4(2)].logged, Some(much_later));
    assert_eq!(h.stats().kernel(KernelReason::LookupFailed), 4);

    // The kernel answers again.
    fake.world().broken = false;
    fake.route(v4(2), unicast(IF, None, None));
    fake.neighbour(v4(2), Some(MAC_A), NeighbourState::Permanent);
    assert_eq!(h.lookup(v4(2), much_later + REVALIDATE), mac(MAC_A, v4(1)));
}

#[test]
fn the_cache_is_bounded() {
    let fake = Fake::default();
    let mut h = hops(&fake, &[v4(1)]);
    let t0 = Instant::now();
    let dst = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
    for n in 0..CAPACITY as u32 {
        h.lookup(dst(n), t0 + Duration::from_micros(u64::from(n)));
    }
    // Destination 0 is used again, so 1 is the least recently used.
    h.lookup(dst(0), t0 + Duration::from_millis(500));
    assert_eq!((h.dests.len(), h.stats().evictions), (CAPACITY, 0));
    h.lookup(dst(CAPACITY as u32), t0 + Duration::from_millis(600));
    assert_eq!((h.dests.len(), h.stats().evictions), (CAPACITY, 1));
    assert!(h.dests.contains_key(&dst(0)) && !h.dests.contains_key(&dst(1)));
}

/// The ifindex of end `i`'s veth, in its namespace.
fn veth_ifindex(net: &stoq_testbed::NetnsPair, i: usize) -> u32 {
    let path = format!("/sys/class/net/{}/ifindex", net.links[i]);
    net.output(i, "cat", &[&path]).unwrap().trim().parse().unwrap()
}

/// Runs `ip args` in namespace `i`.
fn ip_in(net: &stoq_testbed::NetnsPair, i: usize, args: &[&str]) {
    net.output(i, "ip", args).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn against_the_kernel_in_a_namespace_pair() {
    use KernelReason as K;
    let Some(net) = stoq_testbed::NetnsPair::create() else { return };
    let [own, peer] = net.addrs;
    let veth = veth_ifindex(&net, 0);
    let text = net.output(1, "cat", &[&format!("/sys/class/net/{}/address", net.links[1])]).unwrap();
    let peer_mac: Vec<u8> = text.trim().split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    let peer_mac = MacAddr(peer_mac.try_into().unwrap());
    // Another interface in namespace 0 (a second veth pair), a route through
    // it, one through the peer, and an unreachable one.
    ip_in(&net, 0, &["link", "add", "sqxo0", "type", "veth", "peer", "name", "sqxo1"]);
    ip_in(&net, 0, &["addr", "add", "10.77.0.1/24", "dev", "sqxo0"]);
    for dev in ["sqxo0", "sqxo1"] {
        ip_in(&net, 0, &["link", "set", dev, "up"]);
    }
    ip_in(&net, 0, &["route", "add", "10.66.0.0/24", "via", "10.77.0.2"]);
    ip_in(&net, 0, &["route", "add", "10.99.0.0/24", "via", &peer.to_string()]);
    ip_in(&net, 0, &["route", "add", "unreachable", "10.98.0.0/24"]);

    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let (mut hops, ms) = net.run_scoped(0, || {
        let mut hops = NextHops::new(veth, vec![own]);
        assert_eq!(hops.lookup(peer, at(0)), kernel(K::NeighbourUnresolved));
        assert_eq!(hops.stats().queries, 2);
        // A burst within the retry interval asks nothing.
        for ms in 1..20 {
            assert_eq!(hops.lookup(peer, at(ms)), kernel(K::NeighbourUnresolved));
        }
        let s = hops.stats();
        assert_eq!((s.lookups, s.hits, s.queries), (20, 19, 2));

        // What the backend does with it: the kernel socket sends, and the
        // kernel resolves the peer.
        UdpSocket::bind((own, 0)).unwrap().send_to(b"resolve", (peer, 9)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ms = 1000;
        let hop = loop {
            match hops.lookup(peer, at(ms)) {
                hop @ NextHop::Mac { .. } => break hop,
                _ if Instant::now() > deadline => panic!("{peer} not resolved after 5 s"),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
            ms += 1000;
        };
        assert_eq!(hop, NextHop::Mac { dst: peer_mac, src_ip: own });

        // Through the peer as a gateway: the route is asked, its neighbour shared.
        let queries = hops.stats().queries;
        assert_eq!(hops.lookup(ip("10.99.0.7"), at(ms)), NextHop::Mac { dst: peer_mac, src_ip: own });
        assert_eq!(hops.stats().queries, queries + 1);
        let mapped = IpAddr::V6(match peer {
            IpAddr::V4(p) => p.to_ipv6_mapped(),
            IpAddr::V6(_) => unreachable!("the testbed's addresses are IPv4"),
        });
        assert_eq!(hops.lookup(mapped, at(ms)), hop);

        for (dst, reason) in [
            (own, K::Local),
            (ip("127.0.0.1"), K::Local),
            (ip("10.77.0.2"), K::OtherInterface),
            (ip("10.66.0.5"), K::OtherInterface),
            (ip("10.98.0.1"), K::Unreachable),
            (ip("192.0.2.1"), K::Unreachable),
        ] {
            assert_eq!(hops.lookup(dst, at(ms)), kernel(reason), "{dst}");
        }
        assert_eq!(hops.stats().kernel(K::OtherInterface), 2);
        (hops, ms)
    });

    // The peer's entry is replaced by hand, then deleted: each is seen after
    // re-validation, never before.
    let link = net.links[0].clone();
    let peer_s = peer.to_string();
    ip_in(&net, 0, &["neigh", "replace", &peer_s, "lladdr", "02:00:5e:00:53:01", "dev", &link, "nud", "permanent"]);
    net.run_scoped(0, || {
        assert_eq!(hops.lookup(peer, at(ms + 500)), NextHop::Mac { dst: peer_mac, src_ip: own });
        let new = NextHop::Mac { dst: MacAddr([0x02, 0, 0x5e, 0, 0x53, 1]), src_ip: own };
        assert_eq!(hops.lookup(peer, at(ms + 3000)), new);
    });
    ip_in(&net, 0, &["neigh", "del", &peer_s, "dev", &link]);
    net.run_scoped(0, || {
        assert_eq!(hops.lookup(peer, at(ms + 6000)), kernel(K::NeighbourUnresolved));
    });
}
