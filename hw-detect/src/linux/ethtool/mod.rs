//! What the kernel's ethtool ioctls say about one interface: driver, link
//! speed and duplex, queue counts, ring sizes, offload features and
//! hardware timestamping.
//!
//! The legacy `SIOCETHTOOL` ioctl is used rather than ethtool netlink because
//! one socket and a handful of fixed-layout calls answer everything STOQ
//! needs, on every kernel it runs on. The layer has three parts:
//! - `sys`: the ioctl itself, one safe wrapper per ethtool command (the only
//!   unsafe code);
//! - `decode`: pure functions from kernel structs and raw replies to model
//!   types, tested with hand-built and malformed buffers;
//! - [`query`]: runs every command and turns each failure into
//!   [`Known::Unknown`] naming the command, the interface and the errno, so
//!   one command the driver lacks (veth has no rings, lo no driver info)
//!   leaves the other fields intact. Falling back to sysfs is the caller's job.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::{Driver, Feature, Known, Queues, Rings, Timestamping};

mod decode;
#[allow(unsafe_code)]
mod sys;
#[cfg(test)]
mod tests;

use sys::EthtoolSocket;

/// Everything the ethtool ioctls report for one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthtoolInfo {
    /// `ETHTOOL_GDRVINFO`: driver name, version, firmware and bus address.
    pub driver: Known<Driver>,
    /// `ETHTOOL_GLINKSETTINGS`: link speed in Mbit/s.
    pub speed_mbps: Known<u32>,
    /// `ETHTOOL_GLINKSETTINGS`: "full" or "half".
    pub duplex: Known<String>,
    /// `ETHTOOL_GCHANNELS`: queue counts.
    pub queues: Known<Queues>,
    /// `ETHTOOL_GRINGPARAM`: descriptor ring sizes.
    pub rings: Known<Rings>,
    /// `ETHTOOL_GSTRINGS` + `ETHTOOL_GFEATURES`: offload features by kernel name.
    pub offloads: Known<BTreeMap<String, Feature>>,
    /// `ETHTOOL_GET_TS_INFO`: hardware timestamping.
    pub timestamping: Known<Timestamping>,
}

impl EthtoolInfo {
    /// Every field unknown for the same reason.
    pub(crate) fn all_unknown(why: &str) -> Self {
        EthtoolInfo {
            driver: Known::unknown(why),
            speed_mbps: Known::unknown(why),
            duplex: Known::unknown(why),
            queues: Known::unknown(why),
            rings: Known::unknown(why),
            offloads: Known::unknown(why),
            timestamping: Known::unknown(why),
        }
    }
}

/// Asks the kernel, through `SIOCETHTOOL` on an `AF_INET` datagram socket of
/// the calling thread's network namespace, everything ethtool knows about
/// `ifname`. Never fails as a whole: each field is known or says why not.
pub fn query(ifname: &str) -> EthtoolInfo {
    let name = match decode::encode_ifname(ifname) {
        Ok(name) => name,
        Err(e) => return EthtoolInfo::all_unknown(&format!("ethtool: {e}")),
    };
    let sock = match EthtoolSocket::open() {
        Ok(sock) => sock,
        Err(e) => return EthtoolInfo::all_unknown(&format!("ethtool: AF_INET datagram socket for {ifname}: {e}")),
    };
    let q = Query { sock: &sock, name: &name, ifname };

    let driver = q.driver();
    let who = match driver.get() {
        Some(d) => format!("{} on {ifname}", d.name),
        None => format!("of {ifname}"),
    };
    let (speed_mbps, duplex) = q.link(&who);
    EthtoolInfo {
        driver,
        speed_mbps,
        duplex,
        queues: q.queues(),
        rings: q.rings(),
        offloads: q.offloads(),
        timestamping: q.timestamping(),
    }
}

/// One interface's ethtool commands, each turning its failure into a reason.
struct Query<'a> {
    sock: &'a EthtoolSocket,
    name: &'a [u8; libc::IFNAMSIZ],
    ifname: &'a str,
}

impl Query<'_> {
    /// "ETHTOOL_GCHANNELS on veth0: Operation not supported (os error 95)".
    fn why(&self, cmd: &str, e: impl Display) -> String {
        format!("{cmd} on {}: {e}", self.ifname)
    }

    fn driver(&self) -> Known<Driver> {
        match sys::get_drvinfo(self.sock, self.name) {
            Ok(info) => decode::decode_drvinfo(&info).map_err(|e| self.why("ETHTOOL_GDRVINFO", e)).into(),
            Err(e) => Known::Unknown(self.why("ETHTOOL_GDRVINFO", e)),
        }
    }

    /// Speed and duplex, after the link-mode word-count handshake.
    fn link(&self, who: &str) -> (Known<u32>, Known<String>) {
        let settings = sys::get_link_settings(self.sock, self.name, 0)
            .map_err(|e| e.to_string())
            .and_then(|first| decode::handshake_nwords(&first.base).map_err(|e| e.to_string()))
            .and_then(|nwords| {
                let reply = sys::get_link_settings(self.sock, self.name, nwords).map_err(|e| e.to_string())?;
                decode::check_link_reply(&reply.base, nwords).map_err(|e| e.to_string())?;
                Ok(reply.base)
            });
        match settings {
            Ok(base) => decode::decode_link(&base, who),
            Err(e) => {
                let why = self.why("ETHTOOL_GLINKSETTINGS", e);
                (Known::unknown(&why), Known::Unknown(why))
            }
        }
    }

    fn queues(&self) -> Known<Queues> {
        sys::get_channels(self.sock, self.name)
            .map(|ch| decode::decode_channels(&ch))
            .map_err(|e| self.why("ETHTOOL_GCHANNELS", e))
            .into()
    }

    fn rings(&self) -> Known<Rings> {
        sys::get_ringparam(self.sock, self.name)
            .map(|r| decode::decode_rings(&r))
            .map_err(|e| self.why("ETHTOOL_GRINGPARAM", e))
            .into()
    }

    /// Feature names (`ETHTOOL_GSSET_INFO` + `ETHTOOL_GSTRINGS`), then their
    /// state (`ETHTOOL_GFEATURES`).
    fn offloads(&self) -> Known<BTreeMap<String, Feature>> {
        let names = match sys::get_feature_strings(self.sock, self.name) {
            Ok(buf) => decode::decode_gstrings(&buf).map_err(|e| self.why("ETHTOOL_GSTRINGS", e)),
            Err(e) => Err(self.why("ETHTOOL_GSSET_INFO/ETHTOOL_GSTRINGS (features)", e)),
        };
        let names = match names {
            Ok(names) => names,
            Err(why) => return Known::Unknown(why),
        };
        match sys::get_features(self.sock, self.name, decode::blocks_for(names.len())) {
            Ok(buf) => decode::decode_gfeatures(&buf)
                .and_then(|blocks| decode::decode_features(&names, &blocks))
                .map_err(|e| self.why("ETHTOOL_GFEATURES", e))
                .into(),
            Err(e) => Known::Unknown(self.why("ETHTOOL_GFEATURES", e)),
        }
    }

    fn timestamping(&self) -> Known<Timestamping> {
        sys::get_ts_info(self.sock, self.name)
            .map(|ts| decode::decode_ts_info(&ts))
            .map_err(|e| self.why("ETHTOOL_GET_TS_INFO", e))
            .into()
    }
}
