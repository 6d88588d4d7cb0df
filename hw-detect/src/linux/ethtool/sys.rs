//! The `SIOCETHTOOL` ioctl: the only unsafe code of the ethtool layer.
//!
//! Every ethtool command shares one ioctl, `SIOCETHTOOL`, whose `struct ifreq`
//! carries a pointer to a command-specific buffer that the kernel reads and
//! writes. [`siocethtool`] is the single raw call; each `get_*` function below
//! is the safe wrapper for one command and owns a buffer of exactly the size
//! the kernel touches for that command. Decoding what came back is left to
//! [`super::decode`], which is safe code tested with hand-built buffers.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use super::decode;

/// `ETHTOOL_GDRVINFO` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
/// `ETHTOOL_GRINGPARAM` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GRINGPARAM: u32 = 0x0000_0010;
/// `ETHTOOL_GSTRINGS` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GSTRINGS: u32 = 0x0000_001b;
/// `ETHTOOL_GSSET_INFO` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GSSET_INFO: u32 = 0x0000_0037;
/// `ETHTOOL_GFEATURES` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GFEATURES: u32 = 0x0000_003a;
/// `ETHTOOL_GCHANNELS` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;
/// `ETHTOOL_GET_TS_INFO` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GET_TS_INFO: u32 = 0x0000_0041;
/// `ETHTOOL_GLINKSETTINGS` (include/uapi/linux/ethtool.h).
pub(super) const ETHTOOL_GLINKSETTINGS: u32 = 0x0000_004c;
/// `ETH_SS_FEATURES` of `enum ethtool_stringset` (include/uapi/linux/ethtool.h).
pub(super) const ETH_SS_FEATURES: u32 = 4;

/// The most link-mode words a `__s8 link_mode_masks_nwords` can name.
pub(super) const MAX_LINK_MODE_NWORDS: usize = i8::MAX as usize;

/// `struct ethtool_drvinfo` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EthtoolDrvinfo {
    pub cmd: u32,
    pub driver: [u8; 32],
    pub version: [u8; 32],
    pub fw_version: [u8; 32],
    pub bus_info: [u8; 32],
    pub erom_version: [u8; 32],
    pub reserved2: [u8; 12],
    pub n_priv_flags: u32,
    pub n_stats: u32,
    pub testinfo_len: u32,
    pub eedump_len: u32,
    pub regdump_len: u32,
}

/// `struct ethtool_link_settings` without its trailing `link_mode_masks[]`
/// (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EthtoolLinkSettings {
    pub cmd: u32,
    pub speed: u32,
    pub duplex: u8,
    pub port: u8,
    pub phy_address: u8,
    pub autoneg: u8,
    pub mdio_support: u8,
    pub eth_tp_mdix: u8,
    pub eth_tp_mdix_ctrl: u8,
    pub link_mode_masks_nwords: i8,
    pub transceiver: u8,
    pub master_slave_cfg: u8,
    pub master_slave_state: u8,
    pub rate_matching: u8,
    pub reserved: [u32; 7],
}

/// `struct ethtool_link_settings` with room for the largest
/// `link_mode_masks[]` the `__s8` word count allows: the supported,
/// advertising and link-partner bitmaps (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct LinkSettingsBuf {
    pub base: EthtoolLinkSettings,
    pub link_mode_masks: [u32; 3 * MAX_LINK_MODE_NWORDS],
}

/// `struct ethtool_channels` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EthtoolChannels {
    pub cmd: u32,
    pub max_rx: u32,
    pub max_tx: u32,
    pub max_other: u32,
    pub max_combined: u32,
    pub rx_count: u32,
    pub tx_count: u32,
    pub other_count: u32,
    pub combined_count: u32,
}

/// `struct ethtool_ringparam` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EthtoolRingparam {
    pub cmd: u32,
    pub rx_max_pending: u32,
    pub rx_mini_max_pending: u32,
    pub rx_jumbo_max_pending: u32,
    pub tx_max_pending: u32,
    pub rx_pending: u32,
    pub rx_mini_pending: u32,
    pub rx_jumbo_pending: u32,
    pub tx_pending: u32,
}

/// `struct ethtool_sset_info` with room for one `data[]` entry, as used to
/// query a single string set (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EthtoolSsetInfo {
    pub cmd: u32,
    pub reserved: u32,
    pub sset_mask: u64,
    pub data: [u32; 1],
}

/// `struct ethtool_ts_info` (include/uapi/linux/ethtool.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct EthtoolTsInfo {
    pub cmd: u32,
    pub so_timestamping: u32,
    pub phc_index: i32,
    pub tx_types: u32,
    pub tx_reserved: [u32; 3],
    pub rx_filters: u32,
    pub rx_reserved: [u32; 3],
}

// The kernel copies exactly these many bytes; a wrong layout would be a memory bug.
const _: () = assert!(size_of::<EthtoolDrvinfo>() == 196);
const _: () = assert!(size_of::<EthtoolLinkSettings>() == 48);
const _: () = assert!(size_of::<EthtoolChannels>() == 36);
const _: () = assert!(size_of::<EthtoolRingparam>() == 36);
const _: () = assert!(size_of::<EthtoolSsetInfo>() >= 16 + 4);
const _: () = assert!(size_of::<EthtoolTsInfo>() == 44);

/// An `AF_INET`/`SOCK_DGRAM` socket: any socket works as the handle for
/// `SIOCETHTOOL`; it reaches the interfaces of the network namespace it was
/// created in.
#[derive(Debug)]
pub(super) struct EthtoolSocket(OwnedFd);

impl EthtoolSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub(super) fn open() -> io::Result<Self> {
        socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map(Self).map_err(io::Error::from)
    }
}

/// Issues `SIOCETHTOOL` on `ifname` with `data` as `ifr_data`.
///
/// # Safety
/// `data` must be valid for reads and writes of every byte the kernel
/// accesses for the ethtool command in its first `u32`, for the whole call.
unsafe fn siocethtool(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ], data: *mut c_void) -> io::Result<()> {
    let mut ifr = libc::ifreq {
        ifr_name: ifname.map(|b| b as libc::c_char),
        ifr_ifru: libc::__c_anonymous_ifr_ifru { ifru_slave: [0; libc::IFNAMSIZ] },
    };
    ifr.ifr_ifru.ifru_data = data.cast();
    // SAFETY: `ifr` is a live `struct ifreq` with a NUL-terminated name (the
    // caller's `ifname` comes from `decode::encode_ifname`), and its `ifr_data`
    // is `data`, which the caller guarantees is valid for this command.
    let rc = unsafe { libc::ioctl(sock.0.as_raw_fd(), libc::SIOCETHTOOL as libc::Ioctl, &mut ifr) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `ETHTOOL_GDRVINFO`: driver name, versions and bus address.
pub(super) fn get_drvinfo(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ]) -> io::Result<EthtoolDrvinfo> {
    let mut info = EthtoolDrvinfo { cmd: ETHTOOL_GDRVINFO, ..Default::default() };
    // SAFETY: `info` is an exclusively borrowed `struct ethtool_drvinfo`, the
    // exact object the kernel copies in and out for ETHTOOL_GDRVINFO.
    unsafe { siocethtool(sock, ifname, (&raw mut info).cast()) }?;
    Ok(info)
}

/// `ETHTOOL_GLINKSETTINGS` with `nwords` link-mode words per bitmap; with a
/// count the kernel does not use it answers the count it wants, negated.
pub(super) fn get_link_settings(
    sock: &EthtoolSocket,
    ifname: &[u8; libc::IFNAMSIZ],
    nwords: i8,
) -> io::Result<LinkSettingsBuf> {
    let mut buf = LinkSettingsBuf {
        base: EthtoolLinkSettings { cmd: ETHTOOL_GLINKSETTINGS, link_mode_masks_nwords: nwords, ..Default::default() },
        link_mode_masks: [0; 3 * MAX_LINK_MODE_NWORDS],
    };
    // SAFETY: the kernel reads and writes the 48-byte header and, only when
    // `nwords` equals its own positive word count, 3 * `nwords` u32 after it;
    // an `i8` is at most MAX_LINK_MODE_NWORDS, which `link_mode_masks` holds.
    unsafe { siocethtool(sock, ifname, (&raw mut buf).cast()) }?;
    Ok(buf)
}

/// `ETHTOOL_GCHANNELS`: queue (channel) counts and their maximums.
pub(super) fn get_channels(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ]) -> io::Result<EthtoolChannels> {
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    // SAFETY: `ch` is an exclusively borrowed `struct ethtool_channels`, the
    // exact object the kernel copies in and out for ETHTOOL_GCHANNELS.
    unsafe { siocethtool(sock, ifname, (&raw mut ch).cast()) }?;
    Ok(ch)
}

/// `ETHTOOL_GRINGPARAM`: descriptor ring sizes and their maximums.
pub(super) fn get_ringparam(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ]) -> io::Result<EthtoolRingparam> {
    let mut ring = EthtoolRingparam { cmd: ETHTOOL_GRINGPARAM, ..Default::default() };
    // SAFETY: `ring` is an exclusively borrowed `struct ethtool_ringparam`,
    // the exact object the kernel copies in and out for ETHTOOL_GRINGPARAM.
    unsafe { siocethtool(sock, ifname, (&raw mut ring).cast()) }?;
    Ok(ring)
}

/// `ETHTOOL_GSSET_INFO` for the one string set `set` (0..64).
pub(super) fn get_sset_info(
    sock: &EthtoolSocket,
    ifname: &[u8; libc::IFNAMSIZ],
    set: u32,
) -> io::Result<EthtoolSsetInfo> {
    let sset_mask = 1u64.checked_shl(set).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut info = EthtoolSsetInfo { cmd: ETHTOOL_GSSET_INFO, sset_mask, ..Default::default() };
    // SAFETY: with one bit set in `sset_mask` the kernel reads the 16-byte
    // header and writes it back plus at most one u32 of `data`, all inside
    // the exclusively borrowed `info`.
    unsafe { siocethtool(sock, ifname, (&raw mut info).cast()) }?;
    Ok(info)
}

/// `ETHTOOL_GSTRINGS` for `ETH_SS_FEATURES`: the raw reply (12-byte header,
/// then one `ETH_GSTRING_LEN`-byte string per feature), sized by a
/// `ETHTOOL_GSSET_INFO` asked first.
pub(super) fn get_feature_strings(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ]) -> io::Result<Vec<u8>> {
    let info = get_sset_info(sock, ifname, ETH_SS_FEATURES)?;
    let count = decode::sset_count(&info, ETH_SS_FEATURES)
        .and_then(decode::check_string_count)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut buf = vec![0u8; decode::GSTRINGS_HEADER + count * decode::ETH_GSTRING_LEN];
    buf[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    buf[4..8].copy_from_slice(&ETH_SS_FEATURES.to_ne_bytes());
    // SAFETY: the kernel writes the header and then as many strings as its
    // count of the set, without reading our `len`. For ETH_SS_FEATURES that
    // count is the build-time constant NETDEV_FEATURE_COUNT, which the
    // GSSET_INFO above just reported as `count`, and `buf` holds that many.
    unsafe { siocethtool(sock, ifname, buf.as_mut_ptr().cast()) }?;
    Ok(buf)
}

/// `ETHTOOL_GFEATURES` with room for `blocks` blocks of 32 features: the raw
/// reply (8-byte header, then 16-byte blocks).
pub(super) fn get_features(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ], blocks: u32) -> io::Result<Vec<u8>> {
    let len = usize::try_from(blocks)
        .ok()
        .and_then(|b| b.checked_mul(decode::FEATURE_BLOCK_LEN))
        .and_then(|b| b.checked_add(decode::GFEATURES_HEADER))
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; len];
    buf[0..4].copy_from_slice(&ETHTOOL_GFEATURES.to_ne_bytes());
    buf[4..8].copy_from_slice(&blocks.to_ne_bytes());
    // SAFETY: the kernel reads our `size` (`blocks`) and writes the header
    // plus at most `blocks` blocks of 16 bytes, which is `buf`'s length.
    unsafe { siocethtool(sock, ifname, buf.as_mut_ptr().cast()) }?;
    Ok(buf)
}

/// `ETHTOOL_GET_TS_INFO`: timestamping capabilities and PTP clock index.
pub(super) fn get_ts_info(sock: &EthtoolSocket, ifname: &[u8; libc::IFNAMSIZ]) -> io::Result<EthtoolTsInfo> {
    let mut ts = EthtoolTsInfo { cmd: ETHTOOL_GET_TS_INFO, ..Default::default() };
    // SAFETY: `ts` is an exclusively borrowed `struct ethtool_ts_info`, the
    // exact object the kernel copies in and out for ETHTOOL_GET_TS_INFO.
    unsafe { siocethtool(sock, ifname, (&raw mut ts).cast()) }?;
    Ok(ts)
}
