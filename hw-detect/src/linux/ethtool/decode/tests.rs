//! Decoders fed hand-built kernel replies, well-formed and malformed.

use super::*;

fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[..s.len()].copy_from_slice(s);
    out
}

fn gstrings_reply(len: u32, names: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&super::super::sys::ETHTOOL_GSTRINGS.to_ne_bytes());
    buf.extend_from_slice(&super::super::sys::ETH_SS_FEATURES.to_ne_bytes());
    buf.extend_from_slice(&len.to_ne_bytes());
    for name in names {
        buf.extend_from_slice(&fixed::<ETH_GSTRING_LEN>(name));
    }
    buf
}

fn gfeatures_reply(size: u32, blocks: &[[u32; 4]]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&super::super::sys::ETHTOOL_GFEATURES.to_ne_bytes());
    buf.extend_from_slice(&size.to_ne_bytes());
    for block in blocks {
        for word in block {
            buf.extend_from_slice(&word.to_ne_bytes());
        }
    }
    buf
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn c_string_stops_at_the_first_nul() {
    assert_eq!(c_string(b"virtio_net\0\0\0garbage").unwrap(), "virtio_net");
    assert_eq!(c_string(b"\0abc").unwrap(), "");
    assert_eq!(optional_c_string(b"\0\0\0\0").unwrap(), None);
    assert_eq!(optional_c_string(b"1.0.0\0").unwrap().as_deref(), Some("1.0.0"));
}

#[test]
fn c_string_refuses_unterminated_and_non_utf8() {
    assert_eq!(c_string(&[b'a'; 32]), Err(DecodeError::Unterminated(32)));
    assert_eq!(c_string(b""), Err(DecodeError::Unterminated(0)));
    assert!(matches!(c_string(b"\xff\xfe\0"), Err(DecodeError::NotUtf8(_))));
}

#[test]
fn ifname_is_nul_padded_and_bounded() {
    let name = encode_ifname("eth0").unwrap();
    assert_eq!(&name[..5], b"eth0\0");
    assert!(name[4..].iter().all(|&b| b == 0));
    assert_eq!(encode_ifname("fifteen-bytes-x").unwrap()[14], b'x');
    for bad in ["", "sixteen-bytes-xx", "a\0b", "a/b", "a b"] {
        assert!(matches!(encode_ifname(bad), Err(DecodeError::BadIfname { .. })), "{bad:?} accepted");
    }
}

#[test]
fn drvinfo_maps_empty_strings_to_none() {
    let info = EthtoolDrvinfo {
        driver: fixed(b"virtio_net"),
        version: fixed(b"1.0.0"),
        bus_info: fixed(b"0000:00:03.0"),
        ..Default::default()
    };
    let d = decode_drvinfo(&info).unwrap();
    assert_eq!(d.name, "virtio_net");
    assert_eq!(d.version.as_deref(), Some("1.0.0"));
    assert_eq!(d.firmware, None);
    assert_eq!(d.bus_info.as_deref(), Some("0000:00:03.0"));
}

#[test]
fn drvinfo_refuses_empty_or_unterminated_driver() {
    assert_eq!(decode_drvinfo(&EthtoolDrvinfo::default()), Err(DecodeError::EmptyDriver));
    let info = EthtoolDrvinfo { driver: fixed(b"veth"), fw_version: [b'7'; 32], ..Default::default() };
    assert_eq!(decode_drvinfo(&info), Err(DecodeError::Unterminated(32)));
}

#[test]
fn link_handshake_takes_the_negated_count() {
    let first = EthtoolLinkSettings { link_mode_masks_nwords: -4, ..Default::default() };
    assert_eq!(handshake_nwords(&first), Ok(4));
    for bad in [0, 3, i8::MIN] {
        let first = EthtoolLinkSettings { link_mode_masks_nwords: bad, ..Default::default() };
        assert!(matches!(handshake_nwords(&first), Err(DecodeError::Handshake(_))), "{bad} accepted");
    }
    let reply = EthtoolLinkSettings { link_mode_masks_nwords: 4, ..Default::default() };
    assert_eq!(check_link_reply(&reply, 4), Ok(()));
    let refused = EthtoolLinkSettings { link_mode_masks_nwords: -5, ..Default::default() };
    assert!(matches!(check_link_reply(&refused, 4), Err(DecodeError::Handshake(_))));
}

#[test]
fn link_speed_and_duplex() {
    let s = EthtoolLinkSettings { speed: 10_000, duplex: 1, ..Default::default() };
    assert_eq!(decode_link(&s, "veth on v0"), (Known::Known(10_000), Known::Known("full".to_owned())));
    let s = EthtoolLinkSettings { speed: 100, duplex: 0, ..Default::default() };
    assert_eq!(decode_link(&s, "e1000e on eno1"), (Known::Known(100), Known::Known("half".to_owned())));
}

#[test]
fn unknown_link_speed_and_duplex_name_the_driver() {
    let s = EthtoolLinkSettings { speed: u32::MAX, duplex: 0xff, ..Default::default() };
    let (speed, duplex) = decode_link(&s, "virtio_net on eth0");
    assert_eq!(speed, Known::unknown("link speed not reported by driver virtio_net on eth0 (SPEED_UNKNOWN)"));
    assert!(matches!(duplex, Known::Unknown(ref why) if why.contains("duplex not reported by driver virtio_net")));
    for odd in [0, 0x8000_0000] {
        let s = EthtoolLinkSettings { speed: odd, duplex: 7, ..Default::default() };
        let (speed, duplex) = decode_link(&s, "x on y");
        assert!(speed.get().is_none(), "speed {odd} accepted");
        assert!(matches!(duplex, Known::Unknown(ref why) if why.contains("0x07")));
    }
}

#[test]
fn channels_add_combined_to_each_direction() {
    let virtio = EthtoolChannels { max_combined: 8, combined_count: 4, ..Default::default() };
    assert_eq!(decode_channels(&virtio), Queues { rx: 4, tx: 4, combined: Some(4), max_combined: Some(8) });
    let veth = EthtoolChannels { max_rx: 4, max_tx: 4, rx_count: 4, tx_count: 2, ..Default::default() };
    assert_eq!(decode_channels(&veth), Queues { rx: 4, tx: 2, combined: None, max_combined: None });
    let mixed = EthtoolChannels { rx_count: 1, tx_count: 2, combined_count: 3, max_combined: 3, ..Default::default() };
    assert_eq!(decode_channels(&mixed), Queues { rx: 4, tx: 5, combined: Some(3), max_combined: Some(3) });
    let absurd = EthtoolChannels { rx_count: u32::MAX, combined_count: 1, max_combined: 1, ..Default::default() };
    assert_eq!(decode_channels(&absurd).rx, u32::MAX);
}

#[test]
fn rings_take_current_and_maximum() {
    let r = EthtoolRingparam {
        rx_pending: 256,
        tx_pending: 128,
        rx_max_pending: 4096,
        tx_max_pending: 2048,
        ..Default::default()
    };
    assert_eq!(decode_rings(&r), Rings { rx: 256, tx: 128, rx_max: 4096, tx_max: 2048 });
}

#[test]
fn timestamping_reads_hardware_bits_and_phc() {
    let soft = EthtoolTsInfo { so_timestamping: 0b1_1010, phc_index: -1, ..Default::default() };
    assert_eq!(decode_ts_info(&soft), Timestamping { hw_tx: false, hw_rx: false, phc_index: None });
    let hw = EthtoolTsInfo { so_timestamping: 0b101_0101, phc_index: 2, ..Default::default() };
    assert_eq!(decode_ts_info(&hw), Timestamping { hw_tx: true, hw_rx: true, phc_index: Some(2) });
    let rx_only = EthtoolTsInfo { so_timestamping: 0b100, phc_index: 0, ..Default::default() };
    assert_eq!(decode_ts_info(&rx_only), Timestamping { hw_tx: false, hw_rx: true, phc_index: Some(0) });
}

#[test]
fn sset_count_needs_the_set_bit() {
    let info = EthtoolSsetInfo { sset_mask: 1 << 4, data: [66], ..Default::default() };
    assert_eq!(sset_count(&info, 4), Ok(66));
    let missing = EthtoolSsetInfo { sset_mask: 0, data: [66], ..Default::default() };
    assert_eq!(sset_count(&missing, 4), Err(DecodeError::NoStringSet(4)));
    assert_eq!(sset_count(&info, 64), Err(DecodeError::NoStringSet(64)));
}

#[test]
fn absurd_string_counts_are_refused_before_allocating() {
    assert_eq!(check_string_count(0), Ok(0));
    assert_eq!(check_string_count(4096), Ok(4096));
    assert_eq!(check_string_count(4097), Err(DecodeError::TooManyStrings { count: 4097 }));
    assert_eq!(check_string_count(u32::MAX), Err(DecodeError::TooManyStrings { count: u64::from(u32::MAX) }));
    // A reply whose own `len` is absurd is refused the same way.
    assert_eq!(decode_gstrings(&gstrings_reply(1 << 30, &[])), Err(DecodeError::TooManyStrings { count: 1 << 30 }));
}

#[test]
fn gstrings_decode_the_kernel_names() {
    let buf = gstrings_reply(3, &[b"tx-generic-segmentation", b"rx-gro", b"rx-checksum"]);
    assert_eq!(decode_gstrings(&buf).unwrap(), names(&["tx-generic-segmentation", "rx-gro", "rx-checksum"]));
}

#[test]
fn gstrings_refuse_malformed_replies() {
    // The kernel's count disagrees with the room the buffer was sized for.
    let buf = gstrings_reply(3, &[b"a", b"b"]);
    assert_eq!(decode_gstrings(&buf), Err(DecodeError::CountMismatch { what: "string count", expected: 2, got: 3 }));
    // A 32-byte name with no NUL.
    let buf = gstrings_reply(2, &[b"rx-gro", &[b'x'; 32]]);
    assert_eq!(decode_gstrings(&buf), Err(DecodeError::Unterminated(32)));
    // Shorter than its header.
    assert_eq!(decode_gstrings(&[0; 7]), Err(DecodeError::Short { needed: 12, got: 7 }));
}

#[test]
fn gfeatures_copy_at_most_the_buffers_room() {
    let buf = gfeatures_reply(3, &[[1, 2, 3, 4], [5, 6, 7, 8]]);
    let blocks = decode_gfeatures(&buf).unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1], FeatureBlock { available: 5, requested: 6, active: 7, never_changed: 8 });
    // The kernel has fewer blocks than room: only those count.
    assert_eq!(decode_gfeatures(&gfeatures_reply(1, &[[1, 2, 3, 4], [0, 0, 0, 0]])).unwrap().len(), 1);
    assert_eq!(decode_gfeatures(&[0; 5]), Err(DecodeError::Short { needed: 8, got: 5 }));
    // A partial trailing block is not read.
    let mut buf = gfeatures_reply(2, &[[1, 2, 3, 4]]);
    buf.extend_from_slice(&[0; 8]);
    assert_eq!(decode_gfeatures(&buf).unwrap().len(), 1);
}

#[test]
fn features_are_fixed_like_ethtool_prints_them() {
    let list = names(&["tx-scatter-gather", "tx-generic-segmentation", "vlan-challenged", "rx-udp-gro-forwarding"]);
    // bit 0: on, not changeable -> fixed; bit 1: on, changeable; bit 2: on,
    // changeable but never_changed -> fixed; bit 3: off, changeable.
    let block = FeatureBlock { available: 0b1110, requested: 0b0011, active: 0b0111, never_changed: 0b0100 };
    let map = decode_features(&list, &[block]).unwrap();
    assert_eq!(map.len(), 4);
    assert_eq!(map["tx-scatter-gather"], Feature { active: true, fixed: true });
    assert_eq!(map["tx-generic-segmentation"], Feature { active: true, fixed: false });
    assert_eq!(map["vlan-challenged"], Feature { active: true, fixed: true });
    assert_eq!(map["rx-udp-gro-forwarding"], Feature { active: false, fixed: false });
}

#[test]
fn features_span_blocks_and_skip_empty_names() {
    let mut list: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    list[5] = String::new();
    let blocks = [
        FeatureBlock { available: u32::MAX, active: 1 << 31, ..Default::default() },
        FeatureBlock { available: 0, active: 1 << 7, ..Default::default() },
    ];
    let map = decode_features(&list, &blocks).unwrap();
    assert_eq!(map.len(), 39);
    assert!(!map.contains_key(""));
    assert_eq!(map["f31"], Feature { active: true, fixed: false });
    assert_eq!(map["f39"], Feature { active: true, fixed: true });
    assert_eq!(map["f38"], Feature { active: false, fixed: true });
    assert_eq!(map["f0"], Feature { active: false, fixed: false });
}

#[test]
fn features_refuse_too_few_blocks_and_duplicates() {
    let list: Vec<String> = (0..33).map(|i| format!("f{i}")).collect();
    assert_eq!(
        decode_features(&list, &[FeatureBlock::default()]),
        Err(DecodeError::CountMismatch { what: "feature blocks", expected: 2, got: 1 })
    );
    assert!(matches!(decode_features(&list, &[]), Err(DecodeError::CountMismatch { .. })));
    let dup = names(&["rx-gro", "rx-gro"]);
    assert_eq!(decode_features(&dup, &[FeatureBlock::default()]), Err(DecodeError::DuplicateFeature("rx-gro".into())));
}

#[test]
fn blocks_cover_every_feature() {
    assert_eq!(blocks_for(0), 0);
    assert_eq!(blocks_for(1), 1);
    assert_eq!(blocks_for(32), 1);
    assert_eq!(blocks_for(33), 2);
    assert_eq!(blocks_for(MAX_STRINGS), 128);
    assert_eq!(blocks_for(usize::MAX), 128);
}
