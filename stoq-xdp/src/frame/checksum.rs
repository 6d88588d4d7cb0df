//! The internet checksum (RFC 1071) used by IPv4 headers and UDP.
//!
//! The bulk routine sums native-endian 32-bit words into a 64-bit
//! accumulator: no carries to propagate inside the loop, so the compiler
//! vectorises it (two lanes per SSE2 register on the x86-64 baseline). The
//! ones'-complement sum is independent of byte order (RFC 1071 §2(B)), so the
//! native-order result is byte-swapped once at the end rather than every word.
//! It also tolerates deferred carries (§2(C)): folding the 64-bit total to 16
//! bits at the end gives the same sum as adding with end-around carry at each
//! step.

/// Bytes summed per 64-bit accumulator before it is folded. Each 8-byte chunk
/// adds less than 2^33, so 2^30 bytes (2^27 chunks) stay far below 2^64 and
/// the accumulator cannot overflow even on slices of many gigabytes.
const BLOCK: usize = 1 << 30;

/// The internet checksum of `data`: the ones' complement of its
/// ones'-complement sum (RFC 1071 §1). A header that carries its own correct
/// checksum sums to `0xffff`, so this returns 0 for it.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !ones_sum(data)
}

/// The ones'-complement sum of `data` read as big-endian 16-bit words, a
/// trailing odd byte padded with a zero byte (RFC 1071 §1).
///
/// Starting from zero, the sum is 0 only for all-zero data; "negative zero"
/// (`0xffff`) stands for any other multiple of `0xffff`.
#[inline]
pub fn ones_sum(data: &[u8]) -> u16 {
    let mut sum = 0;
    for block in data.chunks(BLOCK) {
        sum = add(sum, fold(sum_native(block)));
    }
    // The words were read in native order; the sum of byte-swapped words is
    // the byte-swapped sum (RFC 1071 §2(B)). `from_be` swaps on little-endian
    // hosts and is the identity on big-endian ones.
    u16::from_be(sum)
}

/// Sums `data` as native-endian 32-bit words (zero-padded at the end) without
/// folding. At most [`BLOCK`] bytes, so the total fits in 64 bits.
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    let (chunks, tail) = data.as_chunks::<8>();
    // Splitting each 8-byte word into two 32-bit halves keeps every addend
    // below 2^33: no carry out of the accumulator, so LLVM vectorises the loop.
    let sum: u64 = chunks
        .iter()
        .map(|c| {
            let w = u64::from_ne_bytes(*c);
            (w & 0xffff_ffff) + (w >> 32)
        })
        .sum();
    // The tail is loaded as words of its own size: copying it into a zeroed
    // 8-byte array and loading that would stall on store forwarding. Each
    // native 16-bit lane of these words is one 16-bit word of the data.
    let (word, tail) = tail.as_chunks::<4>();
    let (half, tail) = tail.as_chunks::<2>();
    let last = match tail {
        // Zero-padded, as a trailing odd byte is (RFC 1071 §1).
        [b] => u16::from_ne_bytes([*b, 0]),
        _ => 0,
    };
    sum + word.iter().map(|w| u64::from(u32::from_ne_bytes(*w))).sum::<u64>()
        + half.iter().map(|h| u64::from(u16::from_ne_bytes(*h))).sum::<u64>()
        + u64::from(last)
}

/// Folds a 64-bit sum of 16-bit words to 16 bits with end-around carry. The
/// 16-bit words of a 64-bit value are congruent to it modulo `0xffff`.
#[inline]
const fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32); // < 2^33
    s = (s & 0xffff_ffff) + (s >> 32); // < 2^32
    s = (s & 0xffff) + (s >> 16); // < 2^17
    s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// Ones'-complement addition of two 16-bit values (end-around carry). The
/// result cannot overflow: with a carry out, the wrapped sum is at most
/// `0xfffe`.
#[inline]
const fn add(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u16
}

/// A running internet checksum over data that arrives in pieces (a
/// pseudo-header, a header, a payload), any of which may have an odd length.
///
/// The result equals [`checksum`] over the concatenation of the pieces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Ones'-complement sum so far, with end-around carry at bit 64: since
    /// 2^64 = (2^16)^4 is 1 modulo `0xffff`, this is the 16-bit sum deferred
    /// (RFC 1071 §2(C)), and it never overflows.
    sum: u64,
    /// Whether an odd number of bytes has been added, so the next byte is the
    /// low half of a word.
    odd: bool,
}

impl Checksum {
    /// An empty checksum.
    pub const fn new() -> Self {
        Self { sum: 0, odd: false }
    }

    /// Adds `v`, a run of big-endian 16-bit words, at the current position.
    #[inline]
    fn add_words(&mut self, v: u64) -> &mut Self {
        // Data that starts at an odd offset pairs up shifted by one byte: its
        // contribution is byte-swapped (RFC 1071 §2(B)), which modulo
        // `0xffff` is a multiplication by 2^8, and on 64 bits a rotation by 8.
        let v = if self.odd { v.rotate_left(8) } else { v };
        let (sum, carry) = self.sum.overflowing_add(v);
        // With a carry out, `sum` is at most 2^64 - 2: this cannot overflow.
        self.sum = sum + u64::from(carry);
        self
    }

    /// Appends `data`.
    #[inline]
    pub fn add_bytes(&mut self, data: &[u8]) -> &mut Self {
        self.add_words(ones_sum(data).into());
        self.odd ^= data.len() % 2 == 1;
        self
    }

    /// Appends a 16-bit value in network byte order.
    #[inline]
    pub fn add_u16(&mut self, v: u16) -> &mut Self {
        self.add_words(v.into())
    }

    /// Appends a 32-bit value in network byte order.
    #[inline]
    pub fn add_u32(&mut self, v: u32) -> &mut Self {
        self.add_words(v.into())
    }

    /// Appends a 128-bit value (an IPv6 address) in network byte order.
    #[inline]
    pub fn add_u128(&mut self, v: u128) -> &mut Self {
        self.add_words((v >> 64) as u64).add_words(v as u64)
    }

    /// The ones'-complement sum of everything added.
    #[inline]
    pub const fn sum(&self) -> u16 {
        fold(self.sum)
    }

    /// The checksum to put in a header: the complement of the sum.
    #[inline]
    pub const fn finish(&self) -> u16 {
        !self.sum()
    }
}
