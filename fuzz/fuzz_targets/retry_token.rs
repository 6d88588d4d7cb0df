//! `TokenKeys::validate_retry` on arbitrary bytes: never panics and never
//! accepts a token it did not mint (the keys are fresh each process).
#![no_main]

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use stoq_core::token::TokenKeys;

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| TokenKeys::generate(Duration::from_secs(3600)));

fuzz_target!(|data: &[u8]| {
    let peer = SocketAddr::from(([192, 0, 2, 1], 4433));
    if let Ok(cids) = KEYS.validate_retry(peer, data) {
        panic!("forged token validated: {cids:?}");
    }
});
