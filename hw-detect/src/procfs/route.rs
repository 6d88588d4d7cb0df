//! Routes from `/proc/net/route` (IPv4) and `/proc/net/ipv6_route`
//! (IPv6), as the kernel prints them (net/ipv4/fib_trie.c `fib_route_seq_show`,
//! net/ipv6/route.c `ipv6_route_native_seq_show`).
//!
//! The two files do not cover the same tables. `/proc/net/route` lists the
//! IPv4 main table only. `/proc/net/ipv6_route` walks every IPv6 table,
//! `local` included (a `local fd00::2` route per address, `ff00::/8`
//! multicast routes...); of those, routes flagged RTF_LOCAL (delivery to this
//! host) are skipped, the rest are kept whatever their table.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::model::{Known, Route};

/// RTF_UP (include/uapi/linux/route.h): the route is usable.
const RTF_UP: u32 = 0x0001;
/// RTF_REJECT (include/uapi/linux/route.h): unreachable/prohibit routes, such as IPv6's null entry.
const RTF_REJECT: u32 = 0x0200;
/// RTF_LOCAL (include/uapi/linux/ipv6_route.h): an IPv6 route to one of this
/// host's own addresses, from the `local` table.
const RTF_LOCAL: u32 = 0x8000_0000;

/// Every usable route (RTF_UP, not RTF_REJECT), IPv4 first: the IPv4 main
/// table, and the routes of every IPv6 table that `/proc/net/ipv6_route`
/// lists except local ones (RTF_LOCAL). A missing file (IPv6 disabled) is
/// skipped; an unreadable or malformed one makes the answer `Unknown`.
pub fn routes(root: &Path) -> Known<Vec<Route>> {
    let v4 = read_table(root, "net/route", parse_ipv4);
    let v6 = read_table(root, "net/ipv6_route", parse_ipv6);
    let (v4, v6) = match (v4, v6) {
        (Ok(None), Ok(None)) => {
            return Known::unknown("procfs: neither net/route nor net/ipv6_route exists");
        }
        (Ok(a), Ok(b)) => (a.unwrap_or_default(), b.unwrap_or_default()),
        (Err(a), Err(b)) => return Known::Unknown(format!("{a}; {b}")),
        (Err(e), _) | (_, Err(e)) => return Known::Unknown(e),
    };
    Known::Known(v4.into_iter().chain(v6).collect())
}

/// A table parser: the file's lines in, its usable routes or why not out.
type Parser = fn(&mut dyn Iterator<Item = io::Result<String>>) -> Result<Vec<Route>, String>;

/// Reads and parses one table; `Ok(None)` if the file does not exist.
fn read_table(root: &Path, name: &str, parse: Parser) -> Result<Option<Vec<Route>>, String> {
    let file = match File::open(root.join("proc").join(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("procfs {name}: {e}")),
    };
    parse(&mut BufReader::new(file).lines()).map(Some).map_err(|e| format!("procfs {name}: {e}"))
}

/// `/proc/net/route`: a header naming the columns, then one route per line;
/// addresses are hex in host byte order (0 is 0 either way), Metric is decimal.
fn parse_ipv4(lines: &mut dyn Iterator<Item = io::Result<String>>) -> Result<Vec<Route>, String> {
    let header = lines.next().ok_or("empty file (no header line)")?.map_err(|e| e.to_string())?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    let column = |name: &str| columns.iter().position(|c| *c == name).ok_or(format!("header lacks column {name}"));
    let (iface, dest, flags, metric, mask) =
        (column("Iface")?, column("Destination")?, column("Flags")?, column("Metric")?, column("Mask")?);
    let mut routes = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let lineno = n + 2;
        let field = |i: usize| fields.get(i).copied().ok_or(format!("line {lineno}: too few fields"));
        let hex = |i: usize, what: &str| {
            let f = field(i)?;
            u32::from_str_radix(f, 16).map_err(|_| format!("line {lineno}: {what} {f:?} is not hex"))
        };
        let (d, m, fl) = (hex(dest, "Destination")?, hex(mask, "Mask")?, hex(flags, "Flags")?);
        let metric_text = field(metric)?;
        let metric =
            metric_text.parse::<u32>().map_err(|_| format!("line {lineno}: Metric {metric_text:?} is not a number"))?;
        let name = field(iface)?;
        if usable(fl) && name != "*" {
            // Printed as the in-memory u32 of a network-order address.
            let dest = IpAddr::V4(Ipv4Addr::from(d.to_ne_bytes()));
            let prefix_len = m.count_ones() as u8;
            routes.push(Route { iface: name.to_owned(), dest, prefix_len, metric });
        }
    }
    Ok(routes)
}

/// `/proc/net/ipv6_route`: no header; ten fields per line: destination,
/// prefix length, source, source prefix length, next hop (addresses as 32 hex
/// digits, lengths as 2), then metric, refcount, use, flags (8 hex digits each)
/// and the device name. Lines of every table; local routes (RTF_LOCAL) are
/// skipped.
fn parse_ipv6(lines: &mut dyn Iterator<Item = io::Result<String>>) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let lineno = n + 1;
        let [dest, plen, _src, _src_plen, _gw, metric, _refcnt, _use, flags, iface] = fields[..] else {
            return Err(format!("line {lineno}: expected 10 fields, found {}", fields.len()));
        };
        if dest.len() != 32 || !dest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("line {lineno}: destination {dest:?} is not 32 hex digits"));
        }
        let hex = |f: &str, what: &str| {
            u32::from_str_radix(f, 16).map_err(|_| format!("line {lineno}: {what} {f:?} is not hex"))
        };
        let (plen, metric, flags) = (hex(plen, "prefix length")?, hex(metric, "metric")?, hex(flags, "flags")?);
        if plen > 128 {
            return Err(format!("line {lineno}: prefix length {plen} is over 128"));
        }
        if usable(flags) && flags & RTF_LOCAL == 0 {
            let bits = u128::from_str_radix(dest, 16).map_err(|_| format!("line {lineno}: bad destination"))?;
            let dest = IpAddr::V6(Ipv6Addr::from(bits));
            routes.push(Route { iface: iface.to_owned(), dest, prefix_len: plen as u8, metric });
        }
    }
    Ok(routes)
}

fn usable(flags: u32) -> bool {
    flags & RTF_UP != 0 && flags & RTF_REJECT == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_HEADER: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
    const Z: &str = "00000000000000000000000000000000";

    fn v4(text: &str) -> Result<Vec<Route>, String> {
        parse_ipv4(&mut text.lines().map(|l| Ok(l.to_owned())))
    }

    fn v6(text: &str) -> Result<Vec<Route>, String> {
        parse_ipv6(&mut text.lines().map(|l| Ok(l.to_owned())))
    }

    /// The default routes among parsed ones, as (interface, metric).
    fn defaults(parsed: Result<Vec<Route>, String>) -> Result<Vec<(String, u32)>, String> {
        Ok(parsed?.into_iter().filter(|r| r.prefix_len == 0).map(|r| (r.iface, r.metric)).collect())
    }

    fn route(iface: &str, metric: u32) -> (String, u32) {
        (iface.into(), metric)
    }

    #[test]
    fn ipv4_defaults_only() {
        let text = format!(
            "{V4_HEADER}\
             eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
             *\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth2\t00000000\t00000000\t0200\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth3\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n"
        );
        assert_eq!(defaults(v4(&text)), Ok(vec![route("eth1", 600), route("eth0", 100)]));
        let net = Route { iface: "eth0".into(), dest: "10.0.0.0".parse().unwrap(), prefix_len: 24, metric: 100 };
        assert_eq!(v4(&text).unwrap()[2], net, "host-order hex decoded to 10.0.0.0/24");
    }

    #[test]
    fn ipv4_columns_are_found_by_name() {
        let text = "Metric Iface Mask Flags Destination\n5 ppp0 00000000 0001 00000000\n";
        assert_eq!(defaults(v4(text)), Ok(vec![route("ppp0", 5)]));
    }

    #[test]
    fn ipv4_malformed() {
        assert_eq!(v4(""), Err("empty file (no header line)".into()));
        assert_eq!(v4("Iface Destination Flags Mask\n"), Err("header lacks column Metric".into()));
        let short = format!("{V4_HEADER}eth0\t00000000\t0100000A\n");
        assert_eq!(v4(&short), Err("line 2: too few fields".into()));
        let bad = format!("{V4_HEADER}eth0\tzz\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n");
        assert_eq!(v4(&bad), Err("line 2: Destination \"zz\" is not hex".into()));
        let bad = format!("{V4_HEADER}eth0\t00000000\t0100000A\t0003\t0\t0\t-1\t00000000\t0\t0\t0\n");
        assert_eq!(v4(&bad), Err("line 2: Metric \"-1\" is not a number".into()));
        // The header alone is a table with no routes.
        assert_eq!(v4(V4_HEADER), Ok(vec![]));
    }

    #[test]
    fn ipv6_defaults_only() {
        let text = format!(
            "fd000000000000000000000000000000 40 {Z} 00 {Z} 00000100 00000001 00000000 00000001     eth0\n\
             {Z} 00 {Z} 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
             {Z} 00 {Z} 00 {Z} ffffffff 00000001 00000000 00200200       lo\n\
             {Z} 00 {Z} 00 fe800000000000000000000000000001 00000064 00000001 00000000 00450003    wlan0\n"
        );
        assert_eq!(defaults(v6(&text)), Ok(vec![route("eth0", 1024), route("wlan0", 100)]));
        let net = Route { iface: "eth0".into(), dest: "fd00::".parse().unwrap(), prefix_len: 64, metric: 256 };
        assert_eq!(v6(&text).unwrap()[0], net);
    }

    #[test]
    fn ipv6_local_routes_are_skipped() {
        // What a host with fd00::2/64 on eth0 lists: the main table's fd00::/64
        // and fe80::/64, and from the local table its own addresses (flags
        // 80200001: RTF_LOCAL | RTF_NONEXTHOP | RTF_UP) and ff00::/8.
        let text = format!(
            "fd000000000000000000000000000000 40 {Z} 00 {Z} 00000100 00000001 00000000 00000001     eth0\n\
             fe800000000000000000000000000000 40 {Z} 00 {Z} 00000100 00000001 00000000 00000001     eth0\n\
             00000000000000000000000000000001 80 {Z} 00 {Z} 00000000 00000002 00000000 80200001       lo\n\
             fd000000000000000000000000000002 80 {Z} 00 {Z} 00000000 00000002 00000000 80200001     eth0\n\
             ff000000000000000000000000000000 08 {Z} 00 {Z} 00000100 00000001 00000000 00000001     eth0\n"
        );
        let got: Vec<(String, String)> =
            v6(&text).unwrap().into_iter().map(|r| (r.iface, format!("{}/{}", r.dest, r.prefix_len))).collect();
        let want = [("eth0", "fd00::/64"), ("eth0", "fe80::/64"), ("eth0", "ff00::/8")];
        assert_eq!(got, want.map(|(i, d)| (i.to_owned(), d.to_owned())));
        // The local route's own bits are not what drops it: without RTF_LOCAL it is kept.
        let not_local =
            format!("fd000000000000000000000000000002 80 {Z} 00 {Z} 00000000 00000002 00000000 00200001 eth0\n");
        assert_eq!(v6(&not_local).unwrap().len(), 1);
    }

    #[test]
    fn ipv6_malformed() {
        assert_eq!(v6("\n"), Ok(vec![]));
        assert_eq!(v6(&format!("{Z} 00 {Z}\n")), Err("line 1: expected 10 fields, found 3".into()));
        let short_dest = format!("0000 00 {Z} 00 {Z} 00000400 00000001 00000000 00000003 eth0\n");
        assert_eq!(v6(&short_dest), Err("line 1: destination \"0000\" is not 32 hex digits".into()));
        let bad_metric = format!("{Z} 00 {Z} 00 {Z} 0000040g 00000001 00000000 00000003 eth0\n");
        assert_eq!(v6(&bad_metric), Err("line 1: metric \"0000040g\" is not hex".into()));
        let extra = format!("{Z} 00 {Z} 00 {Z} 00000400 00000001 00000000 00000003 eth0 extra\n");
        assert_eq!(v6(&extra), Err("line 1: expected 10 fields, found 11".into()));
    }

    /// The interfaces carrying a default route in the tables under `root`.
    fn default_ifaces(root: &Path) -> Known<Vec<String>> {
        routes(root).map(|r| crate::model::default_route_interfaces(&r))
    }

    fn root_with(v4: Option<&str>, v6: Option<&str>) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("proc/net")).unwrap();
        if let Some(text) = v4 {
            std::fs::write(t.path().join("proc/net/route"), text).unwrap();
        }
        if let Some(text) = v6 {
            std::fs::write(t.path().join("proc/net/ipv6_route"), text).unwrap();
        }
        t
    }

    #[test]
    fn merged_by_metric_and_deduplicated() {
        let v4 = format!(
            "{V4_HEADER}wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        );
        let v6 = format!(
            "{Z} 00 {Z} 00 {Z} 00000400 00000001 00000000 00000003 eth0\n\
             {Z} 00 {Z} 00 {Z} 00000032 00000001 00000000 00000003 usb0\n"
        );
        let t = root_with(Some(&v4), Some(&v6));
        assert_eq!(default_ifaces(t.path()), Known::Known(vec!["usb0".into(), "eth0".into(), "wlan0".into()]));
    }

    #[test]
    fn missing_ipv6_table_is_skipped_and_no_default_is_empty() {
        let v4 = format!("{V4_HEADER}eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
        let t = root_with(Some(&v4), None);
        assert_eq!(default_ifaces(t.path()), Known::Known(vec![]));
    }

    #[test]
    fn missing_or_malformed_tables_are_unknown() {
        let t = root_with(None, None);
        assert_eq!(
            default_ifaces(t.path()),
            Known::Unknown("procfs: neither net/route nor net/ipv6_route exists".into())
        );
        let t = root_with(
            Some("garbage\n"),
            Some(&format!("{Z} 00 {Z} 00 {Z} 00000400 00000001 00000000 00000003 eth0\n")),
        );
        assert_eq!(default_ifaces(t.path()), Known::Unknown("procfs net/route: header lacks column Iface".into()));
        let t = root_with(Some(""), Some("x\n"));
        assert_eq!(
            default_ifaces(t.path()),
            Known::Unknown(
                "procfs net/route: empty file (no header line); procfs net/ipv6_route: line 1: expected 10 fields, found 1"
                    .into()
            )
        );
    }
}
