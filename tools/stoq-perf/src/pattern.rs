//! The payload pattern: a keyed pseudo-random byte stream that either side
//! can generate or check at any offset, so nothing has to be stored or sent
//! besides a 64-bit seed.
//!
//! Byte `i` of a payload is little-endian byte `i % 8` of
//! `mix64(seed + i / 8)` (wrapping add), where [`mix64`] is the SplitMix64
//! finaliser. Both directions work a 64-bit word at a time; only the partial
//! words at the edges of a chunk are handled byte by byte.

/// The SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective mixer of
/// a 64-bit word.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern byte at `offset` of the payload keyed by `seed`.
pub fn byte_at(seed: u64, offset: u64) -> u8 {
    mix64(seed.wrapping_add(offset / 8)).to_le_bytes()[(offset % 8) as usize]
}

/// Fills `buf` with the pattern for payload offsets `offset..offset + buf.len()`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let (head, words, tail) = split(offset, buf.len());
    let mut word = offset / 8;
    if head > 0 {
        let skip = (offset % 8) as usize;
        let bytes = mix64(seed.wrapping_add(word)).to_le_bytes();
        buf[..head].copy_from_slice(&bytes[skip..skip + head]);
        word += 1;
    }
    let body = &mut buf[head..head + words * 8];
    for (i, chunk) in body.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&mix64(seed.wrapping_add(word + i as u64)).to_le_bytes());
    }
    if tail > 0 {
        let bytes = mix64(seed.wrapping_add(word + words as u64)).to_le_bytes();
        buf[head + words * 8..].copy_from_slice(&bytes[..tail]);
    }
}

/// Where a received payload first differs from the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Payload offset of the first wrong byte.
    pub offset: u64,
    /// The byte the pattern has there.
    pub expected: u8,
    /// The byte that arrived.
    pub found: u8,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "payload byte at offset {} is {:#04x}, the pattern says {:#04x}",
            self.offset, self.found, self.expected
        )
    }
}

/// Checks that `buf` holds the pattern for payload offsets
/// `offset..offset + buf.len()`, reporting the first wrong byte.
pub fn verify(seed: u64, offset: u64, buf: &[u8]) -> Result<(), Mismatch> {
    let (head, words, _) = split(offset, buf.len());
    let check_bytes = |start: usize, end: usize| -> Result<(), Mismatch> {
        for (i, &found) in buf[start..end].iter().enumerate() {
            let at = offset + (start + i) as u64;
            let expected = byte_at(seed, at);
            if found != expected {
                return Err(Mismatch { offset: at, expected, found });
            }
        }
        Ok(())
    };
    check_bytes(0, head)?;
    let first_word = (offset + head as u64) / 8;
    let body = &buf[head..head + words * 8];
    for (i, chunk) in body.chunks_exact(8).enumerate() {
        let got = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if got != mix64(seed.wrapping_add(first_word + i as u64)) {
            let start = head + i * 8;
            return check_bytes(start, start + 8);
        }
    }
    check_bytes(head + words * 8, buf.len())
}

/// Splits a chunk at payload `offset` of `len` bytes into a partial leading
/// word, whole words, and a partial trailing word.
fn split(offset: u64, len: usize) -> (usize, usize, usize) {
    let misalign = (offset % 8) as usize;
    let head = if misalign == 0 { 0 } else { (8 - misalign).min(len) };
    let words = (len - head) / 8;
    let tail = len - head - words * 8;
    (head, words, tail)
}

/// Checks a payload that arrives in chunks, remembering where it is.
#[derive(Debug, Clone)]
pub struct Verifier {
    seed: u64,
    offset: u64,
}

impl Verifier {
    /// A verifier for the payload keyed by `seed`, starting at offset 0.
    pub fn new(seed: u64) -> Self {
        Self { seed, offset: 0 }
    }

    /// Checks the next chunk. On success the offset advances past it; on a
    /// mismatch, to the wrong byte (so [`verified`](Self::verified) counts
    /// the good bytes before it).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Mismatch> {
        match verify(self.seed, self.offset, chunk) {
            Ok(()) => {
                self.offset += chunk.len() as u64;
                Ok(())
            }
            Err(m) => {
                self.offset = m.offset;
                Err(m)
            }
        }
    }

    /// Bytes verified so far.
    pub fn verified(&self) -> u64 {
        self.offset
    }
}

/// Produces a payload in chunks, remembering where it is.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    offset: u64,
}

impl Generator {
    /// A generator for the payload keyed by `seed`, starting at offset 0.
    pub fn new(seed: u64) -> Self {
        Self { seed, offset: 0 }
    }

    /// Fills `buf` with the next bytes of the payload.
    pub fn next_chunk(&mut self, buf: &mut [u8]) {
        fill(self.seed, self.offset, buf);
        self.offset += buf.len() as u64;
    }

    /// Moves back by `n` bytes not consumed from the last chunk (after a
    /// short write).
    pub fn unread(&mut self, n: usize) {
        self.offset -= n as u64;
    }

    /// Bytes produced so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, byte by byte, to check the word-at-a-time code against.
    fn reference(seed: u64, offset: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| byte_at(seed, offset + i)).collect()
    }

    #[test]
    fn mix64_matches_splitmix64_reference_values() {
        // SplitMix64 with state starting at 0 outputs mix64(0x9e3779b97f4a7c15)
        // first; published value of the reference generator.
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix64(0), 0);
    }

    #[test]
    fn byte_layout_is_little_endian_words() {
        let w = mix64(7u64.wrapping_add(1)).to_le_bytes();
        let mut buf = [0u8; 8];
        fill(7, 8, &mut buf);
        assert_eq!(buf, w);
    }

    #[test]
    fn fill_matches_reference_at_every_small_offset_and_length() {
        for offset in 0..20u64 {
            for len in 0..40 {
                let mut buf = vec![0u8; len];
                fill(0xdead_beef, offset, &mut buf);
                assert_eq!(buf, reference(0xdead_beef, offset, len), "offset {offset} len {len}");
                assert_eq!(verify(0xdead_beef, offset, &buf), Ok(()));
            }
        }
    }

    #[test]
    fn wrapping_seed_is_handled() {
        let mut buf = vec![0u8; 64];
        fill(u64::MAX - 2, 3, &mut buf);
        assert_eq!(buf, reference(u64::MAX - 2, 3, 64));
    }

    #[test]
    fn flipped_byte_is_reported_at_its_offset() {
        let mut buf = vec![0u8; 1000];
        fill(42, 13, &mut buf);
        for &pos in &[0usize, 1, 2, 7, 500, 998, 999] {
            let mut bad = buf.clone();
            bad[pos] ^= 0x40;
            let m = verify(42, 13, &bad).expect_err("corruption must be found");
            assert_eq!(m.offset, 13 + pos as u64);
            assert_eq!(m.found, buf[pos] ^ 0x40);
            assert_eq!(m.expected, buf[pos]);
        }
    }

    #[test]
    fn wrong_seed_fails() {
        let mut buf = vec![0u8; 64];
        fill(1, 0, &mut buf);
        assert!(verify(2, 0, &buf).is_err());
    }
}
