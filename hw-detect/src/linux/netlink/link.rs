//! One interface from rtnetlink, in the calling thread's network namespace:
//! its link-layer facts (`RTM_GETLINK`), and the XDP programs it runs, read
//! (`RTM_GETLINK`) and set (`RTM_SETLINK` with an `IFLA_XDP` nest, the
//! mechanism older than BPF links). Sysfs shows the namespace that mounted
//! it, so a thread that entered another namespace with `setns` must ask
//! netlink; the AF_XDP backend does, to frame packets itself and to attach
//! its XDP program.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage, LinkXdp};

use super::NetlinkError;
use super::conn::{Kind, Rtnetlink};

const OP_GETLINK: &str = "RTM_GETLINK";
const OP_SETLINK: &str = "RTM_SETLINK";

/// What the kernel says about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    /// Interface index.
    pub ifindex: u32,
    /// Kernel name.
    pub name: String,
    /// Ethernet (`ARPHRD_ETHER`): frames carry a 14-byte Ethernet header.
    pub ethernet: bool,
    /// Hardware address (`IFLA_ADDRESS`), when it is 6 bytes.
    pub mac: Option<[u8; 6]>,
    /// MTU in bytes.
    pub mtu: Option<u32>,
    /// Receive queues (`IFLA_NUM_RX_QUEUES`).
    pub rx_queues: Option<u32>,
    /// Transmit queues (`IFLA_NUM_TX_QUEUES`).
    pub tx_queues: Option<u32>,
}

/// The XDP programs an interface runs, by mode (`IFLA_XDP_*_PROG_ID`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpProgs {
    /// The program's id in the driver (native mode), if one runs there.
    pub drv: Option<u32>,
    /// The program's id in the generic (skb) path, if one runs there.
    pub skb: Option<u32>,
}

/// The facts of interface `ifindex`; `Kernel { errno: ENODEV }` when there
/// is no such interface.
pub fn link_get(ifindex: u32) -> Result<LinkFacts, NetlinkError> {
    Rtnetlink::open()?.get_link(ifindex).map(facts_of)
}

impl Rtnetlink {
    /// Puts XDP program `prog` on interface `ifindex`, or takes the program
    /// off with `None`: `RTM_SETLINK` with an `IFLA_XDP` nest. `flags` are
    /// `XDP_FLAGS_*` (include/uapi/linux/if_link.h): the mode, and
    /// `XDP_FLAGS_UPDATE_IF_NOEXIST` or `XDP_FLAGS_REPLACE`. With the
    /// latter (Linux 5.7+), `expected` is `IFLA_XDP_EXPECTED_FD`: only that
    /// program is replaced, otherwise the kernel answers `EEXIST`.
    ///
    /// A refusal is [`NetlinkError::Kernel`], with the kernel's reason when
    /// it gave one ("Underlying driver does not support XDP in native mode").
    pub fn link_set_xdp(
        &mut self,
        ifindex: u32,
        prog: Option<BorrowedFd<'_>>,
        flags: u32,
        expected: Option<BorrowedFd<'_>>,
    ) -> Result<(), NetlinkError> {
        let req = set_xdp_request(ifindex, prog, flags, expected);
        self.conn.request(OP_SETLINK, req, Kind::Get).map(drop)
    }

    /// The XDP programs interface `ifindex` runs (`RTM_GETLINK`);
    /// `Kernel { errno: ENODEV }` when there is no such interface.
    pub fn link_xdp_progs(&mut self, ifindex: u32) -> Result<XdpProgs, NetlinkError> {
        self.get_link(ifindex).map(|l| xdp_progs_of(&l))
    }

    /// The `RTM_NEWLINK` of interface `ifindex`.
    fn get_link(&mut self, ifindex: u32) -> Result<LinkMessage, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        let answer = self.conn.request(OP_GETLINK, RouteNetlinkMessage::GetLink(msg), Kind::Get)?;
        answer
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == ifindex => Some(l),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::decode(OP_GETLINK, format!("no RTM_NEWLINK for ifindex {ifindex}")))
    }
}

/// The `RTM_SETLINK` request of [`Rtnetlink::link_set_xdp`]: `IFLA_XDP_FD`
/// (-1 to detach), `IFLA_XDP_EXPECTED_FD` if given, `IFLA_XDP_FLAGS`.
fn set_xdp_request(
    ifindex: u32,
    prog: Option<BorrowedFd<'_>>,
    flags: u32,
    expected: Option<BorrowedFd<'_>>,
) -> RouteNetlinkMessage {
    let mut xdp = vec![LinkXdp::Fd(prog.map_or(-1, |fd| fd.as_raw_fd()))];
    // A descriptor is never negative, so it fits.
    xdp.extend(expected.map(|fd| LinkXdp::ExpectedFd(fd.as_raw_fd() as u32)));
    xdp.push(LinkXdp::Flags(flags));
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(xdp));
    RouteNetlinkMessage::SetLink(msg)
}

/// The XDP programs one `RTM_NEWLINK` reports (an id of 0 is none).
fn xdp_progs_of(l: &LinkMessage) -> XdpProgs {
    let mut progs = XdpProgs::default();
    for a in &l.attributes {
        let LinkAttribute::Xdp(xdp) = a else { continue };
        for x in xdp {
            match *x {
                LinkXdp::DrvProgId(id) if id != 0 => progs.drv = Some(id),
                LinkXdp::SkbProgId(id) if id != 0 => progs.skb = Some(id),
                _ => {}
            }
        }
    }
    progs
}

/// Pure: the facts one `RTM_NEWLINK` carries.
pub fn facts_of(l: LinkMessage) -> LinkFacts {
    let mut f = LinkFacts {
        ifindex: l.header.index,
        name: String::new(),
        ethernet: l.header.link_layer_type == LinkLayerType::Ether,
        mac: None,
        mtu: None,
        rx_queues: None,
        tx_queues: None,
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => f.name = n,
            LinkAttribute::Address(a) => f.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => f.mtu = Some(m),
            LinkAttribute::NumRxQueues(n) => f.rx_queues = Some(n),
            LinkAttribute::NumTxQueues(n) => f.tx_queues = Some(n),
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn facts_come_from_the_attributes() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.header.link_layer_type = LinkLayerType::Ether;
        l.attributes = vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
            LinkAttribute::Mtu(1500),
            LinkAttribute::NumRxQueues(2),
            LinkAttribute::NumTxQueues(3),
        ];
        let f = facts_of(l);
        assert_eq!(
            f,
            LinkFacts {
                ifindex: 7,
                name: "veth0".into(),
                ethernet: true,
                mac: Some([2, 0, 0, 0, 0, 9]),
                mtu: Some(1500),
                rx_queues: Some(2),
                tx_queues: Some(3)
            }
        );
        // Loopback: no Ethernet header, and a 6-byte all-zero address is
        // still reported as an address; a short one is not.
        let mut l = LinkMessage::default();
        l.header.link_layer_type = LinkLayerType::Loopback;
        l.attributes = vec![LinkAttribute::Address(vec![1, 2, 3])];
        let f = facts_of(l);
        assert!(!f.ethernet && f.mac.is_none());
    }

    #[test]
    fn xdp_programs_come_from_the_xdp_nest() {
        let mut l = LinkMessage::default();
        assert_eq!(xdp_progs_of(&l), XdpProgs::default());
        l.attributes = vec![
            LinkAttribute::Mtu(1500),
            LinkAttribute::Xdp(vec![LinkXdp::ProgId(7), LinkXdp::SkbProgId(7), LinkXdp::DrvProgId(0)]),
        ];
        assert_eq!(xdp_progs_of(&l), XdpProgs { drv: None, skb: Some(7) });
        l.attributes = vec![LinkAttribute::Xdp(vec![LinkXdp::DrvProgId(9), LinkXdp::HwProgId(3)])];
        assert_eq!(xdp_progs_of(&l), XdpProgs { drv: Some(9), skb: None });
    }

    #[test]
    fn set_xdp_sends_fd_expected_fd_and_flags() {
        let (a, b) = (std::fs::File::open("/dev/null").unwrap(), std::fs::File::open("/dev/null").unwrap());
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        let xdp_of = |m| match m {
            RouteNetlinkMessage::SetLink(l) => {
                assert_eq!(l.header.index, 4);
                match <[LinkAttribute; 1]>::try_from(l.attributes) {
                    Ok([LinkAttribute::Xdp(xdp)]) => xdp,
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        };
        let attach = xdp_of(set_xdp_request(4, Some(a.as_fd()), 1 << 1, None));
        assert_eq!(attach, [LinkXdp::Fd(fa), LinkXdp::Flags(1 << 1)]);
        let replace = xdp_of(set_xdp_request(4, None, 1 << 4, Some(b.as_fd())));
        assert_eq!(replace, [LinkXdp::Fd(-1), LinkXdp::ExpectedFd(fb as u32), LinkXdp::Flags(1 << 4)]);
    }
}
