//! The wire parsers on random and truncated input, on every `cargo test`:
//! the same properties the fuzz targets in `fuzz/` check, without a fuzzer.
//!
//! Inputs come from a fixed-seed xorshift, so a failure names the case and
//! reproduces.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use stoq_core::cid::{self, CID_LEN, HeaderError, MAX_CID_LEN};
use stoq_core::token::{TokenError, TokenKeys};
use stoq_xdp::frame::{self, FrameError, L2, MacAddr};

const CASES: usize = 200_000;

/// xorshift64* (Vigna 2016): small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

/// What `cid::dcid` must return, from RFC 8999 §5 written out independently:
/// the byte range of the DCID and whether the header is long.
fn model(pkt: &[u8], short_len: usize) -> Result<(Range<usize>, bool), HeaderError> {
    if pkt.is_empty() {
        return Err(HeaderError::Empty);
    }
    let (range, long) = if pkt[0] >= 0x80 {
        if pkt.len() < 6 {
            return Err(HeaderError::Truncated);
        }
        // Only QUIC v1 forbids CIDs over 20 bytes; other versions may use
        // up to 255 (RFC 9000 §17.2, RFC 8999 §5.1).
        if pkt[5] > 20 && pkt[1..5] == [0, 0, 0, 1] {
            return Err(HeaderError::CidTooLong(pkt[5]));
        }
        (6..6 + usize::from(pkt[5]), true)
    } else {
        (1..1 + short_len, false)
    };
    if range.end > pkt.len() {
        return Err(HeaderError::Truncated);
    }
    Ok((range, long))
}

/// Checks `cid::dcid` against the model, and that a returned DCID is a
/// sub-slice of the packet (not a copy, not out of bounds).
fn check_dcid(pkt: &[u8], short_len: usize) -> Result<(), HeaderError> {
    let got = cid::dcid(pkt, short_len);
    let want = model(pkt, short_len);
    match (got, want.clone()) {
        (Ok(d), Ok((range, long))) => {
            let start = d.dcid.as_ptr() as usize;
            let base = pkt.as_ptr() as usize;
            assert!(start >= base && start + d.dcid.len() <= base + pkt.len(), "dcid outside the packet {pkt:02x?}");
            assert_eq!(start - base..start - base + d.dcid.len(), range, "dcid range for {pkt:02x?}");
            assert_eq!(d.long_header, long, "header form for {pkt:02x?}");
            Ok(())
        }
        (got, want) => {
            assert_eq!(got.map(|_| ()), want.clone().map(|_| ()), "dcid({pkt:02x?}, {short_len})");
            want.map(|_| ())
        }
    }
}

#[test]
fn dcid_on_random_input_matches_the_model() {
    let mut rng = Rng(0x5eed_0001);
    let mut buf = [0u8; 64];
    let (mut ok, mut empty, mut truncated, mut too_long) = (0, 0, 0, 0);
    for case in 0..CASES {
        let len = rng.below(buf.len() + 1);
        let pkt = &mut buf[..len];
        rng.fill(pkt);
        // Keep half the long headers' length bytes legal so parsing gets past
        // the length check as often as it fails it.
        if len > 5 && rng.below(2) == 0 {
            pkt[5] = rng.below(MAX_CID_LEN + 1) as u8;
        }
        // Half the long headers claim QUIC v1, where the 20-byte cap applies.
        if len > 5 && rng.below(2) == 0 {
            pkt[1..5].copy_from_slice(&[0, 0, 0, 1]);
        }
        let short_len = if rng.below(4) == 0 { rng.below(MAX_CID_LEN + 1) } else { CID_LEN };
        match check_dcid(pkt, short_len) {
            Ok(()) => ok += 1,
            Err(HeaderError::Empty) => empty += 1,
            Err(HeaderError::Truncated) => truncated += 1,
            Err(HeaderError::CidTooLong(n)) => {
                assert!(usize::from(n) > MAX_CID_LEN, "case {case}");
                too_long += 1
            }
            Err(e) => panic!("case {case}: unexpected error {e:?}"),
        }
    }
    // Every outcome must have been reached, or the generator tests nothing.
    for (what, n) in [("ok", ok), ("empty", empty), ("truncated", truncated), ("too long", too_long)] {
        assert!(n >= 1_000, "only {n} {what} outcomes in {CASES} cases");
    }
}

fn short_header(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x41];
    p.extend_from_slice(dcid);
    p.extend_from_slice(&[0x00, 0x01]); // packet number
    p.resize(1200, 0xa5);
    p
}

fn initial(dcid: &[u8], scid: &[u8]) -> Vec<u8> {
    let mut p = vec![0xc3, 0, 0, 0, 1, dcid.len() as u8];
    p.extend_from_slice(dcid);
    p.push(scid.len() as u8);
    p.extend_from_slice(scid);
    p.push(0); // token length
    let rest = (1200 - p.len() - 2) as u16;
    p.extend_from_slice(&(0x4000 | rest).to_be_bytes());
    p.resize(1200, 0xa5);
    p
}

#[test]
fn every_prefix_of_a_short_header_packet() {
    let dcid = [3, 1, 4, 1, 5, 9, 2, 6];
    let pkt = short_header(&dcid);
    for n in 0..=pkt.len() {
        let want = match n {
            0 => Err(HeaderError::Empty),
            n if n <= CID_LEN => Err(HeaderError::Truncated),
            _ => Ok(&dcid[..]),
        };
        assert_eq!(cid::dcid(&pkt[..n], CID_LEN).map(|d| d.dcid), want, "prefix of {n} bytes");
        check_dcid(&pkt[..n], CID_LEN).ok();
    }
}

#[test]
fn every_prefix_of_a_long_header_packet() {
    for dcid_len in [0, 1, CID_LEN, MAX_CID_LEN] {
        let dcid: Vec<u8> = (1..=dcid_len as u8).collect();
        let pkt = initial(&dcid, &[0xee; CID_LEN]);
        for n in 0..=pkt.len() {
            let want = match n {
                0 => Err(HeaderError::Empty),
                n if n < 6 + dcid_len => Err(HeaderError::Truncated),
                _ => Ok(&dcid[..]),
            };
            let got = cid::dcid(&pkt[..n], CID_LEN);
            assert_eq!(got.map(|d| d.dcid), want, "dcid of {dcid_len} bytes, prefix of {n}");
            assert!(got.is_err() || got.unwrap().long_header);
            check_dcid(&pkt[..n], CID_LEN).ok();
        }
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 40_000))
}

#[test]
fn random_tokens_never_validate() {
    let keys = TokenKeys::generate(Duration::from_secs(3600));
    let mut rng = Rng(0x5eed_0002);
    let mut buf = [0u8; 96];
    let (mut malformed, mut bad_tag) = (0, 0);
    for case in 0..CASES {
        let len = rng.below(buf.len() + 1);
        let token = &mut buf[..len];
        rng.fill(token);
        // One case in four is well-formed but for its tag, so the HMAC check
        // itself is exercised, not only the parser in front of it.
        if rng.below(4) == 0 {
            let (odcid, rscid) = (rng.below(MAX_CID_LEN + 1), rng.below(MAX_CID_LEN + 1));
            let body = 1 + 8 + 1 + odcid + 1 + rscid;
            let token = &mut buf[..body + 16];
            rng.fill(token);
            token[0] = 1;
            token[9] = odcid as u8;
            token[10 + odcid] = rscid as u8;
            assert_eq!(keys.validate_retry(peer(), token), Err(TokenError::BadTag), "case {case}: {token:02x?}");
            bad_tag += 1;
            continue;
        }
        match keys.validate_retry(peer(), token) {
            Ok(cids) => panic!("case {case}: random token {token:02x?} validated as {cids:?}"),
            Err(TokenError::Malformed) => malformed += 1,
            Err(TokenError::BadTag) => bad_tag += 1,
            Err(e) => panic!("case {case}: unexpected {e:?}"),
        }
    }
    assert!(malformed >= 10_000 && bad_tag >= 10_000, "malformed {malformed}, bad tag {bad_tag}");
}

#[test]
fn mutated_tokens_never_validate() {
    let keys = TokenKeys::generate(Duration::from_secs(3600));
    let mut rng = Rng(0x5eed_0003);
    let mut token = Vec::new();
    keys.mint_retry(peer(), &[0x11; MAX_CID_LEN], &[0x22; CID_LEN], &mut token);
    assert!(keys.validate_retry(peer(), &token).is_ok());
    for case in 0..CASES / 4 {
        let mut bad = token.clone();
        for _ in 0..=rng.below(3) {
            let i = rng.below(bad.len());
            bad[i] ^= 1 << rng.below(8);
        }
        if bad == token {
            continue; // two flips of the same bit cancelled out
        }
        assert!(keys.validate_retry(peer(), &bad).is_err(), "case {case}: mutated token {bad:02x?} validated");
    }
}

#[test]
fn every_prefix_of_a_token_is_malformed() {
    let keys = TokenKeys::generate(Duration::from_secs(3600));
    for (odcid, rscid) in [(0, 0), (8, 8), (MAX_CID_LEN, MAX_CID_LEN)] {
        let mut token = Vec::new();
        keys.mint_retry(peer(), &vec![0x11; odcid], &vec![0x22; rscid], &mut token);
        let cids = keys.validate_retry(peer(), &token).expect("fresh token validates");
        assert_eq!((cids.original_dcid.len(), cids.retry_scid.len()), (odcid, rscid));
        for n in 0..token.len() {
            assert_eq!(keys.validate_retry(peer(), &token[..n]), Err(TokenError::Malformed), "prefix of {n} bytes");
        }
    }
}

/// An Ethernet frame as the AF_XDP transmit path writes it.
fn xdp_frame(src: SocketAddr, dst: SocketAddr, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let l2 = L2 { src: MacAddr([2, 0, 0, 0, 0, 1]), dst: MacAddr([2, 0, 0, 0, 0, 2]), vlan };
    let at = frame::headers_len(src.is_ipv6(), vlan.is_some());
    let mut f = vec![0; at + payload.len()];
    f[at..].copy_from_slice(payload);
    frame::write_headers(&mut f, &l2, src, dst, payload.len(), 1, 7).expect("frame fits");
    f
}

/// `frame::parse_udp` on valid frames with a few bytes changed and the end
/// cut at random: never panics, a payload it returns lies inside the frame,
/// and framing that payload again parses back the same (the `xdp_frame` fuzz
/// target's properties).
#[test]
fn mutated_xdp_frames_parse_consistently() {
    let mut rng = Rng(0x5eed_0004);
    let v4: [SocketAddr; 2] = ["192.0.2.1:4433".parse().unwrap(), "198.51.100.7:443".parse().unwrap()];
    let v6: [SocketAddr; 2] = ["[2001:db8::1]:4433".parse().unwrap(), "[2001:db8::2]:443".parse().unwrap()];
    let (mut ok, mut truncated, mut checksum, mut other) = (0, 0, 0, 0);
    for case in 0..CASES / 4 {
        let [src, dst] = if rng.below(2) == 0 { v4 } else { v6 };
        let vlan = (rng.below(2) == 0).then(|| rng.below(4096) as u16);
        let mut payload = vec![0; rng.below(64)];
        rng.fill(&mut payload);
        let mut f = xdp_frame(src, dst, vlan, &payload);
        // Mostly the headers: that is where the parser looks.
        for _ in 0..rng.below(3) {
            let i = rng.below(f.len().min(frame::MAX_HEADERS_LEN));
            f[i] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            f.truncate(rng.below(f.len()));
        }
        let rx = match frame::parse_udp(&f) {
            Ok(rx) => rx,
            Err(FrameError::Truncated { .. }) => {
                truncated += 1;
                continue;
            }
            Err(FrameError::BadIpv4Checksum) => {
                checksum += 1;
                continue;
            }
            Err(_) => {
                other += 1;
                continue;
            }
        };
        ok += 1;
        assert!(rx.payload.start <= rx.payload.end && rx.payload.end <= f.len(), "case {case}: {f:02x?}");
        let again = xdp_frame(rx.src, rx.dst, rx.vlan, rx.payload(&f));
        let rx2 = frame::parse_udp(&again).unwrap_or_else(|e| panic!("case {case}: re-framed {f:02x?}: {e}"));
        assert_eq!((rx2.src, rx2.dst, rx2.vlan), (rx.src, rx.dst, rx.vlan), "case {case}");
        assert_eq!(rx2.payload(&again), rx.payload(&f), "case {case}");
    }
    for (what, n) in [("ok", ok), ("truncated", truncated), ("bad checksum", checksum), ("other error", other)] {
        assert!(n >= 1_000, "only {n} {what} outcomes in {} cases", CASES / 4);
    }
}
