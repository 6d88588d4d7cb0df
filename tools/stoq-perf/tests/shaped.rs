//! Tiers on real shaped links: a veth pair between two network namespaces,
//! both ends shaped with `tbf`, must probe as the tier of the shaped rate,
//! and a verified stoq-perf transfer with the profile the probe chose
//! (`--tier auto` on both ends) must reach at least 90% of that rate.
//! Every program runs under `ip netns exec`, as an operator would run it, so
//! the probe sees the namespace's own interfaces. Needs root (CI is root).

mod common;

use std::process::Command;
use std::time::Instant;

use common::{PERF, ServerProcess, json_of, probe};
use serde_json::Value;
use stoq_testbed::NetnsPair;

/// The transfers measure goodput against the shaped rate: nothing else in
/// this binary may run beside them (a probe alongside cost the 90 Mbit/s
/// run a sixth of its rate on this 2-core host).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A `stoq-perf server --tier auto` in namespace 0.
fn start_server(net: &NetnsPair, pki: &std::path::Path) -> ServerProcess {
    let listen = format!("{}:4433", net.addrs[0]);
    ServerProcess::spawn(
        net.command(0, PERF).args(["server", "--tier", "auto", "--listen", &listen, "--dev-pki"]).arg(pki),
    )
}

#[test]
fn shaped_links_probe_as_their_tier_and_carry_90_percent_of_the_rate() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::fs::metadata(PERF).expect("the stoq-perf binary");
    // (tc rate, bit/s, tier, bytes to move: None = probe only)
    let cases: [(&str, u64, &str, Option<u64>); 4] = [
        ("90mbit", 90_000_000, "slow", Some(24 << 20)),
        ("500mbit", 500_000_000, "home", Some(128 << 20)),
        ("2gbit", 2_000_000_000, "standard", Some(512 << 20)),
        ("5gbit", 5_000_000_000, "performance", None),
    ];
    let Some(net) = NetnsPair::create() else { return };
    let pki = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (rate, bps, tier, bytes) in cases {
        for i in 0..2 {
            net.shape(i, rate, bps).unwrap();
        }
        for i in 0..2 {
            let p = probe(&net, i);
            let sel = &p["selection"];
            assert_eq!(sel["tier"], tier, "{rate} on end {i}: {}", sel["tier_reason"]);
            assert_eq!(sel["effective_rate_bps"], bps, "{rate} on end {i}");
            let qdisc = &p["capabilities"]["interfaces"][0]["qdisc"]["known"];
            assert_eq!((qdisc["kind"].as_str(), qdisc["rate_bps"].as_u64()), (Some("tbf"), Some(bps)));
        }
        let Some(bytes) = bytes else { continue };
        let server = start_server(&net, pki.path());
        let started = Instant::now();
        let out = net
            .command(1, PERF)
            .args(["client", &format!("{}:4433", net.addrs[0]), "--tier", "auto", "--json", "--mode", "download"])
            .args(["--bytes", &bytes.to_string(), "--ca"])
            .arg(pki.path().join("ca.pem"))
            .output()
            .unwrap();
        drop(server);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        let r = json_of(out, "stoq-perf client");
        assert_eq!(r["verified"], true);
        assert_eq!(r["bytes_download"], bytes, "every byte arrived and was checked");
        assert_eq!(r["tier"], tier, "the client ran with the probed profile: {said}");
        let goodput = r["goodput_gbps"].as_f64().unwrap() * 1e9;
        let share = goodput / bps as f64;
        eprintln!(
            "{rate}: {tier}, {} backend, {:.1} Mbit/s verified = {:.1}% of the shaped rate, {} packets lost, {:.1} s",
            r["backend"],
            goodput / 1e6,
            share * 100.0,
            r["packets_lost"],
            started.elapsed().as_secs_f64()
        );
        if share < 0.9 {
            failures.push(format!("{rate}: {:.1} Mbit/s is {:.1}% of the shaped rate", goodput / 1e6, share * 100.0));
        }
    }
    assert!(failures.is_empty(), "below 90% of the shaped rate: {failures:?}");
}

#[test]
fn an_unprivileged_probe_reports_missing_capabilities_and_still_chooses_a_profile() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Clearing the bounding set needs CAP_SETPCAP.
    if !stoq_testbed::root_or_skip("an unprivileged probe (setpriv --bounding-set needs root)") {
        return;
    }
    // Clearing the bounding set leaves a root process no capabilities after
    // exec: what an unprivileged operator gets.
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--", PERF, "probe", "--json", "--tier", "datacenter"])
        .output()
        .expect("setpriv (util-linux)");
    let p = json_of(out, "unprivileged stoq-perf probe");
    let privileges = &p["capabilities"]["host"]["privileges"]["known"];
    for cap in ["net_admin", "net_raw", "bpf", "sys_admin"] {
        assert_eq!(privileges[cap], false, "{cap}: {privileges}");
    }
    let sel = &p["selection"];
    assert_eq!(sel["tier"], "datacenter");
    let steps: Vec<&str> = sel["steps"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(steps.contains(&"AF_XDP: no CAP_NET_ADMIN"), "{steps:?}");
    assert!(steps.contains(&"AF_XDP: no CAP_BPF"), "{steps:?}");
    assert!(sel["profile"]["backend"].is_string(), "a profile is still chosen: {sel}");
}
