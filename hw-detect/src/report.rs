//! The human-readable probe report: the host, a table per interface, the
//! chosen tier, the profile and every step-down reason.

use std::fmt::Write;

use crate::model::{Capabilities, Interface, Known};
use crate::select::Selection;
use crate::sysfs::format_cpulist;

/// The offloads the report shows, by ethtool name, with a short label.
const OFFLOADS: &[(&str, &str)] = &[
    ("tx-generic-segmentation", "GSO"),
    ("rx-gro", "GRO"),
    ("tx-tcp-segmentation", "TSO"),
    ("tx-udp-segmentation", "UDP GSO"),
    ("rx-udp-gro-forwarding", "UDP GRO fwd"),
    ("tx-checksum-ip-generic", "tx csum"),
    ("tx-checksum-ipv4", "tx csum v4"),
    ("tx-checksum-ipv6", "tx csum v6"),
    ("rx-checksum", "rx csum"),
];

/// Renders the report; `only` limits the interface tables to one name.
pub fn render(caps: &Capabilities, sel: Option<&Selection>, only: Option<&str>) -> String {
    let mut out = String::new();
    let h = &caps.host;
    let _ = writeln!(out, "Host");
    row(&mut out, "kernel", show(&h.kernel, |k| k.release.clone()));
    row(
        &mut out,
        "CPU",
        show(&h.cpu, |c| {
            let caches: Vec<String> = c
                .caches
                .iter()
                .map(|l| {
                    let kind = match l.kind.as_str() {
                        "data" => "d",
                        "instruction" => "i",
                        _ => "",
                    };
                    format!("L{}{kind} {} x{}", l.level, l.size.map_or("?".into(), bytes), l.count)
                })
                .collect();
            format!(
                "{} package(s), {} core(s), {} thread(s), {} NUMA node(s); {}",
                c.packages,
                c.cores,
                c.threads,
                c.numa_nodes.len(),
                caches.join(", ")
            )
        }),
    );
    row(
        &mut out,
        "io_uring",
        show(&h.io_uring, |u| {
            if u.usable_by_stoq {
                format!("usable by STOQ ({} opcodes supported)", u.opcodes.len())
            } else {
                format!("not usable: {}", u.missing.join("; "))
            }
        }),
    );
    row(&mut out, "UDP GSO / GRO", format!("{} / {}", show(&h.udp.gso, yes), show(&h.udp.gro, yes)));
    row(
        &mut out,
        "capabilities",
        show(&h.privileges, |p| {
            format!(
                "CAP_NET_ADMIN {}, CAP_NET_RAW {}, CAP_BPF {}, CAP_SYS_ADMIN {}",
                yes(&p.net_admin),
                yes(&p.net_raw),
                yes(&p.bpf),
                yes(&p.sys_admin)
            )
        }),
    );
    row(&mut out, "bpffs mounted", show(&h.bpffs, yes));
    row(
        &mut out,
        "default route",
        show(&h.routes, |r| {
            let d = crate::model::default_route_interfaces(r);
            if d.is_empty() { "none".into() } else { d.join(", ") }
        }),
    );
    for i in caps.interfaces.iter().filter(|i| only.is_none_or(|n| n == i.name)) {
        let _ = writeln!(out);
        interface(&mut out, i);
    }
    if let Some(s) = sel {
        selection(&mut out, s);
    }
    out
}

fn interface(out: &mut String, i: &Interface) {
    let driver = show(&i.driver, |d| {
        let mut s = d.name.clone();
        if let Some(v) = &d.version {
            let _ = write!(s, " {v}");
        }
        if let Some(f) = &d.firmware {
            let _ = write!(s, ", firmware {f}");
        }
        if let Some(b) = &d.bus_info {
            let _ = write!(s, ", bus {b}");
        }
        s
    });
    let _ = writeln!(out, "Interface {} ({:?})", i.name, i.kind);
    row(out, "driver", driver);
    row(out, "state", show(&i.operstate, Clone::clone));
    row(out, "link speed", format!("{}, duplex {}", show(&i.link_bps(), |b| mbps(*b)), show(&i.duplex, Clone::clone)));
    row(out, "MTU", show(&i.mtu, u32::to_string));
    row(
        out,
        "queues",
        show(&i.queues, |q| {
            let combined = q
                .combined
                .map(|c| format!(" (combined {c} of {})", q.max_combined.map_or("?".into(), |m| m.to_string())));
            format!("rx {}, tx {}{}", q.rx, q.tx, combined.unwrap_or_default())
        }),
    );
    row(out, "rings", show(&i.rings, |r| format!("rx {} of {}, tx {} of {}", r.rx, r.rx_max, r.tx, r.tx_max)));
    row(
        out,
        "offloads",
        show(&i.offloads, |m| {
            let shown: Vec<String> = OFFLOADS
                .iter()
                .filter_map(|(name, label)| {
                    m.get(*name).map(|f| {
                        format!(
                            "{label} {}{}",
                            if f.active { "on" } else { "off" },
                            if f.fixed { " [fixed]" } else { "" }
                        )
                    })
                })
                .collect();
            shown.join(", ")
        }),
    );
    row(
        out,
        "hw timestamps",
        show(&i.timestamping, |t| {
            format!(
                "tx {}, rx {}{}",
                yes(&t.hw_tx),
                yes(&t.hw_rx),
                t.phc_index.map(|p| format!(", PHC {p}")).unwrap_or_default()
            )
        }),
    );
    row(out, "NUMA node", show(&i.numa_node, u32::to_string));
    row(out, "local CPUs", show(&i.local_cpus, |c| format_cpulist(c)));
    row(
        out,
        "XDP",
        show(&i.xdp, |x| {
            let segs = x.zc_max_segs.map(|n| format!(" (segments per frame: at most {n})")).unwrap_or_default();
            format!("native {}, redirect {}, zero-copy {}{segs}", yes(&x.native), yes(&x.redirect), yes(&x.zero_copy))
        }),
    );
    row(
        out,
        "root qdisc",
        show(&i.qdisc, |q| match q.rate_bps {
            Some(r) => format!("{} shaping to {}", q.kind, mbps(r)),
            None => format!("{} (no shaping)", q.kind),
        }),
    );
    row(out, "effective rate", i.effective_rate_bps().map_or("unknown".into(), mbps));
    let addrs: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
    row(out, "addresses", if addrs.is_empty() { "none".into() } else { addrs.join(", ") });
}

fn selection(out: &mut String, s: &Selection) {
    let p = &s.profile;
    let _ = writeln!(out);
    let iface = s.interface.as_deref().unwrap_or("none");
    let _ = writeln!(out, "Interface for the profile: {iface} ({})", s.interface_reason);
    let _ = writeln!(out, "Tier: {} ({})", s.tier, s.tier_reason);
    let _ = writeln!(out, "Profile");
    let sized = if p.rate_measured { "measured" } else { "nominal, not measured" };
    row(out, "sized for", format!("{} ({sized}), RTT {} ms", mbps(p.rate_bps), p.design_rtt.as_millis()));
    row(out, "backend", p.backend.to_string());
    row(
        out,
        "shards",
        match p.shards {
            1 => "1".to_owned(),
            n => format!("{n} for this host; per-core sharding is not built yet, so an endpoint runs 1"),
        },
    );
    row(out, "batch", format!("{} datagrams per call", p.batch));
    row(out, "socket buffers", format!("recv {}, send {}", bytes(p.recv_buffer as u64), bytes(p.send_buffer as u64)));
    row(
        out,
        "windows",
        format!(
            "connection {} (max {}), stream {} (max {}), stream buffer {}",
            bytes(p.initial_max_data),
            bytes(p.max_connection_window),
            bytes(p.initial_max_stream_data),
            bytes(p.max_stream_window),
            bytes(p.stream_buffer as u64)
        ),
    );
    let paced = match p.congestion_control {
        stoq_core::CongestionControl::Bbr2 => "paced by quiche",
        // quiche 0.30 computes departure times for BBRv2 only.
        _ => "not paced by quiche; the adapter caps a lossy connection",
    };
    let kernel = if p.kernel_pacing { "on (fq)" } else { "off" };
    row(out, "congestion", format!("{:?} ({paced}), kernel pacing {kernel}", p.congestion_control));
    row(out, "max UDP payload", format!("{} bytes", p.max_udp_payload));
    let a = &p.adaptation;
    row(
        out,
        "adapter bounds",
        format!(
            "window {}..{}, pacing {}..{}",
            bytes(a.min_window as u64),
            bytes(a.max_window as u64),
            mbps(a.min_pacing_rate),
            mbps(a.max_pacing_rate)
        ),
    );
    if s.steps.is_empty() {
        let _ = writeln!(out, "Step-downs: none");
    } else {
        let _ = writeln!(out, "Step-downs:");
        for w in &s.steps {
            let _ = writeln!(out, "  - {w}");
        }
    }
}

fn row(out: &mut String, label: &str, value: String) {
    let _ = writeln!(out, "  {label:<15} {value}");
}

fn show<T>(k: &Known<T>, f: impl FnOnce(&T) -> String) -> String {
    match k {
        Known::Known(v) => f(v),
        Known::Unknown(why) => format!("unknown ({why})"),
    }
}

fn yes(b: &bool) -> String {
    if *b { "yes" } else { "no" }.to_owned()
}

/// A rate for people: 90 Mbit/s, 2.5 Gbit/s.
pub fn mbps(bps: u64) -> String {
    if bps >= 1_000_000_000 {
        format!("{} Gbit/s", trim(bps as f64 / 1e9))
    } else {
        format!("{} Mbit/s", trim(bps as f64 / 1e6))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{} MiB", trim(n as f64 / (1u64 << 20) as f64)),
        n if n >= 1 << 10 => format!("{} KiB", trim(n as f64 / 1024.0)),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_cpu_lists_read_like_the_kernel_writes_them() {
        assert_eq!(mbps(90_000_000), "90 Mbit/s");
        assert_eq!(mbps(2_500_000_000), "2.5 Gbit/s");
        assert_eq!(mbps(10_000_000_000), "10 Gbit/s");
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(562_500), "549.316 KiB");
        assert_eq!(format_cpulist(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpulist(&[]), "");
    }
}
