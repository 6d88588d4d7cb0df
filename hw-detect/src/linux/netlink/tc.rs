//! Egress shaping from rtnetlink: root qdiscs (`RTM_GETQDISC`) and HTB
//! classes (`RTM_GETTCLASS`).
//!
//! netlink-packet-route 0.34 decodes the `tcmsg` header and `TCA_KIND`, but
//! hands `tbf` and `htb` options over as one raw `TCA_OPTIONS` attribute, so
//! the option structs are decoded here, bounds-checked, from
//! include/uapi/linux/pkt_sched.h.

use netlink_packet_core::{NLA_TYPE_MASK, Nla, NlasIterator};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcMessage, TcOption};

use super::NetlinkError;
use super::conn::parse_datagram;

/// `TC_H_ROOT` (include/uapi/linux/pkt_sched.h): the parent of a root qdisc,
/// and of an HTB class that has no parent class.
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// `TCA_OPTIONS` (include/uapi/linux/rtnetlink.h).
const TCA_OPTIONS: u16 = 2;

// include/uapi/linux/pkt_sched.h, TBF section.
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
// include/uapi/linux/pkt_sched.h, HTB section.
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_RATE64: u16 = 6;

/// `struct tc_ratespec` (pkt_sched.h): cell_log u8, linklayer u8,
/// overhead u16, cell_align s16, mpu u16, then `rate` (u32, bytes/s).
const RATESPEC_LEN: usize = 12;
const RATESPEC_RATE_OFFSET: usize = 8;
/// `struct tc_tbf_qopt` (pkt_sched.h): rate and peakrate ratespecs, then
/// limit, buffer and mtu (u32 each).
const TC_TBF_QOPT_LEN: usize = 2 * RATESPEC_LEN + 3 * 4;
/// `struct tc_htb_opt` (pkt_sched.h): rate and ceil ratespecs, then buffer,
/// cbuffer, quantum, level and prio (u32 each).
const TC_HTB_OPT_LEN: usize = 2 * RATESPEC_LEN + 5 * 4;

/// One qdisc or class from an `RTM_NEWQDISC`/`RTM_NEWTCLASS` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcEntry {
    /// `tcm_ifindex`.
    pub ifindex: u32,
    /// `tcm_handle` (major in the high 16 bits).
    pub handle: u32,
    /// `tcm_parent`; [`TC_H_ROOT`] for a root qdisc.
    pub parent: u32,
    /// `TCA_KIND`.
    pub kind: Option<String>,
    /// The raw payload of `TCA_OPTIONS`, for kinds netlink-packet-route does
    /// not decode (`tbf` and `htb` among them).
    pub options: Option<Vec<u8>>,
}

/// Decodes one datagram of an `RTM_GETQDISC` or `RTM_GETTCLASS` dump (our
/// request had sequence number `seq`). Pure and bounds-checked; used by the
/// probe and by the `netlink_answers` fuzz target.
pub fn decode_tc_answer(op: &'static str, datagram: &[u8], seq: u32) -> Result<Vec<TcEntry>, NetlinkError> {
    parse_datagram::<RouteNetlinkMessage>(op, datagram, seq)?.messages.into_iter().map(|m| entry_of(op, m)).collect()
}

/// The [`TcEntry`] of one `RTM_NEWQDISC` or `RTM_NEWTCLASS` message.
pub(super) fn entry_of(op: &'static str, msg: RouteNetlinkMessage) -> Result<TcEntry, NetlinkError> {
    let tc: TcMessage = match msg {
        RouteNetlinkMessage::NewQueueDiscipline(tc) | RouteNetlinkMessage::NewTrafficClass(tc) => tc,
        other => return Err(NetlinkError::decode(op, format!("unexpected message type {}", other.message_type()))),
    };
    let ifindex = u32::try_from(tc.header.index)
        .map_err(|_| NetlinkError::decode(op, format!("negative tcm_ifindex {}", tc.header.index)))?;
    let mut out = TcEntry {
        ifindex,
        handle: tc.header.handle.into(),
        parent: tc.header.parent.into(),
        kind: None,
        options: None,
    };
    for attr in tc.attributes {
        match attr {
            TcAttribute::Kind(k) => out.kind = Some(k),
            TcAttribute::Options(opts) => {
                if let [TcOption::Other(nla)] = opts.as_slice()
                    && nla.kind() & NLA_TYPE_MASK == TCA_OPTIONS
                {
                    let mut raw = vec![0; nla.value_len()];
                    nla.emit_value(&mut raw);
                    out.options = Some(raw);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Reads the `rate` field of the `tc_ratespec` at `at` in `s`.
fn ratespec_rate(s: &[u8], at: usize) -> Option<u32> {
    let b = s.get(at + RATESPEC_RATE_OFFSET..at + RATESPEC_RATE_OFFSET + 4)?;
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

/// Bytes/s to bit/s, refusing to overflow.
fn to_bps(bytes_per_s: u64, what: &str) -> Result<u64, String> {
    bytes_per_s.checked_mul(8).ok_or_else(|| format!("{what} of {bytes_per_s} bytes/s overflows bit/s"))
}

/// Finds the 64-bit attribute `rate64` and the struct attribute `parms`
/// (at least `parms_len` bytes) in a nested option block.
fn scan(options: &[u8], rate64: u16, parms: u16, parms_len: usize) -> Result<(Option<u64>, Option<&[u8]>), String> {
    let (mut r64, mut p) = (None, None);
    for nla in NlasIterator::new(options) {
        let nla = nla.map_err(|e| e.to_string())?;
        let kind = nla.kind();
        // The value, borrowed from `options` rather than from `nla`.
        let v = nla.into_inner().get(4..usize::from(nla.length())).ok_or("attribute shorter than its header")?;
        if kind == rate64 {
            let b: [u8; 8] = v.try_into().map_err(|_| format!("64-bit rate of {} bytes", v.len()))?;
            r64 = Some(u64::from_ne_bytes(b));
        } else if kind == parms {
            if v.len() < parms_len {
                return Err(format!("parameters of {} bytes, expected {parms_len}", v.len()));
            }
            p = Some(v);
        }
    }
    Ok((r64, p))
}

/// Where a shaper's `TCA_OPTIONS` keep its rate, with the names errors use.
struct RateAttrs {
    /// The 64-bit rate attribute.
    rate64: u16,
    /// The attribute holding the parameter struct, and its name.
    parms: u16,
    parms_name: &'static str,
    /// The parameter struct (its rate ratespec first): name and length.
    qopt_name: &'static str,
    qopt_len: usize,
    /// What an overflow error calls the rate.
    what: &'static str,
}

const TBF: RateAttrs = RateAttrs {
    rate64: TCA_TBF_RATE64,
    parms: TCA_TBF_PARMS,
    parms_name: "TCA_TBF_PARMS",
    qopt_name: "tc_tbf_qopt",
    qopt_len: TC_TBF_QOPT_LEN,
    what: "tbf rate",
};
const HTB: RateAttrs = RateAttrs {
    rate64: TCA_HTB_RATE64,
    parms: TCA_HTB_PARMS,
    parms_name: "TCA_HTB_PARMS",
    qopt_name: "tc_htb_opt",
    qopt_len: TC_HTB_OPT_LEN,
    what: "htb rate",
};

/// A shaper's rate in bit/s from its `TCA_OPTIONS` payload: the 64-bit rate
/// attribute when present (the kernel adds it for rates of 2^32 bytes/s and
/// up, and then puts `~0` in the 32-bit field), else the `rate.rate` of the
/// parameter struct. Both are bytes/s.
fn rate_bps(options: &[u8], a: &RateAttrs) -> Result<u64, String> {
    let (rate64, parms) = scan(options, a.rate64, a.parms, a.qopt_len)?;
    let bytes = match (rate64, parms) {
        (Some(r), _) => r,
        (None, Some(p)) => u64::from(ratespec_rate(p, 0).ok_or_else(|| format!("short {}", a.qopt_name))?),
        (None, None) => return Err(format!("no {}", a.parms_name)),
    };
    to_bps(bytes, a.what)
}

/// The rate of a `tbf` qdisc in bit/s, from its `TCA_OPTIONS` payload:
/// `TCA_TBF_RATE64` when present, else `tc_tbf_qopt.rate.rate`.
pub fn tbf_rate_bps(options: &[u8]) -> Result<u64, String> {
    rate_bps(options, &TBF)
}

/// The guaranteed rate of an `htb` class in bit/s, from its `TCA_OPTIONS`
/// payload: `TCA_HTB_RATE64` when present, else `tc_htb_opt.rate.rate`.
/// The ceiling is not read: see [`htb_root_rate_bps`].
pub fn htb_class_rate_bps(options: &[u8]) -> Result<u64, String> {
    rate_bps(options, &HTB)
}

/// The egress rate an `htb` root with handle `root_handle` allows: the sum of
/// the rates of its top-level classes. A top-level class has no parent to
/// borrow from, so its `ceil` never takes effect and its `rate` is its limit
/// (`rate 10mbit ceil 100mbit` under the root sends at 10 Mbit/s). The kernel
/// reports a top-level class's parent as [`TC_H_ROOT`] (net/sched/sch_htb.c,
/// `htb_dump_class`), so a class counts when its parent is `TC_H_ROOT` and
/// its major number is the root's (classes of an HTB nested deeper have their
/// own major). `None` when the root has no class: HTB then sends everything
/// unshaped.
pub fn htb_root_rate_bps(root_handle: u32, classes: &[TcEntry]) -> Result<Option<u64>, String> {
    let mut sum: Option<u64> = None;
    for c in classes {
        if c.parent != TC_H_ROOT || c.handle >> 16 != root_handle >> 16 || c.kind.as_deref() != Some("htb") {
            continue;
        }
        let opts = c.options.as_deref().ok_or_else(|| format!("class {:x}: no TCA_OPTIONS", c.handle))?;
        let rate = htb_class_rate_bps(opts).map_err(|e| format!("class {:x}: {e}", c.handle))?;
        sum = Some(sum.unwrap_or(0).checked_add(rate).ok_or("sum of htb rates overflows")?);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::netlink::testutil::{attr, nl_msg};

    fn ratespec(rate: u32) -> Vec<u8> {
        let mut r = vec![0u8; RATESPEC_LEN];
        r[RATESPEC_RATE_OFFSET..].copy_from_slice(&rate.to_ne_bytes());
        r
    }

    fn tbf_qopt(rate: u32) -> Vec<u8> {
        let mut q = ratespec(rate);
        q.extend(ratespec(0));
        q.extend([0u8; 12]);
        q
    }

    fn htb_opt(rate: u32, ceil: u32) -> Vec<u8> {
        let mut q = ratespec(rate);
        q.extend(ratespec(ceil));
        q.extend([0u8; 20]);
        q
    }

    #[test]
    fn tbf_rate_from_parms_and_rate64() {
        // 90mbit as tc sends it: 11_250_000 bytes/s.
        assert_eq!(tbf_rate_bps(&attr(TCA_TBF_PARMS, &tbf_qopt(11_250_000))).unwrap(), 90_000_000);
        // 40gbit: the kernel puts ~0 in the 32-bit field and adds RATE64.
        let mut o = attr(TCA_TBF_PARMS, &tbf_qopt(u32::MAX));
        o.extend(attr(TCA_TBF_RATE64, &5_000_000_000u64.to_ne_bytes()));
        assert_eq!(tbf_rate_bps(&o).unwrap(), 40_000_000_000);
        // Other attributes (RTAB, BURST...) are skipped.
        let mut o = attr(TCA_TBF_BURST_FOR_TEST, &32_000u32.to_ne_bytes());
        o.extend(attr(TCA_TBF_PARMS, &tbf_qopt(625_000_000)));
        assert_eq!(tbf_rate_bps(&o).unwrap(), 5_000_000_000);
    }
    const TCA_TBF_BURST_FOR_TEST: u16 = 6;

    #[test]
    fn tbf_rejects_bad_options() {
        assert_eq!(tbf_rate_bps(&[]).unwrap_err(), "no TCA_TBF_PARMS");
        let short = attr(TCA_TBF_PARMS, &tbf_qopt(1)[..20]);
        assert_eq!(tbf_rate_bps(&short).unwrap_err(), "parameters of 20 bytes, expected 36");
        let bad64 = attr(TCA_TBF_RATE64, &[1, 2, 3]);
        assert_eq!(tbf_rate_bps(&bad64).unwrap_err(), "64-bit rate of 3 bytes");
        let huge = attr(TCA_TBF_RATE64, &u64::MAX.to_ne_bytes());
        assert!(tbf_rate_bps(&huge).unwrap_err().contains("overflows"));
        let good = attr(TCA_TBF_PARMS, &tbf_qopt(1000));
        for cut in 1..good.len() {
            assert!(tbf_rate_bps(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
        assert!(tbf_rate_bps(&[0xff; 64]).is_err());
    }

    #[test]
    fn htb_rate_from_parms_and_rate64() {
        // rate 100mbit ceil 300mbit: the rate, not the ceiling.
        let o = attr(TCA_HTB_PARMS, &htb_opt(12_500_000, 37_500_000));
        assert_eq!(htb_class_rate_bps(&o).unwrap(), 100_000_000);
        // rate 100gbit: ~0 in the 32-bit field, the rate in RATE64. A CEIL64
        // (attribute 7) next to it is not the rate.
        let mut o = attr(TCA_HTB_PARMS, &htb_opt(u32::MAX, u32::MAX));
        o.extend(attr(TCA_HTB_RATE64, &12_500_000_000u64.to_ne_bytes()));
        o.extend(attr(TCA_HTB_CEIL64_FOR_TEST, &25_000_000_000u64.to_ne_bytes()));
        assert_eq!(htb_class_rate_bps(&o).unwrap(), 100_000_000_000);
        // rate 10mbit ceil 200gbit: only the ceiling needs CEIL64.
        let mut o = attr(TCA_HTB_PARMS, &htb_opt(1_250_000, u32::MAX));
        o.extend(attr(TCA_HTB_CEIL64_FOR_TEST, &25_000_000_000u64.to_ne_bytes()));
        assert_eq!(htb_class_rate_bps(&o).unwrap(), 10_000_000);
    }
    const TCA_HTB_CEIL64_FOR_TEST: u16 = 7;

    #[test]
    fn htb_rejects_bad_options() {
        assert_eq!(htb_class_rate_bps(&[]).unwrap_err(), "no TCA_HTB_PARMS");
        let short = attr(TCA_HTB_PARMS, &[0; 43]);
        assert_eq!(htb_class_rate_bps(&short).unwrap_err(), "parameters of 43 bytes, expected 44");
        let bad64 = attr(TCA_HTB_RATE64, &[1, 2, 3, 4]);
        assert_eq!(htb_class_rate_bps(&bad64).unwrap_err(), "64-bit rate of 4 bytes");
        let huge = attr(TCA_HTB_RATE64, &u64::MAX.to_ne_bytes());
        assert!(htb_class_rate_bps(&huge).unwrap_err().contains("overflows"));
        let good = attr(TCA_HTB_PARMS, &htb_opt(1000, 2000));
        for cut in 1..good.len() {
            assert!(htb_class_rate_bps(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
    }

    /// An htb class whose ceiling is ten times its rate.
    fn class(handle: u32, parent: u32, rate_bytes: u32) -> TcEntry {
        TcEntry {
            ifindex: 2,
            handle,
            parent,
            kind: Some("htb".into()),
            options: Some(attr(TCA_HTB_PARMS, &htb_opt(rate_bytes, rate_bytes.saturating_mul(10)))),
        }
    }

    #[test]
    fn htb_sums_the_rates_of_top_level_classes_of_the_root_only() {
        let classes = [
            class(0x0001_0001, TC_H_ROOT, 25_000_000),   // 1:1, rate 200 Mbit/s
            class(0x0001_0002, TC_H_ROOT, 12_500_000),   // 1:2, rate 100 Mbit/s
            class(0x0001_0010, 0x0001_0001, 99_999_999), // 1:10 under 1:1: not counted
            class(0x000a_0001, TC_H_ROOT, 99_999_999),   // 10:1, a nested HTB's top class
        ];
        assert_eq!(htb_root_rate_bps(0x0001_0000, &classes).unwrap(), Some(300_000_000));
        assert_eq!(htb_root_rate_bps(0x0001_0000, &[]).unwrap(), None);
        let mut broken = class(0x0001_0001, TC_H_ROOT, 1);
        broken.options = None;
        assert_eq!(htb_root_rate_bps(0x0001_0000, &[broken]).unwrap_err(), "class 10001: no TCA_OPTIONS");
        let mut huge = class(0x0001_0003, TC_H_ROOT, 0);
        huge.options = Some(attr(TCA_HTB_RATE64, &(u64::MAX / 8).to_ne_bytes()));
        let e = htb_root_rate_bps(0x0001_0000, &[classes[0].clone(), huge]).unwrap_err();
        assert_eq!(e, "sum of htb rates overflows");
    }

    /// An RTM_NEWQDISC message: tcmsg, TCA_KIND, TCA_OPTIONS.
    fn qdisc_msg(seq: u32, ifindex: i32, handle: u32, parent: u32, kind: &str, options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8, 0, 0, 0]; // tcm_family, pads
        p.extend(ifindex.to_ne_bytes());
        p.extend(handle.to_ne_bytes());
        p.extend(parent.to_ne_bytes());
        p.extend(0u32.to_ne_bytes()); // tcm_info
        let mut k = kind.as_bytes().to_vec();
        k.push(0);
        p.extend(attr(1, &k)); // TCA_KIND
        p.extend(attr(TCA_OPTIONS, options));
        nl_msg(36, 0x2, seq, &p) // RTM_NEWQDISC, NLM_F_MULTI
    }

    #[test]
    fn decodes_a_qdisc_dump() {
        let tbf = attr(TCA_TBF_PARMS, &tbf_qopt(62_500_000));
        let mut d = qdisc_msg(3, 4, 0x8001_0000, TC_H_ROOT, "tbf", &tbf);
        d.extend(qdisc_msg(3, 5, 0x0001_0000, TC_H_ROOT, "htb", &attr(2, &[0; 4])));
        let e = decode_tc_answer("test", &d, 3).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].ifindex, e[0].handle, e[0].parent), (4, 0x8001_0000, TC_H_ROOT));
        assert_eq!(e[0].kind.as_deref(), Some("tbf"));
        assert_eq!(tbf_rate_bps(e[0].options.as_deref().unwrap()).unwrap(), 500_000_000);
        assert_eq!(e[1].kind.as_deref(), Some("htb"));

        let neg = qdisc_msg(3, -1, 0, TC_H_ROOT, "tbf", &tbf);
        assert!(decode_tc_answer("test", &neg, 3).unwrap_err().to_string().contains("negative tcm_ifindex -1"));
        for cut in 1..d.len() / 2 {
            assert!(decode_tc_answer("test", &d[..cut], 3).is_err(), "cut at {cut} accepted");
        }
    }
}
