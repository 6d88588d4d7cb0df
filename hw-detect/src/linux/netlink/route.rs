//! Next hops from rtnetlink: the route the kernel would take to one
//! destination (`RTM_GETROUTE`, what `ip route get DST` asks) and the
//! neighbour-table entry of one address (`RTM_GETNEIGH`).
//!
//! A backend that writes whole Ethernet frames (AF_XDP) needs both: which
//! interface and gateway a datagram leaves by, the source address the kernel
//! would choose, and the next hop's MAC (its own MAC comes from
//! [`link_get`](super::link_get)). Each is one get request, not a dump, so a
//! lookup costs one round trip whatever the size of the tables.
//! [`Rtnetlink`] keeps one socket, in the network namespace of the thread
//! that opened it, for repeated lookups; the free functions open one per
//! call.
//!
//! Message types and framing are netlink-packet-route's; turning a message
//! into a [`RouteHop`] or a [`Neighbour`] is pure and bounds-checked, so
//! [`decode_route_answer`] and [`decode_neighbour_answer`] can be fed
//! hand-built and random bytes.

use std::net::IpAddr;

use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::NetlinkError;
use super::conn::{Kind, Rtnetlink, parse_datagram};

const OP_GETROUTE: &str = "RTM_GETROUTE";
const OP_GETNEIGH: &str = "RTM_GETNEIGH";

/// What a route does with a packet (`rtm_type`, `RTN_*` in
/// include/uapi/linux/rtnetlink.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `RTN_UNICAST`: leaves by [`RouteHop::ifindex`], through the gateway if any.
    Unicast,
    /// `RTN_LOCAL`: an address of this host; delivered by loopback.
    Local,
    /// `RTN_UNREACHABLE`: refused with "no route to host".
    Unreachable,
    /// `RTN_BLACKHOLE`: silently dropped.
    Blackhole,
    /// `RTN_PROHIBIT`: refused as administratively prohibited.
    Prohibit,
    /// Any other type (broadcast, multicast, anycast, ...), by number.
    Other(u8),
}

impl RouteKind {
    /// True for the reject routes: unreachable, blackhole and prohibit.
    pub fn rejects(self) -> bool {
        matches!(self, RouteKind::Unreachable | RouteKind::Blackhole | RouteKind::Prohibit)
    }
}

impl From<RouteType> for RouteKind {
    fn from(t: RouteType) -> Self {
        match t {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Prohibit => RouteKind::Prohibit,
            other => RouteKind::Other(other.into()),
        }
    }
}

/// The kernel's route to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteHop {
    /// The interface the packet leaves by (`RTA_OIF`); loopback for a local
    /// route, 0 for a reject route (which names none).
    pub ifindex: u32,
    /// The gateway (`RTA_GATEWAY`, or `RTA_VIA` for an IPv4 route through an
    /// IPv6 gateway); `None` when the destination is on the link.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would choose (`RTA_PREFSRC`).
    pub prefsrc: Option<IpAddr>,
    /// What the route does with the packet.
    pub kind: RouteKind,
}

/// The state of a neighbour-table entry (`NUD_*`, include/uapi/linux/neighbour.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighbourState {
    /// `NUD_NONE`: the entry exists, resolution has not started.
    None,
    /// `NUD_INCOMPLETE`: resolution (ARP/NDP) in progress, no address yet.
    Incomplete,
    /// `NUD_REACHABLE`: confirmed recently.
    Reachable,
    /// `NUD_STALE`: address known, not confirmed lately.
    Stale,
    /// `NUD_DELAY`: stale and used; confirmation is awaited before probing.
    Delay,
    /// `NUD_PROBE`: being re-confirmed by unicast probes.
    Probe,
    /// `NUD_FAILED`: resolution failed.
    Failed,
    /// `NUD_NOARP`: no resolution needed (the device does not do ARP, or a multicast address).
    NoArp,
    /// `NUD_PERMANENT`: set by an administrator.
    Permanent,
    /// A value that is not exactly one known state, as sent.
    Other(u16),
}

impl NeighbourState {
    /// Decodes `ndm_state`.
    pub fn from_nud(state: u16) -> Self {
        match state {
            0x00 => NeighbourState::None,
            0x01 => NeighbourState::Incomplete,
            0x02 => NeighbourState::Reachable,
            0x04 => NeighbourState::Stale,
            0x08 => NeighbourState::Delay,
            0x10 => NeighbourState::Probe,
            0x20 => NeighbourState::Failed,
            0x40 => NeighbourState::NoArp,
            0x80 => NeighbourState::Permanent,
            other => NeighbourState::Other(other),
        }
    }
}

/// One neighbour-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// The link-layer address (`NDA_LLADDR`); `None` when the entry has none
    /// yet or it is not 6 bytes long (not Ethernet).
    pub mac: Option<[u8; 6]>,
    /// The entry's state.
    pub state: NeighbourState,
}

impl Neighbour {
    /// True when frames may be sent to [`mac`](Self::mac): it is present and
    /// the kernel itself would use it (`NUD_VALID` minus the states that
    /// carry no address). Stale, delay and probe count: the kernel sends
    /// to such an address while it re-confirms it.
    pub fn usable(&self) -> bool {
        use NeighbourState as S;
        self.mac.is_some()
            && matches!(self.state, S::Reachable | S::Stale | S::Delay | S::Probe | S::Permanent | S::NoArp)
    }
}

impl Rtnetlink {
    /// The route to `dst`: see [`route_get`].
    pub fn route_get(&mut self, dst: IpAddr) -> Result<RouteHop, NetlinkError> {
        let dst = dst.to_canonical();
        match self.conn.request(OP_GETROUTE, route_request(dst), Kind::Get) {
            Ok(messages) => route_of(one(OP_GETROUTE, messages)?),
            Err(e) => route_error(dst, e),
        }
    }

    /// The neighbour entry of `ip` on `ifindex`: see [`neighbour_get`].
    pub fn neighbour_get(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<Neighbour>, NetlinkError> {
        match self.conn.request(OP_GETNEIGH, neighbour_request(ifindex, ip.to_canonical()), Kind::Get) {
            Ok(messages) => neighbour_of(one(OP_GETNEIGH, messages)?).map(Some),
            Err(NetlinkError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The route the kernel would take to `dst` from this thread's network
/// namespace (`ip route get DST`). An IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`) is looked up as the IPv4 address.
///
/// A reject route is `Ok` with its [`RouteKind`] and ifindex 0: the kernel
/// answers those with an error, which is mapped back to the route type
/// (`fib_props` in net/ipv4/fib_semantics.c, `ip6_route_info_create` in
/// net/ipv6/route.c): `EHOSTUNREACH` unreachable, `EACCES` prohibit,
/// `EINVAL` blackhole (the request itself is well-formed, so `EINVAL` can
/// only be the route). No route at all is [`NetlinkError::NoRoute`].
pub fn route_get(dst: IpAddr) -> Result<RouteHop, NetlinkError> {
    Rtnetlink::open()?.route_get(dst)
}

/// The neighbour-table entry (ARP for IPv4, NDP for IPv6) of `ip` on
/// interface `ifindex`, `None` if there is none. A single `RTM_GETNEIGH`
/// get (Linux 4.20+), not a dump. IPv4-mapped addresses are looked up as
/// IPv4.
pub fn neighbour_get(ifindex: u32, ip: IpAddr) -> Result<Option<Neighbour>, NetlinkError> {
    Rtnetlink::open()?.neighbour_get(ifindex, ip)
}

/// Decodes one datagram answering an `RTM_GETROUTE` get for `dst` (our
/// request had sequence number `seq`), as [`route_get`] does. Pure, so
/// tests and fuzzers can feed it any bytes.
pub fn decode_route_answer(dst: IpAddr, datagram: &[u8], seq: u32) -> Result<RouteHop, NetlinkError> {
    match parse_datagram::<RouteNetlinkMessage>(OP_GETROUTE, datagram, seq) {
        Ok(d) => route_of(one(OP_GETROUTE, d.messages)?),
        Err(e) => route_error(dst.to_canonical(), e),
    }
}

/// Decodes one datagram answering an `RTM_GETNEIGH` get, as
/// [`neighbour_get`] does. Pure.
pub fn decode_neighbour_answer(datagram: &[u8], seq: u32) -> Result<Option<Neighbour>, NetlinkError> {
    match parse_datagram::<RouteNetlinkMessage>(OP_GETNEIGH, datagram, seq) {
        Ok(d) => neighbour_of(one(OP_GETNEIGH, d.messages)?).map(Some),
        Err(NetlinkError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `RTM_GETROUTE` for one host address: `rtmsg` with the family and a full
/// prefix length, and `RTA_DST`.
fn route_request(dst: IpAddr) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    (m.header.address_family, m.header.destination_prefix_length) = match dst {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    m.attributes.push(RouteAttribute::Destination(dst.into()));
    RouteNetlinkMessage::GetRoute(m)
}

/// `RTM_GETNEIGH` for one entry: `ndmsg` with the family and ifindex (state,
/// flags and type zero, as `neigh_valid_get_req` in net/core/neighbour.c
/// demands), and `NDA_DST`, the only attribute it accepts.
fn neighbour_request(ifindex: u32, ip: IpAddr) -> RouteNetlinkMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.ifindex = ifindex;
    m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    RouteNetlinkMessage::GetNeighbour(m)
}

/// The single message of a get's answer.
fn one(op: &'static str, messages: Vec<RouteNetlinkMessage>) -> Result<RouteNetlinkMessage, NetlinkError> {
    let n = messages.len();
    let mut it = messages.into_iter();
    match (it.next(), n) {
        (Some(m), 1) => Ok(m),
        _ => Err(NetlinkError::decode(op, format!("{n} messages in the answer to a get, expected 1"))),
    }
}

/// A kernel error to a route get: a reject route's errno is that route, no
/// route is [`NetlinkError::NoRoute`], the rest stays an error.
fn route_error(dst: IpAddr, e: NetlinkError) -> Result<RouteHop, NetlinkError> {
    let kind = match e {
        NetlinkError::Kernel { errno: libc::EHOSTUNREACH, .. } => RouteKind::Unreachable,
        NetlinkError::Kernel { errno: libc::EACCES, .. } => RouteKind::Prohibit,
        NetlinkError::Kernel { errno: libc::EINVAL, .. } => RouteKind::Blackhole,
        NetlinkError::Kernel { errno: libc::ENETUNREACH, .. } => return Err(NetlinkError::NoRoute { dst }),
        e => return Err(e),
    };
    Ok(RouteHop { ifindex: 0, gateway: None, prefsrc: None, kind })
}

/// An IP address from a route attribute; `None` for MPLS and unknown families.
fn ip_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(v4.into()),
        RouteAddress::Inet6(v6) => Some(v6.into()),
        _ => None,
    }
}

/// The [`RouteHop`] of an `RTM_NEWROUTE` answer.
fn route_of(msg: RouteNetlinkMessage) -> Result<RouteHop, NetlinkError> {
    let route = match msg {
        RouteNetlinkMessage::NewRoute(r) => r,
        other => return Err(unexpected(OP_GETROUTE, &other)),
    };
    let kind = RouteKind::from(route.header.kind);
    let (mut ifindex, mut gateway, mut prefsrc) = (None, None, None);
    for attr in route.attributes {
        match attr {
            RouteAttribute::Oif(i) => ifindex = Some(i),
            RouteAttribute::Gateway(a) => gateway = ip_of(a),
            RouteAttribute::Via(RouteVia::Inet(v4)) => gateway = Some(v4.into()),
            RouteAttribute::Via(RouteVia::Inet6(v6)) => gateway = Some(v6.into()),
            RouteAttribute::PrefSource(a) => prefsrc = ip_of(a),
            _ => {}
        }
    }
    let ifindex = match (ifindex, kind) {
        (Some(i), _) => i,
        (None, RouteKind::Unicast | RouteKind::Local) => {
            return Err(NetlinkError::decode(OP_GETROUTE, format!("a {kind:?} route without RTA_OIF")));
        }
        (None, _) => 0,
    };
    Ok(RouteHop { ifindex, gateway, prefsrc, kind })
}

/// The [`Neighbour`] of an `RTM_NEWNEIGH` answer.
fn neighbour_of(msg: RouteNetlinkMessage) -> Result<Neighbour, NetlinkError> {
    let n = match msg {
        RouteNetlinkMessage::NewNeighbour(n) => n,
        other => return Err(unexpected(OP_GETNEIGH, &other)),
    };
    let mac = n.attributes.into_iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(ll) => Some(<[u8; 6]>::try_from(ll.as_slice()).ok()),
        _ => None,
    });
    Ok(Neighbour { mac: mac.flatten(), state: NeighbourState::from_nud(n.header.state.into()) })
}

fn unexpected(op: &'static str, msg: &RouteNetlinkMessage) -> NetlinkError {
    NetlinkError::decode(op, format!("unexpected message type {}", msg.message_type()))
}

#[cfg(test)]
mod tests;
