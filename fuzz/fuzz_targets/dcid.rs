//! `cid::dcid` on arbitrary bytes: never panics, and a DCID it returns is a
//! sub-slice of the input of the announced length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stoq_core::cid::{self, CID_LEN, HeaderError, MAX_CID_LEN};

fuzz_target!(|data: &[u8]| {
    match cid::dcid(data, CID_LEN) {
        Ok(d) => {
            let (base, start) = (data.as_ptr() as usize, d.dcid.as_ptr() as usize);
            assert!(start >= base && start + d.dcid.len() <= base + data.len(), "DCID outside the input");
            assert_eq!(d.long_header, data[0] & 0x80 != 0);
            if d.long_header {
                assert_eq!((start - base, d.dcid.len()), (6, usize::from(data[5])));
                assert!(d.dcid.len() <= MAX_CID_LEN);
            } else {
                assert_eq!((start - base, d.dcid.len()), (1, CID_LEN));
            }
        }
        Err(HeaderError::Empty) => assert!(data.is_empty()),
        Err(HeaderError::CidTooLong(n)) => assert!(usize::from(n) > MAX_CID_LEN && data[5] == n),
        Err(_) => assert!(!data.is_empty()),
    }
});
