//! `quiche::Header::from_slice`, which the shard calls on long-header packets
//! it cannot route: never panics, and agrees with `cid::dcid` on the DCID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stoq_core::cid::{self, CID_LEN, HeaderError, MAX_CID_LEN};

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let Ok(hdr) = quiche::Header::from_slice(&mut buf, CID_LEN) else { return };
    match cid::dcid(data, CID_LEN) {
        Ok(d) => assert_eq!(&hdr.dcid[..], d.dcid),
        // quiche reads up to 255-byte DCIDs for versions it does not support
        // (RFC 8999 §5.1); `cid::dcid` refuses anything over QUIC v1's 20.
        Err(HeaderError::CidTooLong(n)) => {
            assert!(
                hdr.dcid.len() == usize::from(n)
                    && hdr.dcid.len() > MAX_CID_LEN
                    && !quiche::version_is_supported(hdr.version)
            )
        }
        Err(e) => panic!("quiche parsed a header whose DCID stoq cannot read: {e}"),
    }
});
