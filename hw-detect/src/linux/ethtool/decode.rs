//! Pure decoders for ethtool replies: fixed-size kernel structs and raw
//! byte buffers in, model types or a [`DecodeError`] out. No I/O here, so
//! every odd kernel answer (unterminated strings, short buffers, counts that
//! disagree, absurd sizes) is tested with hand-built input.

use std::collections::BTreeMap;

use crate::{Driver, Feature, Known, Queues, Rings, Timestamping};

use super::sys::{
    EthtoolChannels, EthtoolDrvinfo, EthtoolLinkSettings, EthtoolRingparam, EthtoolSsetInfo, EthtoolTsInfo,
};

/// `ETH_GSTRING_LEN`: each string of a string set is NUL-padded to this size.
pub(super) const ETH_GSTRING_LEN: usize = 32;
/// Bytes before the strings of an `ETHTOOL_GSTRINGS` reply (`cmd`, `string_set`, `len`).
pub(super) const GSTRINGS_HEADER: usize = 12;
/// Bytes before the blocks of an `ETHTOOL_GFEATURES` reply (`cmd`, `size`).
pub(super) const GFEATURES_HEADER: usize = 8;
/// Bytes of one `struct ethtool_get_features_block`.
pub(super) const FEATURE_BLOCK_LEN: usize = 16;
/// The most strings accepted from one string set; the kernel's feature set
/// has under a hundred, so more means a broken reply, not a bigger buffer.
pub(super) const MAX_STRINGS: usize = 4096;

/// `SPEED_UNKNOWN` (include/uapi/linux/ethtool.h).
const SPEED_UNKNOWN: u32 = u32::MAX;
/// `DUPLEX_HALF` (include/uapi/linux/ethtool.h).
const DUPLEX_HALF: u8 = 0x00;
/// `DUPLEX_FULL` (include/uapi/linux/ethtool.h).
const DUPLEX_FULL: u8 = 0x01;
/// `DUPLEX_UNKNOWN` (include/uapi/linux/ethtool.h).
const DUPLEX_UNKNOWN: u8 = 0xff;

/// A kernel answer that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(super) enum DecodeError {
    /// A fixed-size string field has no NUL terminator.
    #[error("string of {0} bytes is not NUL-terminated")]
    Unterminated(usize),
    /// A string is not UTF-8.
    #[error("string {0:?} is not UTF-8")]
    NotUtf8(String),
    /// The interface name cannot be put in `struct ifreq`.
    #[error("interface name {name:?} is not a Linux interface name: {why}")]
    BadIfname {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `ETHTOOL_GDRVINFO` returned an empty driver name.
    #[error("empty driver name")]
    EmptyDriver,
    /// The string set is not supported by the device.
    #[error("string set {0} not supported by the device")]
    NoStringSet(u32),
    /// A string set too large to be believed.
    #[error("string set of {count} strings refused (more than {MAX_STRINGS})")]
    TooManyStrings {
        /// The count the kernel reported.
        count: u64,
    },
    /// A reply shorter than its own header says.
    #[error("reply of {got} bytes, needs at least {needed}")]
    Short {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
    /// Two counts that must agree do not.
    #[error("{what}: expected {expected}, kernel answered {got}")]
    CountMismatch {
        /// Which count.
        what: &'static str,
        /// The count asked for or implied.
        expected: u64,
        /// The count found.
        got: u64,
    },
    /// The same feature name twice.
    #[error("feature {0:?} listed twice")]
    DuplicateFeature(String),
    /// The `ETHTOOL_GLINKSETTINGS` word-count handshake went wrong.
    #[error("link-mode word handshake: {0}")]
    Handshake(String),
}

/// The text of a NUL-terminated fixed-size C string.
pub(super) fn c_string(bytes: &[u8]) -> Result<String, DecodeError> {
    let end = bytes.iter().position(|&b| b == 0).ok_or(DecodeError::Unterminated(bytes.len()))?;
    String::from_utf8(bytes[..end].to_vec())
        .map_err(|_| DecodeError::NotUtf8(String::from_utf8_lossy(&bytes[..end]).into_owned()))
}

/// Like [`c_string`], with an empty string as `None` ("may be an empty string" in the uapi).
pub(super) fn optional_c_string(bytes: &[u8]) -> Result<Option<String>, DecodeError> {
    c_string(bytes).map(|s| if s.is_empty() { None } else { Some(s) })
}

/// `ifr_name` for `struct ifreq`: 1 to 15 bytes, no NUL, no `/`, NUL-padded.
pub(super) fn encode_ifname(name: &str) -> Result<[u8; libc::IFNAMSIZ], DecodeError> {
    let bad = |why| DecodeError::BadIfname { name: name.to_owned(), why };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(bad("longer than 15 bytes"));
    }
    if name.bytes().any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace()) {
        return Err(bad("contains NUL, '/' or whitespace"));
    }
    let mut out = [0u8; libc::IFNAMSIZ];
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(out)
}

/// [`Driver`] from `struct ethtool_drvinfo`; empty optional strings become `None`.
pub(super) fn decode_drvinfo(info: &EthtoolDrvinfo) -> Result<Driver, DecodeError> {
    let name = c_string(&info.driver)?;
    if name.is_empty() {
        return Err(DecodeError::EmptyDriver);
    }
    Ok(Driver {
        name,
        version: optional_c_string(&info.version)?,
        firmware: optional_c_string(&info.fw_version)?,
        bus_info: optional_c_string(&info.bus_info)?,
    })
}

/// The word count for the second `ETHTOOL_GLINKSETTINGS` call, from the
/// first call's answer (sent with 0 words): the kernel negates the count it wants.
pub(super) fn handshake_nwords(first: &EthtoolLinkSettings) -> Result<i8, DecodeError> {
    match first.link_mode_masks_nwords {
        n if n < 0 && n != i8::MIN => Ok(-n),
        n => Err(DecodeError::Handshake(format!("first call answered {n} words; expected a negative count"))),
    }
}

/// Checks that the second `ETHTOOL_GLINKSETTINGS` call completed the handshake.
pub(super) fn check_link_reply(reply: &EthtoolLinkSettings, nwords: i8) -> Result<(), DecodeError> {
    if reply.link_mode_masks_nwords != nwords {
        return Err(DecodeError::Handshake(format!(
            "sent {nwords} words, kernel answered {}",
            reply.link_mode_masks_nwords
        )));
    }
    Ok(())
}

/// Speed and duplex from a completed `ETHTOOL_GLINKSETTINGS`. `driver` names
/// the reporter in the reasons (e.g. "virtio_net on eth0").
pub(super) fn decode_link(settings: &EthtoolLinkSettings, driver: &str) -> (Known<u32>, Known<String>) {
    let speed = match settings.speed {
        SPEED_UNKNOWN => Known::unknown(format!("link speed not reported by driver {driver} (SPEED_UNKNOWN)")),
        0 => Known::unknown(format!("link speed not reported by driver {driver} (0: link down?)")),
        s if s > i32::MAX as u32 => Known::unknown(format!("driver {driver} reported an invalid link speed {s}")),
        s => Known::Known(s),
    };
    let duplex = match settings.duplex {
        DUPLEX_FULL => Known::Known("full".to_owned()),
        DUPLEX_HALF => Known::Known("half".to_owned()),
        DUPLEX_UNKNOWN => Known::unknown(format!("duplex not reported by driver {driver} (DUPLEX_UNKNOWN)")),
        d => Known::unknown(format!("driver {driver} reported an unrecognised duplex value {d:#04x}")),
    };
    (speed, duplex)
}

/// [`Queues`] from `struct ethtool_channels`: dedicated plus combined
/// channels per direction. A driver without combined channels
/// (`max_combined` 0, which `ethtool -l` prints as "n/a") has `None` there.
pub(super) fn decode_channels(ch: &EthtoolChannels) -> Queues {
    let has_combined = ch.max_combined > 0;
    Queues {
        rx: ch.rx_count.saturating_add(ch.combined_count),
        tx: ch.tx_count.saturating_add(ch.combined_count),
        combined: has_combined.then_some(ch.combined_count),
        max_combined: has_combined.then_some(ch.max_combined),
    }
}

/// [`Rings`] from `struct ethtool_ringparam`.
pub(super) fn decode_rings(ring: &EthtoolRingparam) -> Rings {
    Rings { rx: ring.rx_pending, tx: ring.tx_pending, rx_max: ring.rx_max_pending, tx_max: ring.tx_max_pending }
}

/// [`Timestamping`] from `struct ethtool_ts_info`; a negative PHC index means none.
pub(super) fn decode_ts_info(ts: &EthtoolTsInfo) -> Timestamping {
    Timestamping {
        hw_tx: ts.so_timestamping & libc::SOF_TIMESTAMPING_TX_HARDWARE != 0,
        hw_rx: ts.so_timestamping & libc::SOF_TIMESTAMPING_RX_HARDWARE != 0,
        phc_index: u32::try_from(ts.phc_index).ok(),
    }
}

/// The size of string set `set` from an `ETHTOOL_GSSET_INFO` reply that asked for that set alone.
pub(super) fn sset_count(info: &EthtoolSsetInfo, set: u32) -> Result<u32, DecodeError> {
    let bit = 1u64.checked_shl(set).unwrap_or(0);
    if bit == 0 || info.sset_mask & bit == 0 {
        return Err(DecodeError::NoStringSet(set));
    }
    Ok(info.data[0])
}

/// Refuses string counts past [`MAX_STRINGS`] before anything is allocated.
pub(super) fn check_string_count(count: u32) -> Result<usize, DecodeError> {
    match usize::try_from(count) {
        Ok(n) if n <= MAX_STRINGS => Ok(n),
        _ => Err(DecodeError::TooManyStrings { count: u64::from(count) }),
    }
}

fn ne_u32(buf: &[u8], at: usize) -> Result<u32, DecodeError> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or(DecodeError::Short { needed: at + 4, got: buf.len() })
}

/// The strings of an `ETHTOOL_GSTRINGS` reply. The buffer was sized for
/// `(len - 12) / 32` strings; the kernel's `len` must say the same.
pub(super) fn decode_gstrings(buf: &[u8]) -> Result<Vec<String>, DecodeError> {
    let len = ne_u32(buf, 8)?;
    let count = check_string_count(len)?;
    let room = buf.len().saturating_sub(GSTRINGS_HEADER) / ETH_GSTRING_LEN;
    if count != room {
        return Err(DecodeError::CountMismatch { what: "string count", expected: room as u64, got: len.into() });
    }
    buf[GSTRINGS_HEADER..].chunks_exact(ETH_GSTRING_LEN).map(c_string).collect()
}

/// One `struct ethtool_get_features_block`: the state of 32 features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FeatureBlock {
    /// Changeable features (`hw_features`).
    pub available: u32,
    /// Features asked for (`wanted_features`).
    pub requested: u32,
    /// Features on (`features`).
    pub active: u32,
    /// Features no device can change (`NETIF_F_NEVER_CHANGE`).
    pub never_changed: u32,
}

/// How many 32-feature blocks cover `features` features, at most enough for
/// [`MAX_STRINGS`]; [`decode_features`] refuses names the blocks do not cover.
pub(super) fn blocks_for(features: usize) -> u32 {
    u32::try_from(features.min(MAX_STRINGS).div_ceil(32)).unwrap_or(0)
}

/// The blocks of an `ETHTOOL_GFEATURES` reply. The kernel answers in `size`
/// how many blocks it has, but copies no more than the buffer's room.
pub(super) fn decode_gfeatures(buf: &[u8]) -> Result<Vec<FeatureBlock>, DecodeError> {
    let size = ne_u32(buf, 4)? as usize;
    let room = buf.len().saturating_sub(GFEATURES_HEADER) / FEATURE_BLOCK_LEN;
    let filled = size.min(room);
    (0..filled)
        .map(|i| {
            let at = GFEATURES_HEADER + i * FEATURE_BLOCK_LEN;
            Ok(FeatureBlock {
                available: ne_u32(buf, at)?,
                requested: ne_u32(buf, at + 4)?,
                active: ne_u32(buf, at + 8)?,
                never_changed: ne_u32(buf, at + 12)?,
            })
        })
        .collect()
}

/// Offload features by the kernel's own names (`ETH_SS_FEATURES` strings),
/// bit `i` of the blocks being `names[i]`. A feature is `fixed` when it is
/// not available (changeable) or never changes, as `ethtool -k` prints
/// "[fixed]". Empty names (unused bits) are skipped.
pub(super) fn decode_features(
    names: &[String],
    blocks: &[FeatureBlock],
) -> Result<BTreeMap<String, Feature>, DecodeError> {
    if names.len() > blocks.len() * 32 {
        return Err(DecodeError::CountMismatch {
            what: "feature blocks",
            expected: u64::from(blocks_for(names.len())),
            got: blocks.len() as u64,
        });
    }
    let mut out = BTreeMap::new();
    for (i, name) in names.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
        let (block, bit) = (&blocks[i / 32], 1u32 << (i % 32));
        let feature = Feature {
            active: block.active & bit != 0,
            fixed: block.available & bit == 0 || block.never_changed & bit != 0,
        };
        if out.insert(name.clone(), feature).is_some() {
            return Err(DecodeError::DuplicateFeature(name.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
