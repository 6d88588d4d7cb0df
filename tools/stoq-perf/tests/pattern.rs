//! The payload pattern, checked at random offsets and chunk boundaries.

mod common;

use common::Rng;
use stoq_perf::pattern::{Generator, Verifier, byte_at, fill, verify};

#[test]
fn random_offsets_and_lengths_match_the_definition() {
    let mut rng = Rng(1);
    for _ in 0..500 {
        let seed = rng.next();
        let offset = rng.next() >> rng.below(64);
        let len = rng.below(300) as usize;
        let mut buf = vec![0u8; len];
        fill(seed, offset, &mut buf);
        for (i, &b) in buf.iter().enumerate() {
            assert_eq!(b, byte_at(seed, offset + i as u64), "seed {seed} offset {offset} byte {i}");
        }
        assert_eq!(verify(seed, offset, &buf), Ok(()));
    }
}

#[test]
fn generated_in_random_chunks_verifies_in_other_random_chunks() {
    let mut rng = Rng(2);
    let seed = rng.next();
    let total = 1 << 20;
    let mut g = Generator::new(seed);
    let mut payload = vec![0u8; total];
    let mut at = 0;
    while at < total {
        let n = (1 + rng.below(9000) as usize).min(total - at);
        g.next_chunk(&mut payload[at..at + n]);
        at += n;
    }
    let mut whole = vec![0u8; total];
    fill(seed, 0, &mut whole);
    assert_eq!(payload, whole, "chunked generation differs from one-shot generation");

    let mut v = Verifier::new(seed);
    let mut at = 0;
    while at < total {
        let n = (1 + rng.below(7000) as usize).min(total - at);
        v.push(&payload[at..at + n]).expect("intact payload verifies");
        at += n;
    }
    assert_eq!(v.verified(), total as u64);
}

#[test]
fn a_flipped_byte_is_found_at_its_offset_whatever_the_chunking() {
    let mut rng = Rng(3);
    let seed = rng.next();
    let mut payload = vec![0u8; 200_000];
    fill(seed, 0, &mut payload);
    for _ in 0..50 {
        let pos = rng.below(payload.len() as u64) as usize;
        let mut bad = payload.clone();
        bad[pos] = bad[pos].wrapping_add(1 + rng.below(255) as u8);
        let mut v = Verifier::new(seed);
        let mut at = 0;
        let err = loop {
            let n = (1 + rng.below(5000) as usize).min(bad.len() - at);
            if let Err(m) = v.push(&bad[at..at + n]) {
                break m;
            }
            at += n;
            assert!(at < bad.len(), "corruption at {pos} was not detected");
        };
        assert_eq!(err.offset, pos as u64);
        assert_eq!(err.expected, payload[pos]);
        assert_eq!(err.found, bad[pos]);
        assert_eq!(v.verified(), pos as u64);
    }
}

/// Run with `cargo test --release -p stoq-perf --test pattern -- --ignored --nocapture`.
#[test]
#[ignore = "throughput figure; meaningful only in release builds"]
fn pattern_throughput() {
    let mut chunk = vec![0u8; 64 << 10];
    let rounds = 32 * 1024; // 2 GiB in 64 KiB chunks
    let t = std::time::Instant::now();
    for r in 0..rounds {
        fill(7, (r * chunk.len()) as u64 + 3, &mut chunk);
        std::hint::black_box(&chunk);
    }
    let gen_gbs = (rounds * chunk.len()) as f64 / t.elapsed().as_secs_f64() / 1e9;

    let mut payload = vec![0u8; 64 << 20];
    fill(7, 3, &mut payload);
    let t = std::time::Instant::now();
    for _ in 0..32 {
        let mut v = Verifier::new(7);
        v.push(&[byte_at(7, 0), byte_at(7, 1), byte_at(7, 2)]).unwrap();
        for c in payload.chunks(64 << 10) {
            v.push(std::hint::black_box(c)).unwrap();
        }
    }
    let ver_gbs = (32 * payload.len()) as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!("pattern generate: {gen_gbs:.2} GB/s, verify: {ver_gbs:.2} GB/s (64 KiB chunks, unaligned offset)");
}
