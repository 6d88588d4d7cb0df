//! Retry and stateless-reset tokens: one HMAC-SHA256 each, paid per Retry
//! sent, per token-bearing Initial received and per connection ID issued.
//!
//! Throughput is in tokens. `reset_token` is a single HMAC over 8 bytes, the
//! baseline the Retry paths add their encoding and parsing to.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stoq_core::cid::CID_LEN;
use stoq_core::token::TokenKeys;

fn bench_tokens(c: &mut Criterion) {
    let keys = TokenKeys::generate(Duration::from_secs(3600)); // outlives the run
    let peer = SocketAddr::from(([192, 0, 2, 1], 50_000));
    let odcid = [0x11; 16];
    let rscid = [0x22; CID_LEN];
    let mut token = Vec::with_capacity(64);
    keys.mint_retry(peer, &odcid, &rscid, &mut token);
    let mut forged = token.clone();
    *forged.last_mut().expect("tokens are not empty") ^= 1;

    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reset_token", |b| b.iter(|| keys.reset_token(black_box(&rscid))));
    let mut out = Vec::with_capacity(64);
    g.bench_function("retry_mint", |b| {
        b.iter(|| {
            keys.mint_retry(peer, black_box(&odcid), black_box(&rscid), &mut out);
            out.len()
        })
    });
    g.bench_function("retry_validate_ok", |b| {
        b.iter(|| keys.validate_retry(peer, black_box(&token)).expect("fresh token validates"))
    });
    g.bench_function("retry_validate_bad_tag", |b| {
        b.iter(|| keys.validate_retry(peer, black_box(&forged)).expect_err("forged token refused"))
    });
    g.finish();
}

criterion_group!(benches, bench_tokens);
criterion_main!(benches);
