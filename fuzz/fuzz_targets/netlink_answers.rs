//! hw-detect's netlink decoders on arbitrary datagrams (what a netlink
//! socket could hand back): `decode_netdev_answer`, `decode_family_answer`,
//! `decode_tc_answer`, the tbf/htb option decoders and the route and
//! neighbour lookups the AF_XDP backend makes (`decode_route_answer`,
//! `decode_neighbour_answer`) never panic, and what they return is
//! consistent with the bytes.
#![no_main]

use hw_detect::linux::netlink as nl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The seeds are kernel answers to requests with sequence number 0.
    if let Ok(devs) = nl::decode_netdev_answer(data, 0) {
        for bits in devs.iter().filter_map(|d| d.xdp_features) {
            let f = nl::xdp_features_from_bits(bits);
            assert_eq!(f.flags.len(), bits.count_ones() as usize);
            assert_eq!((f.native, f.redirect, f.zero_copy), (bits & 1 != 0, bits & 2 != 0, bits & 8 != 0));
        }
    }
    let _ = nl::decode_family_answer(data, 0);
    if let Ok(entries) = nl::decode_tc_answer("fuzz", data, 0) {
        for opts in entries.iter().filter_map(|e| e.options.as_deref()) {
            options(opts);
        }
        for e in &entries {
            if let Ok(Some(sum)) = nl::htb_root_rate_bps(e.handle, &entries) {
                assert_eq!(sum % 8, 0);
            }
        }
    }
    options(data);
    for dst in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"] {
        let _ = nl::decode_route_answer(dst.parse().unwrap(), data, 0);
    }
    if let Ok(Some(n)) = nl::decode_neighbour_answer(data, 0) {
        // A neighbour without an address is never usable for framing.
        assert!(!n.usable() || n.mac.is_some(), "{n:?}");
    }
});

/// Rates come from whole bytes/s, so they are multiples of 8 bit/s.
fn options(opts: &[u8]) {
    if let Ok(r) = nl::tbf_rate_bps(opts) {
        assert_eq!(r % 8, 0);
    }
    if let Ok(r) = nl::htb_class_rate_bps(opts) {
        assert_eq!(r % 8, 0);
    }
}
