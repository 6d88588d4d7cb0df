//! One request and its answer over a netlink socket: the socket itself
//! (netlink-sys), [`Rtnetlink`], a route socket kept open, and
//! [`parse_datagram`], the pure step that splits one received datagram into
//! messages and turns kernel errors, with the reason the kernel gave
//! (extended ACK), into [`NetlinkError`]s.

use std::fmt::Debug;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::constants::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use super::NetlinkError;

/// Receive buffer size. The kernel fills dump datagrams up to 32 KiB
/// (`netlink_dump` in net/netlink/af_netlink.c); twice that leaves room, and
/// `MSG_TRUNC` tells us if a datagram was ever larger.
const RECV_BUF: usize = 64 * 1024;

/// How long to wait for each datagram of an answer. The kernel answers at
/// once; this only keeps a wedged socket from hanging the probe.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// `NLMSGERR_ATTR_MSG` (include/uapi/linux/netlink.h): the error string.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;

/// Whether the request asks for one object or a dump of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `NLM_F_REQUEST | NLM_F_ACK`: one answer, then an ACK.
    Get,
    /// `NLM_F_REQUEST | NLM_F_DUMP`: many answers, then `NLMSG_DONE`.
    Dump,
}

/// What one datagram held.
#[derive(Debug)]
pub struct Datagram<I> {
    /// The messages addressed to our request, in order.
    pub messages: Vec<I>,
    /// Whether the answer ended here (`NLMSG_DONE`, or the ACK of a get).
    pub done: bool,
}

/// Splits one received datagram into its netlink messages. `seq` is our
/// request's sequence number: messages carrying another one are stale
/// answers and are skipped. Pure and bounds-checked: malformed input gives
/// [`NetlinkError::Decode`], never a panic.
pub fn parse_datagram<I>(op: &'static str, buf: &[u8], seq: u32) -> Result<Datagram<I>, NetlinkError>
where
    I: NetlinkDeserializable + Debug,
{
    let mut out = Datagram { messages: Vec::new(), done: false };
    let mut offset = 0;
    while offset < buf.len() {
        let rest = &buf[offset..];
        let len = NetlinkBuffer::new_checked(rest)
            .map_err(|e| NetlinkError::decode(op, format!("message at byte {offset}: {e}")))?
            .length() as usize;
        let msg = NetlinkMessage::<I>::deserialize(&rest[..len])
            .map_err(|e| NetlinkError::decode(op, format!("message at byte {offset}: {e}")))?;
        // Messages are padded to 4 bytes (NLMSG_ALIGN); the last may not be.
        offset = offset.saturating_add(len.saturating_add(3) & !3);
        if msg.header.sequence_number != seq {
            continue;
        }
        if msg.header.flags & NLM_F_DUMP_INTR != 0 {
            return Err(NetlinkError::Interrupted { op });
        }
        let tlvs = msg.header.flags & NLM_F_ACK_TLVS != 0;
        match msg.payload {
            NetlinkPayload::InnerMessage(inner) => out.messages.push(inner),
            NetlinkPayload::Done(done) if done.code == 0 => out.done = true,
            NetlinkPayload::Done(done) => {
                let says = tlvs.then(|| ext_ack_message(&done.extended_ack)).flatten();
                return Err(NetlinkError::kernel(op, done.code, says));
            }
            NetlinkPayload::Error(e) => match e.code {
                None => out.done = true,
                Some(code) => {
                    // After the code: our request's header, the rest of our
                    // request unless the kernel capped it, then the TLVs.
                    let echoed =
                        if msg.header.flags & NLM_F_CAPPED != 0 { NLMSG_HDRLEN } else { echoed_len(&e.header) };
                    let says = tlvs.then(|| ext_ack_message(e.header.get(echoed..)?)).flatten();
                    return Err(NetlinkError::kernel(op, code.get(), says));
                }
            },
            NetlinkPayload::Overrun(_) => return Err(NetlinkError::decode(op, "the kernel reported NLMSG_OVERRUN")),
            NetlinkPayload::Noop => {}
            _ => return Err(NetlinkError::decode(op, "unexpected netlink control message")),
        }
        if out.done {
            break;
        }
    }
    Ok(out)
}

/// The length of the request an `NLMSG_ERROR` echoes in full: its
/// `nlmsg_len`, padded to 4 bytes.
fn echoed_len(echoed: &[u8]) -> usize {
    echoed.get(..4).map_or(usize::MAX, |len| {
        (u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize).saturating_add(3) & !3
    })
}

/// The kernel's error string (`NLMSGERR_ATTR_MSG`) among extended-ACK
/// attributes; `None` when there is none, or the attributes are malformed.
fn ext_ack_message(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        let value = attrs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            let text = String::from_utf8_lossy(&value[..end]).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        attrs = attrs.get(len.saturating_add(3) & !3..).unwrap_or_default();
    }
    None
}

/// A netlink socket connected to the kernel, in the network namespace of the
/// calling thread.
#[derive(Debug)]
pub(super) struct Conn {
    sock: Socket,
    seq: u32,
    protocol: &'static str,
}

impl Conn {
    /// Opens a socket of `protocol` (`netlink_sys::constants::NETLINK_*`);
    /// `name` is for error messages.
    pub(super) fn open(protocol: isize, name: &'static str) -> Result<Self, NetlinkError> {
        let fail = |source| NetlinkError::Socket { protocol: name, source };
        let mut sock = Socket::new(protocol).map_err(fail)?;
        sock.bind_auto().map_err(fail)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        setsockopt(
            &sock,
            ReceiveTimeout,
            &TimeVal::from(libc::timeval { tv_sec: RECV_TIMEOUT.as_secs() as _, tv_usec: 0 }),
        )
        .map_err(|e| fail(e.into()))?;
        // Both optional (Linux 4.12 and 4.3): the kernel's reason for a
        // refusal, and errors that echo only our request's header.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        Ok(Conn { sock, seq: 0, protocol: name })
    }

    /// Sends `inner` as a request and collects every message of the answer.
    pub(super) fn request<I>(&mut self, op: &'static str, inner: I, kind: Kind) -> Result<Vec<I>, NetlinkError>
    where
        I: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(inner));
        msg.header.flags = NLM_F_REQUEST | if kind == Kind::Dump { NLM_F_DUMP } else { NLM_F_ACK };
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        self.sock.send(&out, 0).map_err(|source| NetlinkError::Send { op, source })?;

        let mut messages = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            buf.clear();
            let n = self.sock.recv(&mut buf, libc::MSG_TRUNC).map_err(|source| NetlinkError::Recv {
                op,
                protocol: self.protocol,
                source,
            })?;
            if n > buf.len() {
                return Err(NetlinkError::decode(
                    op,
                    format!("a {n}-byte datagram did not fit the {RECV_BUF}-byte buffer"),
                ));
            }
            let datagram = parse_datagram::<I>(op, &buf, self.seq)?;
            messages.extend(datagram.messages);
            if datagram.done {
                return Ok(messages);
            }
        }
    }
}

/// A `NETLINK_ROUTE` socket kept open for repeated requests (routes and
/// neighbours, an interface's XDP programs). It is bound to the network
/// namespace of the thread that opened it: requests through it reach that
/// namespace's interfaces from whichever thread sends them.
#[derive(Debug)]
pub struct Rtnetlink {
    pub(super) conn: Conn,
}

impl Rtnetlink {
    /// Opens a `NETLINK_ROUTE` socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        Ok(Rtnetlink { conn: Conn::open(NETLINK_ROUTE, "NETLINK_ROUTE")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::netlink::netdev::{NetdevMsg, decode_family_answer};
    use crate::linux::netlink::testutil::{attr, genl_msg, nl_msg};
    use netlink_packet_generic::GenlMessage;

    type Msg = GenlMessage<NetdevMsg>;

    /// NLMSG_ERROR (type 2): the code, then the request's header.
    fn error(seq: u32, code: i32) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        p.extend(nl_msg(0x20, NLM_F_REQUEST, seq, &[]));
        nl_msg(2, 0, seq, &p)
    }

    #[test]
    fn done_ack_and_errors() {
        let mut d = genl_msg(0x20, 5, 1, &[]);
        d.extend(nl_msg(3, 0x2, 5, &0i32.to_ne_bytes())); // NLMSG_DONE
        d.extend(genl_msg(0x20, 5, 1, &[])); // after DONE: not read
        let p = parse_datagram::<Msg>("t", &d, 5).unwrap();
        assert_eq!((p.messages.len(), p.done), (1, true));

        // A get ends with an ACK (NLMSG_ERROR with code 0).
        let p = parse_datagram::<Msg>("t", &error(5, 0), 5).unwrap();
        assert_eq!((p.messages.len(), p.done), (0, true));

        // A datagram without the end: more to read.
        let p = parse_datagram::<Msg>("t", &genl_msg(0x20, 5, 1, &[]), 5).unwrap();
        assert_eq!((p.messages.len(), p.done), (1, false));

        let e = parse_datagram::<Msg>("RTM_X", &error(5, -libc::EPERM), 5).unwrap_err();
        assert!(matches!(e, NetlinkError::Kernel { errno: libc::EPERM, .. }), "{e:?}");
        assert!(e.to_string().starts_with("RTM_X: the kernel refused: Operation not permitted"), "{e}");
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");

        // A dump that failed part-way reports the error in NLMSG_DONE.
        let e = parse_datagram::<Msg>("t", &nl_msg(3, 0x2, 5, &(-libc::ENOBUFS).to_ne_bytes()), 5).unwrap_err();
        assert!(matches!(e, NetlinkError::Kernel { errno: libc::ENOBUFS, .. }), "{e:?}");

        // i32::MIN cannot be negated: still an error, no overflow.
        let e = parse_datagram::<Msg>("t", &error(5, i32::MIN), 5).unwrap_err();
        assert!(matches!(e, NetlinkError::Kernel { errno: i32::MAX, .. }), "{e:?}");
    }

    /// NLMSG_ERROR refusing request `seq` as the kernel sends it with
    /// `NETLINK_EXT_ACK`: the code, our request (header and `body`; the
    /// header alone if `capped`, its length still the whole request's),
    /// then the attributes `tlvs`.
    fn refusal(seq: u32, code: i32, body: &[u8], capped: bool, tlvs: &[u8]) -> Vec<u8> {
        let request = nl_msg(0x13, NLM_F_REQUEST | NLM_F_ACK, seq, body); // RTM_SETLINK
        let mut p = code.to_ne_bytes().to_vec();
        p.extend(if capped { &request[..NLMSG_HDRLEN] } else { &request[..] });
        p.extend(tlvs);
        let flags = if tlvs.is_empty() { 0 } else { NLM_F_ACK_TLVS } | if capped { NLM_F_CAPPED } else { 0 };
        nl_msg(2, flags, seq, &p)
    }

    fn says(text: &str) -> Vec<u8> {
        attr(NLMSGERR_ATTR_MSG, &[text.as_bytes(), &[0]].concat())
    }

    fn kernel_error(e: &NetlinkError) -> (i32, Option<&str>) {
        match e {
            NetlinkError::Kernel { errno, message, .. } => (*errno, message.as_deref()),
            e => panic!("not a kernel error: {e:?}"),
        }
    }

    #[test]
    fn refusals_carry_the_kernels_words() {
        let said = "Underlying driver does not support XDP in native mode";
        let d = refusal(7, -libc::EOPNOTSUPP, &[], true, &says(said));
        let e = parse_datagram::<Msg>("RTM_SETLINK", &d, 7).unwrap_err();
        assert_eq!(kernel_error(&e), (libc::EOPNOTSUPP, Some(said)));
        let shown = e.to_string();
        assert!(
            shown.starts_with("RTM_SETLINK: the kernel refused: Operation not supported (os error 95): "),
            "{shown}"
        );
        assert!(shown.contains(said), "{shown}");
        // Without NETLINK_CAP_ACK the whole request is echoed before the TLVs.
        let d = refusal(7, -libc::EBUSY, &[9; 8], false, &[says("busy"), attr(2, &[0; 4])].concat());
        assert_eq!(kernel_error(&parse_datagram::<Msg>("t", &d, 7).unwrap_err()), (libc::EBUSY, Some("busy")));
        // Another attribute (NLMSGERR_ATTR_OFFS) before the text; no attributes, no text.
        let d = refusal(7, -libc::EINVAL, &[], true, &[attr(2, &[0; 4]), says("bad")].concat());
        assert_eq!(kernel_error(&parse_datagram::<Msg>("t", &d, 7).unwrap_err()), (libc::EINVAL, Some("bad")));
        let d = refusal(7, -libc::ENODEV, &[], true, &[]);
        assert_eq!(kernel_error(&parse_datagram::<Msg>("t", &d, 7).unwrap_err()), (libc::ENODEV, None));
        // A dump that failed part-way: the TLVs follow the code in NLMSG_DONE.
        let p = [&(-libc::EMSGSIZE).to_ne_bytes()[..], &says("dump too big")].concat();
        let d = nl_msg(3, 0x2 | NLM_F_ACK_TLVS, 7, &p);
        let e = parse_datagram::<Msg>("t", &d, 7).unwrap_err();
        assert_eq!(kernel_error(&e), (libc::EMSGSIZE, Some("dump too big")));
    }

    #[test]
    fn malformed_extended_acks_are_ignored() {
        // Attributes that lie about their length, an empty string.
        for tlvs in [&[200u8, 0, 1, 0, b'x', 0, 0, 0][..], &[2, 0, 1, 0], &[0, 0, 1, 0, 1, 2, 3, 4], &[5, 0, 1, 0, 0]] {
            let d = refusal(1, -libc::EINVAL, &[], true, tlvs);
            let e = parse_datagram::<Msg>("t", &d, 1).unwrap_err();
            assert_eq!(kernel_error(&e), (libc::EINVAL, None), "{tlvs:?}");
        }
        // An echoed request longer than what follows.
        let mut d = refusal(1, -libc::EINVAL, &[], false, &says("x"));
        d[20..24].copy_from_slice(&0xffff_fff0u32.to_ne_bytes());
        assert_eq!(kernel_error(&parse_datagram::<Msg>("t", &d, 1).unwrap_err()), (libc::EINVAL, None));
        assert_eq!(echoed_len(&[1, 2]), usize::MAX);
        assert_eq!(ext_ack_message(&[1, 2]), None);
    }

    #[test]
    fn interrupted_dump_and_foreign_answers() {
        let intr = nl_msg(0x20, 0x2 | NLM_F_DUMP_INTR, 5, &[1, 1, 0, 0]);
        assert!(matches!(parse_datagram::<Msg>("t", &intr, 5), Err(NetlinkError::Interrupted { .. })));
        // Errors meant for another request are skipped too.
        let p = parse_datagram::<Msg>("t", &error(4, -libc::EPERM), 5).unwrap();
        assert_eq!((p.messages.len(), p.done), (0, false));
    }

    #[test]
    fn missing_family_is_enoent() {
        // What Linux before 6.3 answers to CTRL_CMD_GETFAMILY("netdev").
        let e = decode_family_answer(&error(1, -libc::ENOENT), 1).unwrap_err();
        let e = super::super::family_error(e);
        assert!(matches!(e, NetlinkError::NoNetdevFamily));
        assert_eq!(e.to_string(), "kernel has no netdev netlink family (needs Linux 6.3+)");
        let other = super::super::family_error(NetlinkError::Kernel { op: "t", errno: libc::EPERM, message: None });
        assert!(matches!(other, NetlinkError::Kernel { .. }));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Length field larger than the datagram, smaller than a header, zero.
        for d in [&[0xffu8; 20][..], &[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[0u8; 16], &[1, 2, 3]] {
            let e = parse_datagram::<Msg>("t", d, 0).unwrap_err();
            assert!(matches!(e, NetlinkError::Decode { .. }), "{e:?}");
        }
    }
}
