//! Route and neighbour answers built by hand, byte for byte as the kernel
//! lays them out (include/uapi/linux/rtnetlink.h, neighbour.h).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::NetlinkSerializable;

use super::*;
use crate::linux::netlink::testutil::{attr, nl_msg};

const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNEIGH: u16 = 28;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_PROBES: u16 = 4;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const SEQ: u32 = 7;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// `struct rtmsg` for a host route of `family` and `rtm_type`, main table.
fn rtmsg(family: u8, rtm_type: u8) -> Vec<u8> {
    let dst_len = if family == AF_INET { 32 } else { 128 };
    let mut h = vec![family, dst_len, 0, 0, 254, 0, 0, rtm_type];
    h.extend(0x200u32.to_ne_bytes()); // RTM_F_CLONED, as route get answers carry
    h
}

/// `struct ndmsg` for an entry on `ifindex` in `state`.
fn ndmsg(family: u8, ifindex: u32, state: u16) -> Vec<u8> {
    let mut h = vec![family, 0, 0, 0];
    h.extend(ifindex.to_ne_bytes());
    h.extend(state.to_ne_bytes());
    h.extend([0, 1]); // flags, ndm_type RTN_UNICAST
    h
}

/// The ACK that ends the answer to a get (NLMSG_ERROR with code `code`).
fn ack(code: i32) -> Vec<u8> {
    let mut p = code.to_ne_bytes().to_vec();
    p.extend(nl_msg(26, 0x5, SEQ, &[]));
    nl_msg(2, 0, SEQ, &p)
}

/// One answer message of `msg_type`, then the ACK.
fn answer(msg_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = nl_msg(msg_type, 0, SEQ, payload);
    d.extend(ack(0));
    d
}

fn route_answer(family: u8, rtm_type: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    answer(RTM_NEWROUTE, &[rtmsg(family, rtm_type), attrs.concat()].concat())
}

fn serialize(m: &RouteNetlinkMessage) -> Vec<u8> {
    let mut b = vec![0; m.buffer_len()];
    m.serialize(&mut b);
    b
}

#[test]
fn requests_are_a_header_and_the_destination() {
    let mut want = vec![AF_INET, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    want.extend(attr(RTA_DST, &[192, 0, 2, 9]));
    assert_eq!(serialize(&route_request(v4(192, 0, 2, 9))), want);

    let six: IpAddr = "2001:db8::9".parse().unwrap();
    let mut want = vec![AF_INET6, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    want.extend(attr(RTA_DST, &ip_bytes(six)));
    assert_eq!(serialize(&route_request(six)), want);

    // ndm_state, ndm_flags and ndm_type zero: neigh_valid_get_req refuses others.
    let mut want = vec![AF_INET, 0, 0, 0];
    want.extend(5u32.to_ne_bytes());
    want.extend([0, 0, 0, 0]);
    want.extend(attr(NDA_DST, &[10, 0, 0, 2]));
    assert_eq!(serialize(&neighbour_request(5, v4(10, 0, 0, 2))), want);
}

#[test]
fn unicast_local_and_gateway_routes() {
    let dst = v4(10, 1, 0, 2);
    let on_link = route_answer(
        AF_INET,
        1,
        &[
            attr(RTA_TABLE, &254u32.to_ne_bytes()),
            attr(RTA_DST, &ip_bytes(dst)),
            attr(RTA_OIF, &4u32.to_ne_bytes()),
            attr(RTA_PREFSRC, &[10, 1, 0, 1]),
        ],
    );
    let hop = decode_route_answer(dst, &on_link, SEQ).unwrap();
    assert_eq!(hop, RouteHop { ifindex: 4, gateway: None, prefsrc: Some(v4(10, 1, 0, 1)), kind: RouteKind::Unicast });

    let via = route_answer(
        AF_INET,
        1,
        &[attr(RTA_OIF, &9u32.to_ne_bytes()), attr(RTA_GATEWAY, &[10, 1, 0, 254]), attr(RTA_PREFSRC, &[10, 1, 0, 1])],
    );
    let hop = decode_route_answer(dst, &via, SEQ).unwrap();
    assert_eq!((hop.ifindex, hop.gateway), (9, Some(v4(10, 1, 0, 254))));

    let local = route_answer(AF_INET, 2, &[attr(RTA_OIF, &1u32.to_ne_bytes()), attr(RTA_PREFSRC, &[10, 1, 0, 1])]);
    let hop = decode_route_answer(dst, &local, SEQ).unwrap();
    assert_eq!((hop.ifindex, hop.kind), (1, RouteKind::Local));

    let gw6: Ipv6Addr = "fe80::1".parse().unwrap();
    let src6: IpAddr = "2001:db8::1".parse().unwrap();
    let v6 = route_answer(
        AF_INET6,
        1,
        &[attr(RTA_OIF, &3u32.to_ne_bytes()), attr(RTA_GATEWAY, &gw6.octets()), attr(RTA_PREFSRC, &ip_bytes(src6))],
    );
    let hop = decode_route_answer("2001:db8:5::1".parse().unwrap(), &v6, SEQ).unwrap();
    assert_eq!(hop, RouteHop { ifindex: 3, gateway: Some(gw6.into()), prefsrc: Some(src6), kind: RouteKind::Unicast });

    // An IPv4 route through an IPv6 gateway (RFC 8950): RTA_VIA, a struct
    // rtvia (family, then the address).
    let mut rtvia = u16::from(AF_INET6).to_ne_bytes().to_vec();
    rtvia.extend(gw6.octets());
    let via6 = route_answer(AF_INET, 1, &[attr(RTA_OIF, &3u32.to_ne_bytes()), attr(RTA_VIA, &rtvia)]);
    assert_eq!(decode_route_answer(dst, &via6, SEQ).unwrap().gateway, Some(gw6.into()));

    // Broadcast (RTN_BROADCAST 3) keeps its number.
    let brd = route_answer(AF_INET, 3, &[attr(RTA_OIF, &4u32.to_ne_bytes())]);
    assert_eq!(decode_route_answer(dst, &brd, SEQ).unwrap().kind, RouteKind::Other(3));
    assert!(!RouteKind::Other(3).rejects() && !RouteKind::Unicast.rejects() && RouteKind::Blackhole.rejects());
}

#[test]
fn reject_routes_come_back_as_errnos() {
    let dst = v4(10, 99, 0, 1);
    for (errno, kind) in [
        (libc::EHOSTUNREACH, RouteKind::Unreachable),
        (libc::EACCES, RouteKind::Prohibit),
        (libc::EINVAL, RouteKind::Blackhole),
    ] {
        let hop = decode_route_answer(dst, &ack(-errno), SEQ).unwrap();
        assert_eq!(hop, RouteHop { ifindex: 0, gateway: None, prefsrc: None, kind }, "errno {errno}");
    }
    // An answer that says so itself decodes the same way.
    let unreachable = route_answer(AF_INET, 7, &[]);
    assert_eq!(decode_route_answer(dst, &unreachable, SEQ).unwrap().kind, RouteKind::Unreachable);

    let e = decode_route_answer(dst, &ack(-libc::ENETUNREACH), SEQ).unwrap_err();
    assert!(matches!(e, NetlinkError::NoRoute { dst: d } if d == dst), "{e:?}");
    assert!(e.to_string().starts_with("no route to 10.99.0.1 in this network namespace"), "{e}");
    let mapped: IpAddr = "::ffff:10.99.0.1".parse().unwrap();
    let e = decode_route_answer(mapped, &ack(-libc::ENETUNREACH), SEQ).unwrap_err();
    assert!(matches!(e, NetlinkError::NoRoute { dst: d } if d == dst), "{e:?}");

    let e = decode_route_answer(dst, &ack(-libc::EPERM), SEQ).unwrap_err();
    assert!(matches!(e, NetlinkError::Kernel { errno: libc::EPERM, .. }), "{e:?}");
}

#[test]
fn malformed_route_answers_are_errors() {
    let dst = v4(10, 1, 0, 2);
    // Unicast without RTA_OIF.
    let e = decode_route_answer(dst, &route_answer(AF_INET, 1, &[]), SEQ).unwrap_err();
    assert!(e.to_string().contains("Unicast route without RTA_OIF"), "{e}");
    // Only the ACK, or two answers.
    assert!(decode_route_answer(dst, &ack(0), SEQ).unwrap_err().to_string().contains("0 messages"));
    let one = nl_msg(RTM_NEWROUTE, 0, SEQ, &[rtmsg(AF_INET, 1), attr(RTA_OIF, &1u32.to_ne_bytes())].concat());
    let two = [one.clone(), one, ack(0)].concat();
    assert!(decode_route_answer(dst, &two, SEQ).unwrap_err().to_string().contains("2 messages"));
    // A neighbour where a route was asked for.
    let e = decode_route_answer(dst, &answer(RTM_NEWNEIGH, &ndmsg(AF_INET, 4, 2)), SEQ).unwrap_err();
    assert!(e.to_string().contains("unexpected message type 28"), "{e}");
    // A 2-byte gateway.
    let short = route_answer(AF_INET, 1, &[attr(RTA_OIF, &1u32.to_ne_bytes()), attr(RTA_GATEWAY, &[10, 1])]);
    assert!(matches!(decode_route_answer(dst, &short, SEQ), Err(NetlinkError::Decode { .. })));
}

#[test]
fn neighbour_answers() {
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let entry =
        |state: u16, attrs: &[Vec<u8>]| answer(RTM_NEWNEIGH, &[ndmsg(AF_INET, 4, state), attrs.concat()].concat());
    let with_mac = |state| entry(state, &[attr(NDA_DST, &[10, 0, 0, 2]), attr(NDA_LLADDR, &mac)]);

    let n = decode_neighbour_answer(&with_mac(0x02), SEQ).unwrap().unwrap();
    assert_eq!(n, Neighbour { mac: Some(mac), state: NeighbourState::Reachable });
    assert!(n.usable());

    use NeighbourState as S;
    for (bits, state, usable) in [
        (0x00, S::None, false),
        (0x01, S::Incomplete, false),
        (0x02, S::Reachable, true),
        (0x04, S::Stale, true),
        (0x08, S::Delay, true),
        (0x10, S::Probe, true),
        (0x20, S::Failed, false),
        (0x40, S::NoArp, true),
        (0x80, S::Permanent, true),
        (0x06, S::Other(0x06), false),
    ] {
        let n = decode_neighbour_answer(&with_mac(bits), SEQ).unwrap().unwrap();
        assert_eq!((n.state, n.usable()), (state, usable), "state {bits:#x}");
    }

    // No address (incomplete; a noarp entry on a device without one), or
    // one that is not Ethernet (InfiniBand's 20 bytes): never usable.
    let n = decode_neighbour_answer(&entry(0x01, &[attr(NDA_PROBES, &3u32.to_ne_bytes())]), SEQ).unwrap().unwrap();
    assert_eq!(n, Neighbour { mac: None, state: S::Incomplete });
    let n = decode_neighbour_answer(&entry(0x40, &[]), SEQ).unwrap().unwrap();
    assert!(!n.usable() && n.state == S::NoArp);
    let n = decode_neighbour_answer(&entry(0x02, &[attr(NDA_LLADDR, &[7; 20])]), SEQ).unwrap().unwrap();
    assert_eq!((n.mac, n.usable()), (None, false));

    // No entry: the kernel answers ENOENT.
    assert_eq!(decode_neighbour_answer(&ack(-libc::ENOENT), SEQ).unwrap(), None);
    let e = decode_neighbour_answer(&ack(-libc::ENODEV), SEQ).unwrap_err();
    assert!(matches!(e, NetlinkError::Kernel { errno: libc::ENODEV, .. }), "{e:?}");
    let e = decode_neighbour_answer(&route_answer(AF_INET, 1, &[attr(RTA_OIF, &[1, 0, 0, 0])]), SEQ).unwrap_err();
    assert!(e.to_string().contains("unexpected message type 24"), "{e}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let dst = v4(10, 1, 0, 2);
    let truncated_header = nl_msg(RTM_NEWROUTE, 0, SEQ, &[AF_INET, 32, 0]);
    let bad_attr = nl_msg(RTM_NEWROUTE, 0, SEQ, &[rtmsg(AF_INET, 1), vec![200, 0, 4, 0]].concat());
    for d in [&[0xffu8; 20][..], &[1, 2, 3], &[0u8; 16], &truncated_header, &bad_attr] {
        assert!(decode_route_answer(dst, d, SEQ).is_err(), "{d:?}");
        assert!(decode_neighbour_answer(d, SEQ).is_err(), "{d:?}");
    }
}
