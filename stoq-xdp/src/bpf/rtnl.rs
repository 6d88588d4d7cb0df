//! The rtnetlink side of attaching XDP: `RTM_SETLINK` with an `IFLA_XDP`
//! nest (the mechanism older than BPF links), and `RTM_GETLINK` to read
//! which programs an interface runs. Errors keep the kernel's extended
//! ACK message ("Underlying driver does not support XDP in native mode").

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkXdp};
use netlink_sys::constants::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

/// Receive buffer: one `RTM_NEWLINK` is a few KiB; `MSG_TRUNC` reports more.
const RECV_BUF: usize = 64 * 1024;
/// The kernel answers at once; this only keeps a wedged socket from hanging.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// `NLMSGERR_ATTR_MSG` (include/uapi/linux/netlink.h): the error string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;

/// A refused request: errno and what the kernel said about it.
#[derive(Debug)]
pub(super) struct RtnlError {
    pub source: io::Error,
    /// The extended ACK message, when the kernel sent one.
    pub kernel_says: Option<String>,
}

impl RtnlError {
    fn io(source: io::Error) -> Self {
        RtnlError { source, kernel_says: None }
    }

    fn decode(what: impl std::fmt::Display) -> Self {
        RtnlError::io(io::Error::new(io::ErrorKind::InvalidData, format!("malformed rtnetlink answer: {what}")))
    }

    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// The XDP programs an interface runs, by mode (`IFLA_XDP_*_PROG_ID`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct XdpProgs {
    /// In the driver (native mode).
    pub drv: Option<u32>,
    /// In the generic (skb) path.
    pub skb: Option<u32>,
}

/// A route netlink socket, bound to the network namespace of the thread
/// that opened it: requests through it reach that namespace's interfaces
/// from whichever thread sends them.
#[derive(Debug)]
pub(super) struct Rtnl {
    sock: Socket,
    /// `NETLINK_CAP_ACK` took: errors echo only our header, not our request.
    cap_ack: bool,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> Result<Self, RtnlError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(RtnlError::io)?;
        sock.bind_auto().map_err(RtnlError::io)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(RtnlError::io)?;
        socket2::SockRef::from(&sock).set_read_timeout(Some(RECV_TIMEOUT)).map_err(RtnlError::io)?;
        // Both are optional (Linux 4.12 and 4.3): without them errors lack text.
        let _ = sock.set_ext_ack(true);
        let cap_ack = sock.set_cap_ack(true).is_ok();
        Ok(Rtnl { sock, cap_ack, seq: 0 })
    }

    /// `RTM_SETLINK` of interface `ifindex` with the `IFLA_XDP` nest `xdp`.
    pub fn set_xdp(&mut self, ifindex: u32, xdp: Vec<LinkXdp>) -> Result<(), RtnlError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.attributes.push(LinkAttribute::Xdp(xdp));
        self.request(RouteNetlinkMessage::SetLink(msg)).map(drop)
    }

    /// The programs attached to `ifindex` (`ENODEV` when there is no such
    /// interface).
    pub fn xdp_progs(&mut self, ifindex: u32) -> Result<XdpProgs, RtnlError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        let answer = self.request(RouteNetlinkMessage::GetLink(msg))?;
        let link = answer
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == ifindex => Some(l),
                _ => None,
            })
            .ok_or_else(|| RtnlError::decode(format!("no RTM_NEWLINK for ifindex {ifindex}")))?;
        let mut progs = XdpProgs::default();
        for a in link.attributes {
            if let LinkAttribute::Xdp(xdp) = a {
                for x in xdp {
                    match x {
                        LinkXdp::DrvProgId(id) if id != 0 => progs.drv = Some(id),
                        LinkXdp::SkbProgId(id) if id != 0 => progs.skb = Some(id),
                        _ => {}
                    }
                }
            }
        }
        Ok(progs)
    }

    /// Sends `inner` with `NLM_F_ACK` and collects the answer up to the ACK.
    fn request(&mut self, inner: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, RtnlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(inner));
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut out = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut out);
        self.sock.send(&out, 0).map_err(RtnlError::io)?;

        let mut answers = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            buf.clear();
            let n = self.sock.recv(&mut buf, libc::MSG_TRUNC).map_err(RtnlError::io)?;
            if n > buf.len() {
                return Err(RtnlError::decode(format!("a {n}-byte answer did not fit {RECV_BUF} bytes")));
            }
            if parse_datagram(&buf, self.seq, self.cap_ack, &mut answers)? {
                return Ok(answers);
            }
        }
    }
}

/// Adds the messages of one datagram that answer request `seq` to
/// `answers`; true once the answer is complete (the ACK), an error when it
/// is a refusal. Bounds-checked: malformed input is an error, not a panic.
fn parse_datagram(
    buf: &[u8],
    seq: u32,
    cap_ack: bool,
    answers: &mut Vec<RouteNetlinkMessage>,
) -> Result<bool, RtnlError> {
    let mut offset = 0;
    while offset < buf.len() {
        let rest = &buf[offset..];
        let len = NetlinkBuffer::new_checked(rest).map_err(RtnlError::decode)?.length() as usize;
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]).map_err(RtnlError::decode)?;
        // Messages are padded to 4 bytes (NLMSG_ALIGN).
        offset = offset.saturating_add(len.saturating_add(3) & !3);
        if msg.header.sequence_number != seq {
            continue;
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => answers.push(m),
            NetlinkPayload::Error(e) => {
                let Some(code) = e.code else { return Ok(true) };
                let errno = code.get().checked_neg().unwrap_or(i32::MAX);
                let tlvs = msg.header.flags & NLM_F_ACK_TLVS != 0;
                let kernel_says = if tlvs { ext_ack_message(&e.header, cap_ack) } else { None };
                return Err(RtnlError { source: io::Error::from_raw_os_error(errno), kernel_says });
            }
            NetlinkPayload::Done(_) => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

/// The `NLMSGERR_ATTR_MSG` of an error's payload (after the error code):
/// our request's header (with its body unless `cap_ack`), then attributes.
fn ext_ack_message(payload: &[u8], cap_ack: bool) -> Option<String> {
    let echoed = if cap_ack {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        len.checked_add(3)? & !3
    };
    let mut attrs = payload.get(echoed..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        let value = attrs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            let text = String::from_utf8_lossy(&value[..end]).trim().to_string();
            return (!text.is_empty()).then_some(text);
        }
        attrs = attrs.get(len.checked_add(3)? & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NLMSG_ERROR datagram: code, echoed header (+ `body`), then `tlvs`.
    fn error(seq: u32, code: i32, body: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let echoed_len = (NLMSG_HDRLEN + body.len()) as u32;
        let mut p = code.to_ne_bytes().to_vec();
        p.extend(echoed_len.to_ne_bytes());
        p.extend([0x13, 0, 5, 0]); // RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK
        p.extend(seq.to_ne_bytes());
        p.extend(0u32.to_ne_bytes());
        p.extend(body);
        p.extend(tlvs);
        let flags: u16 = if tlvs.is_empty() { 0 } else { NLM_F_ACK_TLVS };
        let mut d = ((NLMSG_HDRLEN + p.len()) as u32).to_ne_bytes().to_vec();
        d.extend(2u16.to_ne_bytes()); // NLMSG_ERROR
        d.extend(flags.to_ne_bytes());
        d.extend(seq.to_ne_bytes());
        d.extend(0u32.to_ne_bytes());
        d.extend(p);
        d
    }

    fn msg_tlv(text: &str) -> Vec<u8> {
        let mut v = (4 + text.len() as u16 + 1).to_ne_bytes().to_vec();
        v.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
        v.extend(text.as_bytes());
        v.push(0);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn refusals_carry_errno_and_the_kernels_words() {
        let mut answers = Vec::new();
        let said = "Underlying driver does not support XDP in native mode";
        let e = parse_datagram(&error(7, -libc::EOPNOTSUPP, &[], &msg_tlv(said)), 7, true, &mut answers).unwrap_err();
        assert_eq!((e.errno(), e.kernel_says.as_deref()), (Some(libc::EOPNOTSUPP), Some(said)));
        // Without NETLINK_CAP_ACK the whole request is echoed before the TLVs.
        let e = parse_datagram(&error(7, -libc::EBUSY, &[9; 8], &msg_tlv("busy")), 7, false, &mut answers).unwrap_err();
        assert_eq!((e.errno(), e.kernel_says.as_deref()), (Some(libc::EBUSY), Some("busy")));
        // No TLVs: just the errno.
        let e = parse_datagram(&error(7, -libc::ENODEV, &[], &[]), 7, true, &mut answers).unwrap_err();
        assert_eq!((e.errno(), e.kernel_says), (Some(libc::ENODEV), None));
        // An ACK ends the answer; another request's error is skipped.
        assert!(parse_datagram(&error(7, 0, &[], &[]), 7, true, &mut answers).unwrap());
        assert!(!parse_datagram(&error(6, -libc::EPERM, &[], &[]), 7, true, &mut answers).unwrap());
        assert!(answers.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut answers = Vec::new();
        for d in [&[0xffu8; 20][..], &[8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[0u8; 16], &[1, 2, 3]] {
            assert!(parse_datagram(d, 0, true, &mut answers).is_err(), "{d:?}");
        }
        // Extended ACK attributes that lie about their length are ignored.
        for tlvs in [&[200u8, 0, 1, 0, b'x', 0, 0, 0][..], &[2, 0, 1, 0], &[0, 0, 1, 0, 1, 2, 3, 4]] {
            let e = parse_datagram(&error(1, -libc::EINVAL, &[], tlvs), 1, true, &mut answers).unwrap_err();
            assert_eq!((e.errno(), e.kernel_says), (Some(libc::EINVAL), None), "{tlvs:?}");
        }
        assert_eq!(ext_ack_message(&[1, 2], false), None);
        assert_eq!(ext_ack_message(&[0xff, 0xff, 0xff, 0xff], false), None);
    }
}
