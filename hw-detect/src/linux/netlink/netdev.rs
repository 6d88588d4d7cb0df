//! XDP features from the kernel's `netdev` generic-netlink family
//! (Linux 6.3+, include/uapi/linux/netdev.h).
//!
//! Two requests: `CTRL_CMD_GETFAMILY` resolves the family's dynamic id, then
//! a `NETDEV_CMD_DEV_GET` dump returns one message per interface. The
//! generic-netlink header and framing come from netlink-packet-generic; the
//! two payloads are decoded here, reading only the attributes we need and
//! skipping the rest, so attributes added by newer kernels do not break the
//! probe (netlink-packet-generic's own `GenlCtrl` rejects unknown ones).

use std::fmt::Debug;

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, NlasIterator, ParseableParametrized};
use netlink_packet_generic::constants::GENL_ID_CTRL;
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use super::NetlinkError;
use super::conn::parse_datagram;
use crate::XdpFeatures;

// include/uapi/linux/genetlink.h
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// The controller's protocol version (genetlink.h; what iproute2's genl sends).
const CTRL_VERSION: u8 = 2;

// include/uapi/linux/netdev.h
/// The family's registered name, `NETDEV_FAMILY_NAME`.
pub(super) const NETDEV_FAMILY_NAME: &str = "netdev";
const NETDEV_FAMILY_VERSION: u8 = 1;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;

/// `enum netdev_xdp_act` bits and their names in the kernel's YNL spec
/// (Documentation/netlink/specs/netdev.yaml).
const XDP_ACT_NAMES: [(u64, &str); 7] = [
    (1, "basic"),
    (2, "redirect"),
    (4, "ndo-xmit"),
    (8, "xsk-zerocopy"),
    (16, "hw-offload"),
    (32, "rx-sg"),
    (64, "ndo-xmit-sg"),
];
const NETDEV_XDP_ACT_BASIC: u64 = 1;
const NETDEV_XDP_ACT_REDIRECT: u64 = 2;
const NETDEV_XDP_ACT_XSK_ZEROCOPY: u64 = 8;

/// Maps a `NETDEV_A_DEV_XDP_FEATURES` bitmask (`NETDEV_XDP_ACT_*`) to
/// [`XdpFeatures`]; bits this code does not know are named `bit N`.
pub fn xdp_features_from_bits(bits: u64) -> XdpFeatures {
    let flags = (0..64)
        .map(|n| 1u64 << n)
        .filter(|bit| bits & bit != 0)
        .map(|bit| match XDP_ACT_NAMES.iter().find(|(b, _)| *b == bit) {
            Some((_, name)) => (*name).to_string(),
            None => format!("bit {}", bit.trailing_zeros()),
        })
        .collect();
    XdpFeatures {
        native: bits & NETDEV_XDP_ACT_BASIC != 0,
        redirect: bits & NETDEV_XDP_ACT_REDIRECT != 0,
        zero_copy: bits & NETDEV_XDP_ACT_XSK_ZEROCOPY != 0,
        zc_max_segs: None,
        flags,
    }
}

/// One interface as a `NETDEV_CMD_DEV_GET` answer describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetdevDev {
    /// `NETDEV_A_DEV_IFINDEX`.
    pub ifindex: Option<u32>,
    /// `NETDEV_A_DEV_XDP_FEATURES`: the `NETDEV_XDP_ACT_*` bitmask.
    pub xdp_features: Option<u64>,
    /// `NETDEV_A_DEV_XDP_ZC_MAX_SEGS`: fragments a zero-copy AF_XDP frame may
    /// span (sent only by zero-copy drivers).
    pub xdp_zc_max_segs: Option<u32>,
}

/// Decodes one datagram of a `NETDEV_CMD_DEV_GET` dump (our request had
/// sequence number `seq`). Pure and bounds-checked; used by the probe and by
/// the `netlink_answers` fuzz target.
pub fn decode_netdev_answer(datagram: &[u8], seq: u32) -> Result<Vec<NetdevDev>, NetlinkError> {
    let parsed = parse_datagram::<GenlMessage<NetdevMsg>>(OP_DEV_GET, datagram, seq)?;
    Ok(parsed.messages.into_iter().map(|m| m.payload.dev).collect())
}

/// Decodes one datagram answering `CTRL_CMD_GETFAMILY`: the family id, if
/// the answer carried one. Pure and bounds-checked.
pub fn decode_family_answer(datagram: &[u8], seq: u32) -> Result<Option<u16>, NetlinkError> {
    let parsed = parse_datagram::<GenlMessage<CtrlFamily>>(OP_GETFAMILY, datagram, seq)?;
    Ok(parsed.messages.into_iter().find_map(|m| m.payload.family_id))
}

/// Names of the two operations, for errors.
pub(super) const OP_GETFAMILY: &str = "CTRL_CMD_GETFAMILY(netdev)";
pub(super) const OP_DEV_GET: &str = "NETDEV_CMD_DEV_GET dump";

/// Reads a fixed-size native-endian integer attribute (netlink uses host
/// byte order), rejecting any other length.
fn fixed<const N: usize>(value: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    value.try_into().map_err(|_| DecodeError::from(format!("{what}: expected {N} bytes, got {}", value.len())))
}

/// A `CTRL_CMD_GETFAMILY` request (by name) or its answer (the id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct CtrlFamily {
    /// `CTRL_ATTR_FAMILY_NAME`, sent in the request.
    pub(super) name: Option<String>,
    /// `CTRL_ATTR_FAMILY_ID`, read from the answer.
    pub(super) family_id: Option<u16>,
}

impl CtrlFamily {
    fn name_attr(&self) -> Option<DefaultNla> {
        let name = self.name.as_ref()?;
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        Some(DefaultNla::new(CTRL_ATTR_FAMILY_NAME, value))
    }
}

impl GenlFamily for CtrlFamily {
    fn family_name() -> &'static str {
        "nlctrl"
    }
    fn family_id(&self) -> u16 {
        GENL_ID_CTRL
    }
    fn command(&self) -> u8 {
        CTRL_CMD_GETFAMILY
    }
    fn version(&self) -> u8 {
        CTRL_VERSION
    }
}

impl Emitable for CtrlFamily {
    fn buffer_len(&self) -> usize {
        self.name_attr().map_or(0, |a| [a].as_slice().buffer_len())
    }
    fn emit(&self, buffer: &mut [u8]) {
        if let Some(a) = self.name_attr() {
            [a].as_slice().emit(buffer);
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for CtrlFamily {
    fn parse_with_param(buf: &[u8], _header: GenlHeader) -> Result<Self, DecodeError> {
        let mut out = CtrlFamily::default();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            if nla.kind() == CTRL_ATTR_FAMILY_ID {
                out.family_id = Some(u16::from_ne_bytes(fixed(nla.value(), "CTRL_ATTR_FAMILY_ID")?));
            }
        }
        Ok(out)
    }
}

/// A `NETDEV_CMD_DEV_GET` dump request (no attributes) or one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct NetdevMsg {
    pub(super) dev: NetdevDev,
}

impl GenlFamily for NetdevMsg {
    fn family_name() -> &'static str {
        NETDEV_FAMILY_NAME
    }
    fn command(&self) -> u8 {
        NETDEV_CMD_DEV_GET
    }
    fn version(&self) -> u8 {
        NETDEV_FAMILY_VERSION
    }
}

impl Emitable for NetdevMsg {
    fn buffer_len(&self) -> usize {
        0
    }
    fn emit(&self, _buffer: &mut [u8]) {}
}

impl ParseableParametrized<[u8], GenlHeader> for NetdevMsg {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        if header.cmd != NETDEV_CMD_DEV_GET {
            return Err(
                format!("expected NETDEV_CMD_DEV_GET ({NETDEV_CMD_DEV_GET}), got command {}", header.cmd).into()
            );
        }
        let mut dev = NetdevDev::default();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            let v = nla.value();
            match nla.kind() {
                NETDEV_A_DEV_IFINDEX => dev.ifindex = Some(u32::from_ne_bytes(fixed(v, "NETDEV_A_DEV_IFINDEX")?)),
                NETDEV_A_DEV_XDP_FEATURES => {
                    dev.xdp_features = Some(u64::from_ne_bytes(fixed(v, "NETDEV_A_DEV_XDP_FEATURES")?));
                }
                NETDEV_A_DEV_XDP_ZC_MAX_SEGS => {
                    dev.xdp_zc_max_segs = Some(u32::from_ne_bytes(fixed(v, "NETDEV_A_DEV_XDP_ZC_MAX_SEGS")?));
                }
                // Padding and attributes added after 6.3 (xdp-rx-metadata,
                // xsk-features...): not needed here.
                _ => {}
            }
        }
        Ok(NetdevMsg { dev })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::netlink::testutil::{attr, genl_msg};

    #[test]
    fn bits_map_to_features_and_names() {
        // veth's mask (drivers/net/veth.c): BASIC | REDIRECT | NDO_XMIT | RX_SG | NDO_XMIT_SG.
        let f = xdp_features_from_bits(1 | 2 | 4 | 32 | 64);
        assert!(f.native && f.redirect && !f.zero_copy);
        assert_eq!(f.flags, ["basic", "redirect", "ndo-xmit", "rx-sg", "ndo-xmit-sg"]);

        let f = xdp_features_from_bits(8 | (1 << 7) | (1 << 63));
        assert!(!f.native && !f.redirect && f.zero_copy);
        assert_eq!(f.flags, ["xsk-zerocopy", "bit 7", "bit 63"]);

        let f = xdp_features_from_bits(0);
        assert!(!f.native && !f.redirect && !f.zero_copy && f.flags.is_empty());
    }

    #[test]
    fn decodes_a_dev_get_dump() {
        let mut attrs = attr(NETDEV_A_DEV_IFINDEX, &7u32.to_ne_bytes());
        attrs.extend(attr(2, &[])); // NETDEV_A_DEV_PAD
        attrs.extend(attr(NETDEV_A_DEV_XDP_FEATURES, &(1u64 | 2 | 8).to_ne_bytes()));
        attrs.extend(attr(NETDEV_A_DEV_XDP_ZC_MAX_SEGS, &4u32.to_ne_bytes()));
        attrs.extend(attr(5, &0u64.to_ne_bytes())); // a newer attribute: skipped
        let mut d = genl_msg(0x20, 9, NETDEV_CMD_DEV_GET, &attrs);
        d.extend(genl_msg(0x20, 9, NETDEV_CMD_DEV_GET, &attr(NETDEV_A_DEV_IFINDEX, &1u32.to_ne_bytes())));
        let devs = decode_netdev_answer(&d, 9).unwrap();
        assert_eq!(
            devs,
            [
                NetdevDev { ifindex: Some(7), xdp_features: Some(11), xdp_zc_max_segs: Some(4) },
                NetdevDev { ifindex: Some(1), xdp_features: None, xdp_zc_max_segs: None },
            ]
        );
        // Another request's answer is skipped.
        assert_eq!(decode_netdev_answer(&d, 10).unwrap(), []);
    }

    #[test]
    fn rejects_wrong_sizes_and_truncation() {
        let bad = genl_msg(0x20, 1, NETDEV_CMD_DEV_GET, &attr(NETDEV_A_DEV_XDP_FEATURES, &[1, 2, 3, 4]));
        let e = decode_netdev_answer(&bad, 1).unwrap_err().to_string();
        assert!(e.contains("NETDEV_A_DEV_XDP_FEATURES: expected 8 bytes, got 4"), "{e}");

        let good = genl_msg(0x20, 1, NETDEV_CMD_DEV_GET, &attr(NETDEV_A_DEV_IFINDEX, &3u32.to_ne_bytes()));
        for cut in 1..good.len() {
            assert!(decode_netdev_answer(&good[..cut], 1).is_err(), "cut at {cut} accepted");
        }
        assert!(decode_netdev_answer(&[0xff; 40], 0).is_err());
        assert_eq!(decode_netdev_answer(&[], 0).unwrap(), []);
    }

    #[test]
    fn decodes_the_family_id_and_skips_unknown_ctrl_attributes() {
        let mut attrs = attr(CTRL_ATTR_FAMILY_NAME, b"netdev\0");
        attrs.extend(attr(CTRL_ATTR_FAMILY_ID, &0x1cu16.to_ne_bytes()));
        attrs.extend(attr(99, b"future"));
        let d = genl_msg(GENL_ID_CTRL, 4, 1 /* CTRL_CMD_NEWFAMILY */, &attrs);
        assert_eq!(decode_family_answer(&d, 4).unwrap(), Some(0x1c));
        let bad = genl_msg(GENL_ID_CTRL, 4, 1, &attr(CTRL_ATTR_FAMILY_ID, &[1]));
        assert!(decode_family_answer(&bad, 4).is_err());
    }

    #[test]
    fn request_encodes_the_family_name() {
        let req = CtrlFamily { name: Some("netdev".into()), family_id: None };
        let mut buf = vec![0; req.buffer_len()];
        req.emit(&mut buf);
        assert_eq!(buf, attr(CTRL_ATTR_FAMILY_NAME, b"netdev\0"));
    }
}
