//! One request and its answer over a netlink socket: the socket itself
//! (netlink-sys), and [`parse_datagram`], the pure step that splits one
//! received datagram into messages and turns kernel errors into
//! [`NetlinkError`]s.

use std::fmt::Debug;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
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
        match msg.payload {
            NetlinkPayload::InnerMessage(inner) => out.messages.push(inner),
            NetlinkPayload::Done(done) if done.code == 0 => out.done = true,
            NetlinkPayload::Done(done) => return Err(NetlinkError::kernel(op, done.code)),
            NetlinkPayload::Error(e) => match e.code {
                None => out.done = true,
                Some(code) => return Err(NetlinkError::kernel(op, code.get())),
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

/// A netlink socket connected to the kernel, in the network namespace of the
/// calling thread.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::netlink::netdev::{NetdevMsg, decode_family_answer};
    use crate::linux::netlink::testutil::{genl_msg, nl_msg};
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
        let other = super::super::family_error(NetlinkError::Kernel { op: "t", errno: libc::EPERM });
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
