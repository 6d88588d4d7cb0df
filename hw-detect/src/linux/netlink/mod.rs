//! Netlink probes: XDP features (the `netdev` generic-netlink family) and
//! egress shaping (rtnetlink qdiscs and classes).
//!
//! Both answer "what may this interface carry": the driver's XDP modes
//! decide whether AF_XDP can run, and a root `tbf` or `htb` caps the egress
//! rate below the link speed. Each probe opens its own socket in the
//! calling thread's network namespace, sends one dump request and decodes
//! the answer. The socket is netlink-sys; messages are netlink-packet-*;
//! what those crates leave raw (the netdev payload, tbf/htb options) is
//! decoded here by pure, bounds-checked functions that the unit tests and
//! the `netlink_answers` fuzz target feed with hand-built and random bytes.

mod conn;
mod netdev;
mod tc;

use std::collections::HashMap;
use std::io;

use netlink_packet_generic::GenlMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::TcMessage;
use netlink_sys::constants::{NETLINK_GENERIC, NETLINK_ROUTE};

use crate::{RootQdisc, XdpFeatures};
use conn::{Conn, Kind};
use netdev::{CtrlFamily, NETDEV_FAMILY_NAME, NetdevMsg, OP_DEV_GET, OP_GETFAMILY};
pub use netdev::{NetdevDev, decode_family_answer, decode_netdev_answer, xdp_features_from_bits};
pub use tc::{TC_H_ROOT, TcEntry, decode_tc_answer, htb_ceil_bps, htb_rate_bps, tbf_rate_bps};

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
    #[error("{op}: the kernel refused: {}{}", io::Error::from_raw_os_error(*errno), hint(*errno))]
    Kernel {
        /// The request.
        op: &'static str,
        /// The positive errno.
        errno: i32,
    },
    /// The interface list changed during the dump (`NLM_F_DUMP_INTR`).
    #[error("{op}: interfaces changed while the kernel answered; probe again")]
    Interrupted {
        /// The request.
        op: &'static str,
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
    fn kernel(op: &'static str, code: i32) -> Self {
        NetlinkError::Kernel { op, errno: code.checked_abs().unwrap_or(i32::MAX) }
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
/// rate, or for `htb` the sum of its top-level class ceilings (an
/// `RTM_GETTCLASS` dump of that interface); `None` for other kinds.
pub fn root_qdiscs() -> Result<HashMap<u32, RootQdisc>, NetlinkError> {
    let mut conn = Conn::open(NETLINK_ROUTE, "NETLINK_ROUTE")?;
    let qdiscs = tc_dump(&mut conn, OP_GETQDISC, RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()))?;
    let mut out = HashMap::new();
    for q in qdiscs.into_iter().filter(|q| q.parent == TC_H_ROOT) {
        let kind = q.kind.clone().ok_or_else(|| {
            NetlinkError::decode(OP_GETQDISC, format!("ifindex {}: root qdisc without TCA_KIND", q.ifindex))
        })?;
        let bad = |e: String| NetlinkError::decode(OP_GETQDISC, format!("ifindex {}: {kind}: {e}", q.ifindex));
        let rate_bps = match kind.as_str() {
            "tbf" => Some(tbf_rate_bps(q.options.as_deref().unwrap_or_default()).map_err(bad)?),
            "htb" => {
                let index = i32::try_from(q.ifindex).map_err(|_| bad("ifindex out of range".into()))?;
                let req = RouteNetlinkMessage::GetTrafficClass(TcMessage::with_index(index));
                let classes = tc_dump(&mut conn, OP_GETTCLASS, req)?;
                htb_rate_bps(q.handle, &classes).map_err(bad)?
            }
            _ => None,
        };
        if out.insert(q.ifindex, RootQdisc { kind, rate_bps }).is_some() {
            return Err(NetlinkError::decode(OP_GETQDISC, format!("ifindex {}: two root qdiscs", q.ifindex)));
        }
    }
    Ok(out)
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
