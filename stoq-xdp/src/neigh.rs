//! Next hops for the frames the AF_XDP backend writes itself.
//!
//! An AF_XDP socket bypasses the kernel's IP stack, so each frame needs the
//! Ethernet address of the next hop and a source IP address, which the
//! kernel would otherwise take from its routing and neighbour tables. This
//! module asks the kernel for them over rtnetlink (`hw_detect`'s
//! [`route_get`](hw_detect::linux::netlink::route_get) and
//! [`neighbour_get`](hw_detect::linux::netlink::neighbour_get)) and caches
//! the answers per shard in [`NextHops`].
//!
//! # Policy
//!
//! [`NextHops::lookup`] answers [`NextHop::Mac`] only when the route to the
//! destination is a unicast route leaving by our interface and the kernel
//! holds a usable neighbour entry (reachable, stale, delay, probe,
//! permanent, or noarp with an address) for the gateway, or for the
//! destination itself when it is on the link. Everything else is
//! [`NextHop::Kernel`] with the [`KernelReason`]: the backend sends that
//! datagram through its companion kernel UDP socket, which is correct
//! whatever the route is.
//!
//! - Another interface, a local or loopback destination, no route or a
//!   reject route, a broadcast or multicast route: the kernel knows what to
//!   do (or which error to give); frames we wrote on our interface would be
//!   wrong.
//! - No neighbour entry, or one without a usable address (incomplete,
//!   failed): sending through the kernel makes it resolve the neighbour
//!   (ARP, NDP) while it delivers the datagram, so nothing is dropped or held
//!   here, and the next lookup finds the address. We do not send ARP or NDP
//!   ourselves.
//! - A netlink failure is never a panic: the datagram goes through the
//!   kernel ([`KernelReason::LookupFailed`]) and the failure is logged at most
//!   once per destination per [`FAILURE_LOG_INTERVAL`].
//!
//! # Cost
//!
//! The transmit path calls [`lookup`](NextHops::lookup) for every batch, so
//! an answer is reused until it expires and netlink is never asked per
//! packet:
//!
//! - The last answer is kept aside: a run of batches to one peer costs a
//!   comparison of the address and one of the time.
//! - Other cached destinations cost one hash lookup.
//! - [`NextHop::Mac`] and the settled kernel answers are re-validated every
//!   [`REVALIDATE`] (1 s; the route and the neighbour are asked again), so
//!   route changes, a neighbour that became unusable, and a new MAC are
//!   picked up within about a second, while a busy destination costs at most
//!   two queries a second.
//! - A neighbour that is not resolved yet is asked again after
//!   [`RETRY_MIN`] (20 ms), doubling on each miss up to [`REVALIDATE`]: the
//!   kernel usually resolves within a round trip, and a burst to a dead
//!   neighbour does not hammer netlink.
//! - Usable neighbours are shared between destinations for [`REVALIDATE`]:
//!   the peers behind one gateway cost one neighbour query a second
//!   together, not one each. A neighbour answer is thus at most two
//!   intervals old.
//! - At most [`CAPACITY`] destinations are kept; a new one past that evicts
//!   the one least recently looked up (to within [`REVALIDATE`]), found by a
//!   scan, which only happens on a miss that also costs netlink round trips.
//!
//! A lookup that misses asks the kernel synchronously (one or two round
//! trips on one `NETLINK_ROUTE` socket, opened at the first miss in the
//! calling thread's network namespace and reopened after a socket error).
//! Subscribing to the kernel's route and neighbour notifications would make
//! the periodic re-validation unnecessary; polling is simpler and bounded.
//!
//! IPv4-mapped IPv6 destinations (`::ffff:a.b.c.d`) are IPv4 destinations
//! here: the answer's source address is IPv4.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hw_detect::linux::netlink::{Neighbour, NetlinkError, RouteHop, RouteKind, Rtnetlink};

use crate::frame::MacAddr;

/// How long an answer is used before the kernel is asked again.
pub const REVALIDATE: Duration = Duration::from_secs(1);
/// The first wait before asking again about a neighbour that was not
/// resolved; it doubles on each miss, up to [`REVALIDATE`].
pub const RETRY_MIN: Duration = Duration::from_millis(20);
/// The most destinations (and neighbours) kept.
pub const CAPACITY: usize = 4096;
/// A failing lookup is logged at most this often per destination.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why a datagram goes through the kernel socket rather than a frame we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelReason {
    /// The route leaves by another interface.
    OtherInterface,
    /// The destination is local (one of this host's addresses, or loopback).
    Local,
    /// No route, or an unreachable, blackhole or prohibit route.
    Unreachable,
    /// A route that is not unicast (broadcast, multicast, anycast, ...).
    NotUnicast,
    /// Our interface has no address of the destination's family.
    NoSourceAddress,
    /// No usable neighbour entry yet; the kernel resolves it as it sends.
    NeighbourUnresolved,
    /// Asking the kernel failed (logged).
    LookupFailed,
}

impl KernelReason {
    /// Every reason, in declaration order.
    pub const ALL: [KernelReason; 7] = [
        KernelReason::OtherInterface,
        KernelReason::Local,
        KernelReason::Unreachable,
        KernelReason::NotUnicast,
        KernelReason::NoSourceAddress,
        KernelReason::NeighbourUnresolved,
        KernelReason::LookupFailed,
    ];
}

/// Where the datagrams to one destination go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Write the frame ourselves: to Ethernet address `dst`, from `src_ip`.
    Mac {
        /// The next hop's Ethernet address (the gateway's, or the destination's on the link).
        dst: MacAddr,
        /// The source address: the route's preferred source when it is one
        /// of ours, else one of our addresses of the destination's family.
        src_ip: IpAddr,
    },
    /// Send through the kernel socket, for this reason.
    Kernel(KernelReason),
}

/// Counters of a [`NextHops`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextHopStats {
    /// Calls to [`NextHops::lookup`].
    pub lookups: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Netlink requests sent (route and neighbour gets).
    pub queries: u64,
    /// Destinations dropped to stay within [`CAPACITY`].
    pub evictions: u64,
    kernel: [u64; KernelReason::ALL.len()],
}

impl NextHopStats {
    /// Lookups that answered [`NextHop::Kernel`] with `reason`.
    pub fn kernel(&self, reason: KernelReason) -> u64 {
        self.kernel[reason as usize]
    }

    /// Lookups that answered [`NextHop::Kernel`], whatever the reason.
    pub fn kernel_total(&self) -> u64 {
        self.kernel.iter().sum()
    }
}

/// Where route and neighbour answers come from: the kernel, or a fake in tests.
trait Resolve: Send {
    fn route(&mut self, dst: IpAddr) -> Result<RouteHop, NetlinkError>;
    fn neighbour(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<Neighbour>, NetlinkError>;
}

/// The kernel, over one rtnetlink socket opened when first needed.
#[derive(Default)]
struct Netlink {
    sock: Option<Rtnetlink>,
}

impl Netlink {
    fn ask<T>(&mut self, f: impl FnOnce(&mut Rtnetlink) -> Result<T, NetlinkError>) -> Result<T, NetlinkError> {
        let sock = match &mut self.sock {
            Some(s) => s,
            none => none.insert(Rtnetlink::open()?),
        };
        let answer = f(sock);
        // A socket that failed to send or receive may be wedged or hold a
        // late answer; start afresh next time.
        if matches!(answer, Err(NetlinkError::Send { .. } | NetlinkError::Recv { .. })) {
            self.sock = None;
        }
        answer
    }
}

impl Resolve for Netlink {
    fn route(&mut self, dst: IpAddr) -> Result<RouteHop, NetlinkError> {
        self.ask(|s| s.route_get(dst))
    }

    fn neighbour(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<Neighbour>, NetlinkError> {
        self.ask(|s| s.neighbour_get(ifindex, ip))
    }
}

/// One destination's answer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hop: NextHop,
    /// Answer from the cache until then.
    until: Instant,
    /// The wait before the last retry of an unresolved neighbour.
    retry: Duration,
    /// The last lookup answered from this entry, for eviction.
    used: Instant,
    /// When a failure was last logged.
    logged: Option<Instant>,
}

/// The last answer, kept aside for runs of lookups of one destination.
#[derive(Debug, Clone, Copy)]
struct Last {
    dst: IpAddr,
    hop: NextHop,
    until: Instant,
}

/// A shard's next-hop cache for one interface: see the [module docs](self).
pub struct NextHops {
    ifindex: u32,
    own: Vec<IpAddr>,
    resolver: Box<dyn Resolve>,
    dests: HashMap<IpAddr, Entry>,
    /// Usable neighbours by address, and until when to trust them.
    neighbours: HashMap<IpAddr, (MacAddr, Instant)>,
    last: Option<Last>,
    stats: NextHopStats,
}

impl NextHops {
    /// A cache for frames sent on interface `ifindex`, whose addresses are
    /// `own` (the source addresses we may use). Asks nothing yet.
    pub fn new(ifindex: u32, own: Vec<IpAddr>) -> Self {
        Self::with_resolver(ifindex, own, Box::new(Netlink::default()))
    }

    fn with_resolver(ifindex: u32, own: Vec<IpAddr>, resolver: Box<dyn Resolve>) -> Self {
        NextHops {
            ifindex,
            own: own.into_iter().map(|a| a.to_canonical()).collect(),
            resolver,
            dests: HashMap::new(),
            neighbours: HashMap::new(),
            last: None,
            stats: NextHopStats::default(),
        }
    }

    /// Where datagrams to `dst` go at time `now`: from the cache, or asked
    /// of the kernel when the cached answer has expired. Never fails: what
    /// cannot be sent as our own frame is [`NextHop::Kernel`].
    pub fn lookup(&mut self, dst: IpAddr, now: Instant) -> NextHop {
        let dst = dst.to_canonical();
        self.stats.lookups += 1;
        let hop = match self.last {
            Some(last) if last.dst == dst && now < last.until => {
                self.stats.hits += 1;
                last.hop
            }
            _ => self.lookup_entry(dst, now),
        };
        if let NextHop::Kernel(reason) = hop {
            self.stats.kernel[reason as usize] += 1;
        }
        hop
    }

    /// The counters so far.
    pub fn stats(&self) -> NextHopStats {
        self.stats
    }

    fn lookup_entry(&mut self, dst: IpAddr, now: Instant) -> NextHop {
        let previous = self.dests.get_mut(&dst).map(|e| {
            e.used = now;
            *e
        });
        if let Some(e) = previous.filter(|e| now < e.until) {
            self.stats.hits += 1;
            self.last = Some(Last { dst, hop: e.hop, until: e.until });
            return e.hop;
        }

        let mut logged = previous.and_then(|e| e.logged);
        let hop = match self.resolve(dst, now) {
            Ok(hop) => hop,
            Err(e) => {
                if logged.is_none_or(|at| now.saturating_duration_since(at) >= FAILURE_LOG_INTERVAL) {
                    log::warn!("next hop to {dst}: {e}; sending through the kernel socket until it answers");
                    logged = Some(now);
                }
                NextHop::Kernel(KernelReason::LookupFailed)
            }
        };
        let retry = match (hop, previous) {
            (NextHop::Kernel(KernelReason::NeighbourUnresolved), Some(p))
                if p.hop == NextHop::Kernel(KernelReason::NeighbourUnresolved) =>
            {
                (p.retry * 2).min(REVALIDATE)
            }
            (NextHop::Kernel(KernelReason::NeighbourUnresolved), _) => RETRY_MIN,
            _ => REVALIDATE,
        };
        let until = now.checked_add(retry).unwrap_or(now);
        if previous.is_none() && self.dests.len() >= CAPACITY {
            self.evict();
        }
        self.dests.insert(dst, Entry { hop, until, retry, used: now, logged });
        self.last = Some(Last { dst, hop, until });
        hop
    }

    /// Drops the destination least recently looked up.
    fn evict(&mut self) {
        if let Some(oldest) = self.dests.iter().min_by_key(|(_, e)| e.used).map(|(d, _)| *d) {
            self.dests.remove(&oldest);
            self.stats.evictions += 1;
        }
    }

    /// Asks the kernel where `dst` goes.
    fn resolve(&mut self, dst: IpAddr, now: Instant) -> Result<NextHop, NetlinkError> {
        use KernelReason as K;
        self.stats.queries += 1;
        let route = match self.resolver.route(dst) {
            Ok(route) => route,
            Err(NetlinkError::NoRoute { .. }) => return Ok(NextHop::Kernel(K::Unreachable)),
            Err(e) => return Err(e),
        };
        let reason = match route.kind {
            RouteKind::Unicast if route.ifindex == self.ifindex => None,
            RouteKind::Unicast => Some(K::OtherInterface),
            RouteKind::Local => Some(K::Local),
            kind if kind.rejects() => Some(K::Unreachable),
            _ => Some(K::NotUnicast),
        };
        if let Some(reason) = reason {
            return Ok(NextHop::Kernel(reason));
        }
        let Some(src_ip) = self.source(dst, route.prefsrc) else {
            return Ok(NextHop::Kernel(K::NoSourceAddress));
        };
        Ok(match self.neighbour(route.gateway.unwrap_or(dst), now)? {
            Some(mac) => NextHop::Mac { dst: mac, src_ip },
            None => NextHop::Kernel(K::NeighbourUnresolved),
        })
    }

    /// The MAC of neighbour `ip` if it is usable: shared answer, or asked.
    fn neighbour(&mut self, ip: IpAddr, now: Instant) -> Result<Option<MacAddr>, NetlinkError> {
        if let Some(&(mac, until)) = self.neighbours.get(&ip)
            && now < until
        {
            return Ok(Some(mac));
        }
        self.stats.queries += 1;
        let found = self.resolver.neighbour(self.ifindex, ip)?;
        let Some(mac) = found.filter(Neighbour::usable).and_then(|n| n.mac).map(MacAddr) else {
            self.neighbours.remove(&ip);
            return Ok(None);
        };
        if self.neighbours.len() >= CAPACITY && !self.neighbours.contains_key(&ip) {
            self.neighbours.retain(|_, (_, until)| now < *until);
            if self.neighbours.len() >= CAPACITY {
                self.neighbours.clear();
            }
        }
        self.neighbours.insert(ip, (mac, now.checked_add(REVALIDATE).unwrap_or(now)));
        Ok(Some(mac))
    }

    /// The source address for `dst`: the route's preferred source if it is
    /// ours (or we were given none), else our first address of `dst`'s
    /// family, link-local ones for a link-local `dst` and others otherwise
    /// preferred.
    fn source(&self, dst: IpAddr, prefsrc: Option<IpAddr>) -> Option<IpAddr> {
        if let Some(p) = prefsrc.map(|p| p.to_canonical())
            && (self.own.is_empty() || self.own.contains(&p))
        {
            return Some(p);
        }
        let scope = link_local(dst);
        let same_family = self.own.iter().copied().filter(|a| a.is_ipv4() == dst.is_ipv4());
        same_family.min_by_key(|a| link_local(*a) != scope)
    }
}

fn link_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests;
