//! One interface's link-layer facts from rtnetlink (`RTM_GETLINK`), read in
//! the calling thread's network namespace. Sysfs shows the namespace that
//! mounted it, so a thread that entered another namespace with `setns`
//! must ask netlink; the AF_XDP backend does, to frame packets itself.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_sys::constants::NETLINK_ROUTE;

use super::NetlinkError;
use super::conn::{Conn, Kind};

const OP_GETLINK: &str = "RTM_GETLINK";

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

/// The facts of interface `ifindex`; `Kernel { errno: ENODEV }` when there
/// is no such interface.
pub fn link_get(ifindex: u32) -> Result<LinkFacts, NetlinkError> {
    let mut conn = Conn::open(NETLINK_ROUTE, "NETLINK_ROUTE")?;
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let answer = conn.request(OP_GETLINK, RouteNetlinkMessage::GetLink(msg), Kind::Get)?;
    answer
        .into_iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) if l.header.index == ifindex => Some(facts_of(l)),
            _ => None,
        })
        .ok_or_else(|| NetlinkError::decode(OP_GETLINK, format!("no RTM_NEWLINK for ifindex {ifindex}")))
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
}
