//! `io::linux::cmsg::decode` on arbitrary control bytes (what `recvmmsg` or
//! io_uring hands back): never panics, and a reported GRO segment size or
//! ECN codepoint is within range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stoq_core::io::linux::cmsg;

fuzz_target!(|data: &[u8]| {
    let info = cmsg::decode(data);
    assert!(info.ecn <= 0b11);
    if info.gro_segment.is_some() || info.dst_ip.is_some() {
        // Anything decoded came from at least one whole header.
        assert!(data.len() >= cmsg::len(0));
    }
});
