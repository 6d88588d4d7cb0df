//! Netlink probes: XDP features (the `netdev` generic-netlink family),
//! egress shaping (rtnetlink qdiscs and classes), and next hops (rtnetlink
//! routes and neighbours: [`route_get`], [`neighbour_get`]); and, for the
//! AF_XDP backend, an interface's link facts and XDP programs, which it
//! also sets ([`Rtnetlink::link_set_xdp`]).
//!
//! Both answer "what may this interface carry": the driver's XDP modes
//! decide whether AF_XDP can run, and a root `tbf` or `htb` caps the egress
//! rate below the link speed. Each probe opens its own socket in the
//! calling thread's network namespace, sends one dump request and decodes
//! the answer; [`Rtnetlink`] keeps one open. A refusal carries the errno
//! and the kernel's reason when it gave one (extended ACK, Linux 4.12+).
//! The socket is netlink-sys; messages are netlink-packet-*;
//! what those crates leave raw (the netdev payload, tbf/htb options) is
//! decoded here by pure, bounds-checked functions that the unit tests and
//! the `netlink_answers` fuzz target feed with hand-built and random bytes.

mod conn;
mod link;
mod netdev;
mod route;
mod tc;

use std::collections::HashMap;
use std::io;

use netlink_packet_generic::GenlMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::TcMessage;
use netlink_sys::constants::{NETLINK_GENERIC, NETLINK_ROUTE};

use crate::{Known, RootQdisc, XdpFeatures};
pub use conn::Rtnetlink;
use conn::{Conn, Kind};
pub use link::{LinkFacts, XdpProgs, facts_of, link_get};
use netdev::{CtrlFamily, NETDEV_FAMILY_NAME, NetdevMsg, OP_DEV_GET, OP_GETFAMILY};
pub use netdev::{NetdevDev, decode_family_answer, decode_netdev_answer, xdp_features_from_bits};
pub use route::{
    Neighbour, NeighbourState, RouteHop, RouteKind, decode_neighbour_answer, decode_route_answer, neighbour_get,
    route_get,
};
pub use tc::{TC_H_ROOT, TcEntry, decode_tc_answer, htb_class_rate_bps, htb_root_rate_bps, tbf_rate_bps};

/// Why a netlink probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// The kernel has no `netdev` generic-netlink family (before Linux 6.3).
    #[error("kernel has no netdev netlink family (needs Linux 6.3+)")]
    NoNetdevFamily,
    /// The socket could not be opened.
    #[error(
        "opening a {protocol} netlink socket failed: {source} (a seccomp filter or container sandbox may block netlink)"
    )]
    Socket {
        /// `NETLINK_ROUTE` or `NETLINK_GENERIC`.
        protocol: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The request could not be sent.
    #[error("{op}: sending the request failed: {source}")]
    Send {
        /// The request.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The answer could not be received (a timeout shows as `EAGAIN`).
    #[error("{op}: receiving the kernel's answer on the {protocol} socket failed: {source}")]
    Recv {
        /// The request.
        op: &'static str,
        /// `NETLINK_ROUTE` or `NETLINK_GENERIC`.
        protocol: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel answered with an error code.
    #[error(
        "{op}: the kernel refused: {}{}{}",
        io::Error::from_raw_os_error(*errno),
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
        hint(*errno)
    )]
    Kernel {
        /// The request.
        op: &'static str,
        /// The positive errno.
        errno: i32,
        /// Why, in the kernel's words (`NLMSGERR_ATTR_MSG` of its extended
        /// ACK), when it said ("Underlying driver does not support XDP in
        /// native mode").
        message: Option<String>,
    },
    /// The interface list changed during the dump (`NLM_F_DUMP_INTR`).
    #[error("{op}: interfaces changed while the kernel answered; probe again")]
    Interrupted {
        /// The request.
        op: &'static str,
    },
    /// The kernel has no route to the destination (`ENETUNREACH`).
    #[error("no route to {dst} in this network namespace (see `ip route get {dst}`); add a route or a default route")]
    NoRoute {
        /// The destination, as looked up (IPv4-mapped addresses as IPv4).
        dst: std::net::IpAddr,
    },
    /// The answer could not be decoded.
    #[error("{op}: malformed answer from the kernel: {detail}")]
    Decode {
        /// The request.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl NetlinkError {
    fn decode(op: &'static str, detail: impl Into<String>) -> Self {
        NetlinkError::Decode { op, detail: detail.into() }
    }

    /// The kernel sends `-errno`; keep it positive.
    fn kernel(op: &'static str, code: i32, message: Option<String>) -> Self {
        NetlinkError::Kernel { op, errno: code.checked_abs().unwrap_or(i32::MAX), message }
    }

    /// The errno behind the error: the kernel's refusal
    /// ([`Kernel`](Self::Kernel)), or the failed socket call's
    /// ([`Socket`](Self::Socket), [`Send`](Self::Send), [`Recv`](Self::Recv));
    /// `None` for the others.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::Socket { source, .. }
            | NetlinkError::Send { source, .. }
            | NetlinkError::Recv { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// What the kernel said about a refusal (its extended ACK), if anything.
    pub fn kernel_message(&self) -> Option<&str> {
        match self {
            NetlinkError::Kernel { message, .. } => message.as_deref(),
            _ => None,
        }
    }
}

/// What to do about an errno the kernel returned.
fn hint(errno: i32) -> &'static str {
    match errno {
        libc::EPERM | libc::EACCES => " (needs CAP_NET_ADMIN in this network namespace; run as root)",
        libc::EOPNOTSUPP => " (this kernel does not support the request)",
        _ => "",
    }
}

/// XDP features of every interface in this thread's network namespace, by
/// ifindex, from a `NETDEV_CMD_DEV_GET` dump of the `netdev` generic-netlink
/// family. An interface whose answer has no `NETDEV_A_DEV_XDP_FEATURES` is
/// left out. [`NetlinkError::NoNetdevFamily`] on kernels before 6.3.
pub fn xdp_features() -> Result<HashMap<u32, XdpFeatures>, NetlinkError> {
    let mut conn = Conn::open(NETLINK_GENERIC, "NETLINK_GENERIC")?;

    let req = GenlMessage::from_payload(CtrlFamily { name: Some(NETDEV_FAMILY_NAME.into()), family_id: None });
    let answer = conn.request(OP_GETFAMILY, req, Kind::Get).map_err(family_error)?;
    let family_id = answer
        .into_iter()
        .find_map(|m| m.payload.family_id)
        .ok_or_else(|| NetlinkError::decode(OP_GETFAMILY, "no CTRL_ATTR_FAMILY_ID"))?;

    let mut req = GenlMessage::from_payload(NetdevMsg::default());
    req.set_resolved_family_id(family_id);
    let mut out = HashMap::new();
    for m in conn.request(OP_DEV_GET, req, Kind::Dump)? {
        let dev = m.payload.dev;
        let ifindex = dev.ifindex.ok_or_else(|| NetlinkError::decode(OP_DEV_GET, "an answer has no ifindex"))?;
        if let Some(bits) = dev.xdp_features {
            let features = XdpFeatures { zc_max_segs: dev.xdp_zc_max_segs, ..xdp_features_from_bits(bits) };
            out.insert(ifindex, features);
        }
    }
    Ok(out)
}

/// The controller answers `ENOENT` for a family the kernel does not have.
fn family_error(e: NetlinkError) -> NetlinkError {
    match e {
        NetlinkError::Kernel { errno: libc::ENOENT, .. } => NetlinkError::NoNetdevFamily,
        e => e,
    }
}

const OP_GETQDISC: &str = "RTM_GETQDISC dump";
const OP_GETTCLASS: &str = "RTM_GETTCLASS dump";

/// Sends a tc dump request and decodes every answer.
fn tc_dump(conn: &mut Conn, op: &'static str, msg: RouteNetlinkMessage) -> Result<Vec<TcEntry>, NetlinkError> {
    conn.request(op, msg, Kind::Dump)?.into_iter().map(|m| tc::entry_of(op, m)).collect()
}

/// The root egress qdisc of every interface in this thread's network
/// namespace, by ifindex, from an `RTM_GETQDISC` dump. The rate is a `tbf`'s
/// rate, or for `htb` the sum of the rates of the classes directly under the
/// root (an `RTM_GETTCLASS` dump of that interface; see
/// [`htb_root_rate_bps`]); `None` for other kinds.
///
/// `Err` only when the qdisc dump itself fails (socket, send or receive, a
/// message that cannot be decoded). A problem with one interface's qdisc
/// (options that do not decode, a failed or malformed class dump, two root
/// qdiscs) makes that interface's entry [`Known::Unknown`] and leaves the
/// others as read.
pub fn root_qdiscs() -> Result<HashMap<u32, Known<RootQdisc>>, NetlinkError> {
    let mut conn = Conn::open(NETLINK_ROUTE, "NETLINK_ROUTE")?;
    let qdiscs = tc_dump(&mut conn, OP_GETQDISC, RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()))?;
    Ok(assemble_root_qdiscs(qdiscs, |ifindex| {
        let index = i32::try_from(ifindex).map_err(|_| format!("ifindex {ifindex} out of range for a tcmsg"))?;
        let req = RouteNetlinkMessage::GetTrafficClass(TcMessage::with_index(index));
        tc_dump(&mut conn, OP_GETTCLASS, req).map_err(|e| e.to_string())
    }))
}

/// The root qdisc of each interface among the entries of a qdisc dump, one
/// interface at a time: what goes wrong for one is that one's
/// [`Known::Unknown`]. `classes(ifindex)` dumps the classes of an
/// interface whose root is `htb`.
fn assemble_root_qdiscs(
    qdiscs: Vec<TcEntry>,
    mut classes: impl FnMut(u32) -> Result<Vec<TcEntry>, String>,
) -> HashMap<u32, Known<RootQdisc>> {
    let mut roots: HashMap<u32, Vec<TcEntry>> = HashMap::new();
    for q in qdiscs.into_iter().filter(|q| q.parent == TC_H_ROOT) {
        roots.entry(q.ifindex).or_default().push(q);
    }
    roots
        .into_iter()
        .map(|(ifindex, qs)| {
            let known = match qs.as_slice() {
                [q] => root_qdisc(q, &mut classes).into(),
                _ => {
                    let kinds: Vec<&str> = qs.iter().map(|q| q.kind.as_deref().unwrap_or("?")).collect();
                    Known::Unknown(format!("{OP_GETQDISC}: ifindex {ifindex}: two root qdiscs ({})", kinds.join(", ")))
                }
            };
            (ifindex, known)
        })
        .collect()
}

/// One interface's root qdisc and the rate it shapes to.
fn root_qdisc(q: &TcEntry, classes: &mut impl FnMut(u32) -> Result<Vec<TcEntry>, String>) -> Result<RootQdisc, String> {
    let at = format!("{OP_GETQDISC}: ifindex {}", q.ifindex);
    let kind = q.kind.clone().ok_or_else(|| format!("{at}: root qdisc without TCA_KIND"))?;
    let rate_bps = match kind.as_str() {
        "tbf" => Some(tbf_rate_bps(q.options.as_deref().unwrap_or_default()).map_err(|e| format!("{at}: tbf: {e}"))?),
        "htb" => {
            let classes = classes(q.ifindex).map_err(|e| format!("ifindex {}: htb classes: {e}", q.ifindex))?;
            htb_root_rate_bps(q.handle, &classes).map_err(|e| format!("{OP_GETTCLASS}: ifindex {}: {e}", q.ifindex))?
        }
        _ => None,
    };
    Ok(RootQdisc { kind, rate_bps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testutil::attr;

    /// `TCA_TBF_PARMS` or `TCA_HTB_PARMS` (both attribute 1) holding a
    /// struct whose first `tc_ratespec` has rate `rate` (bytes/s); `len` is
    /// the struct's size (36 for tc_tbf_qopt, 44 for tc_htb_opt).
    fn parms(rate: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[8..12].copy_from_slice(&rate.to_ne_bytes());
        attr(1, &p)
    }

    fn entry(ifindex: u32, handle: u32, parent: u32, kind: Option<&str>, options: Option<Vec<u8>>) -> TcEntry {
        TcEntry { ifindex, handle, parent, kind: kind.map(String::from), options }
    }

    fn known(kind: &str, rate_bps: Option<u64>) -> Known<RootQdisc> {
        Known::Known(RootQdisc { kind: kind.into(), rate_bps })
    }

    fn unknown_containing(got: Option<&Known<RootQdisc>>, text: &str) {
        match got {
            Some(Known::Unknown(why)) => assert!(why.contains(text), "{why:?} lacks {text:?}"),
            other => panic!("expected Unknown containing {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn one_bad_qdisc_leaves_the_others_known() {
        let qdiscs = vec![
            entry(4, 0x8001_0000, TC_H_ROOT, Some("tbf"), Some(parms(62_500_000, 36))),
            entry(5, 0x8002_0000, TC_H_ROOT, Some("tbf"), Some(parms(62_500_000, 20))), // short tc_tbf_qopt
            entry(6, 0x8003_0000, TC_H_ROOT, Some("tbf"), None),
            entry(7, 0x0001_0000, TC_H_ROOT, Some("htb"), None),
            entry(8, 0x0001_0000, TC_H_ROOT, Some("htb"), None), // its class dump fails
            entry(9, 0x0001_0000, TC_H_ROOT, Some("htb"), None), // a class without options
            entry(10, 0, TC_H_ROOT, Some("noqueue"), None),
            entry(11, 0x8004_0000, TC_H_ROOT, Some("tbf"), Some(parms(1, 36))),
            entry(11, 0x8005_0000, TC_H_ROOT, Some("fq"), None),
            entry(12, 0x8006_0000, TC_H_ROOT, None, None),
            entry(4, 0x0010_0000, 0x8001_0001, Some("fq_codel"), None), // a child qdisc: not a root
        ];
        let mut asked = Vec::new();
        let got = assemble_root_qdiscs(qdiscs, |ifindex| {
            asked.push(ifindex);
            match ifindex {
                // rate 100mbit ceil 300mbit, under the root.
                7 => Ok(vec![entry(7, 0x0001_0001, TC_H_ROOT, Some("htb"), Some(parms(12_500_000, 44)))]),
                8 => Err("RTM_GETTCLASS dump: receiving failed".into()),
                9 => Ok(vec![entry(9, 0x0001_0001, TC_H_ROOT, Some("htb"), None)]),
                _ => panic!("classes of ifindex {ifindex} asked for"),
            }
        });
        asked.sort_unstable();
        assert_eq!(asked, [7, 8, 9]);
        assert_eq!(got.len(), 9, "{got:?}");

        assert_eq!(got.get(&4), Some(&known("tbf", Some(500_000_000))));
        unknown_containing(got.get(&5), "RTM_GETQDISC dump: ifindex 5: tbf: parameters of 20 bytes, expected 36");
        unknown_containing(got.get(&6), "ifindex 6: tbf: no TCA_TBF_PARMS");
        assert_eq!(got.get(&7), Some(&known("htb", Some(100_000_000))));
        unknown_containing(got.get(&8), "ifindex 8: htb classes: RTM_GETTCLASS dump: receiving failed");
        unknown_containing(got.get(&9), "ifindex 9: class 10001: no TCA_OPTIONS");
        assert_eq!(got.get(&10), Some(&known("noqueue", None)));
        unknown_containing(got.get(&11), "ifindex 11: two root qdiscs (tbf, fq)");
        unknown_containing(got.get(&12), "ifindex 12: root qdisc without TCA_KIND");
    }

    #[test]
    fn no_qdiscs_no_entries() {
        assert!(assemble_root_qdiscs(Vec::new(), |_| unreachable!("no htb root")).is_empty());
    }
}

#[cfg(test)]
mod testutil {
    //! Builders for hand-made netlink bytes.

    /// One attribute (`struct nlattr`), padded to 4 bytes.
    pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend(u16::try_from(4 + value.len()).unwrap().to_ne_bytes());
        a.extend(kind.to_ne_bytes());
        a.extend(value);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    /// One netlink message (`struct nlmsghdr` + payload), padded to 4 bytes.
    pub fn nl_msg(msg_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(u32::try_from(16 + payload.len()).unwrap().to_ne_bytes());
        m.extend(msg_type.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(payload);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    /// A generic-netlink message: `genlmsghdr` (cmd, version 1) + attributes.
    pub fn genl_msg(family: u16, seq: u32, cmd: u8, attrs: &[u8]) -> Vec<u8> {
        let mut p = vec![cmd, 1, 0, 0];
        p.extend(attrs);
        nl_msg(family, 0x2, seq, &p)
    }
}
