//! From a host snapshot to a tier: each fixture tree (see fixtures/README.md)
//! probed offline with `probe_at`, then `select`, as an operator on that
//! host would get it. What only a running kernel can answer is unknown in a
//! snapshot, and the step-downs must say so rather than assume.

#![cfg(target_os = "linux")]

use std::path::Path;

use hw_detect::linux::netlink::xdp_features_from_bits;
use hw_detect::{Known, Overrides, Selection, probe_at, select};
use stoq_core::io::BackendKind;
use stoq_core::profile::Tier;

fn selection(tree: &str, edit: impl FnOnce(&mut hw_detect::Capabilities)) -> Selection {
    let mut caps = probe_at(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(tree));
    edit(&mut caps);
    select(&caps, &Overrides::default()).unwrap_or_else(|e| panic!("{tree}: {e}"))
}

#[test]
fn every_fixture_host_gets_the_tier_of_its_default_route_nic() {
    // (tree, interface, tier, reason contains, max UDP payload)
    let cases = [
        ("virtio-vm", "eth0", Tier::Standard, "link speed unknown", 1352),
        ("veth", "veth0", Tier::Enterprise, "link speed 10 Gbit/s", 1452),
        ("e1000e", "eth0", Tier::Standard, "link speed 1 Gbit/s", 1452),
        ("igc", "enp5s0", Tier::Performance, "link speed 2.5 Gbit/s", 1452),
        ("mlx5", "ens1f0np0", Tier::DataCenter, "link speed 25 Gbit/s", 8952),
        ("wifi", "wlp0s20f3", Tier::Home, "Wi-Fi link rate unknown", 1452),
    ];
    for (tree, iface, tier, why, payload) in cases {
        let s = selection(tree, |_| {});
        assert_eq!(s.interface.as_deref(), Some(iface), "{tree}: {}", s.interface_reason);
        assert_eq!(s.interface_reason, "it carries the default route", "{tree}");
        assert_eq!(s.tier, tier, "{tree}: {}", s.tier_reason);
        assert!(s.tier_reason.contains(why), "{tree}: {}", s.tier_reason);
        assert_eq!(s.profile.max_udp_payload, payload, "{tree}: from the MTU");
        // A snapshot cannot say whether io_uring works, so no tier that
        // prefers it gets it, and the reason is given.
        if s.profile.backend != tier.preferred_backend() {
            assert!(s.steps.iter().any(|w| w == "io_uring: io_uring support unknown"), "{tree}: {:?}", s.steps);
        }
        assert_ne!(s.profile.backend, BackendKind::IoUring, "{tree}");
    }
}

#[test]
fn the_mlx5_host_with_zero_copy_xdp_steps_down_only_for_what_is_missing() {
    // The XDP features mlx5 reports over netdev netlink (basic, redirect,
    // ndo-xmit, xsk-zerocopy, rx-sg, ndo-xmit-sg), decoded by the real decoder.
    let mlx5_xdp = xdp_features_from_bits(1 | 2 | 4 | 8 | 32 | 64);
    assert!(mlx5_xdp.zero_copy && mlx5_xdp.native);
    let s = selection("mlx5", |caps| {
        let nic = caps.interfaces.iter_mut().find(|i| i.name == "ens1f0np0").unwrap();
        nic.xdp = Known::Known(mlx5_xdp);
    });
    assert_eq!(s.tier, Tier::DataCenter);
    assert_eq!(
        s.steps[..1],
        ["AF_XDP: process capabilities unknown"],
        "zero-copy XDP is there, so the driver is not blamed"
    );
    // 24 queues on the NIC's node, whose local CPUs are 24-47 and 72-95.
    assert_eq!(s.profile.shards, 24);

    // Without the netlink answer the reason is the unknown, not a guess.
    let s = selection("mlx5", |_| {});
    assert!(s.steps.iter().any(|w| w.starts_with("AF_XDP: XDP support unknown (not probed")), "{:?}", s.steps);
}
