//! Address-validation (Retry) tokens and stateless-reset tokens
//! (RFC 9000 §8.1.2 and §10.3), both keyed by per-endpoint secrets.
//!
//! A Retry token is `version(1) | issued_ms(8) | odcid_len(1) | odcid |
//! retry_scid_len(1) | retry_scid | tag(16)`, where the tag is HMAC-SHA256
//! over everything before it plus the client's address. It proves the client
//! received our Retry at that address recently, and carries the original
//! destination connection ID that quiche must see in the transport
//! parameters.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use ring::rand::SystemRandom;

use crate::cid::MAX_CID_LEN;

const TOKEN_VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// Why a Retry token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token this endpoint could have minted.
    #[error("malformed address validation token")]
    Malformed,
    /// The authentication tag does not match (forged, or another address).
    #[error("address validation token does not authenticate for this client address")]
    BadTag,
    /// Minted too long ago.
    #[error("address validation token expired")]
    Expired,
}

/// Connection IDs recovered from a valid Retry token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryCids {
    /// The destination CID of the client's first Initial.
    pub original_dcid: Vec<u8>,
    /// The source CID our Retry carried (the client's DCID now).
    pub retry_scid: Vec<u8>,
}

/// Mints and checks tokens with secrets generated at endpoint start.
pub struct TokenKeys {
    retry: hmac::Key,
    reset: hmac::Key,
    lifetime: Duration,
}

impl TokenKeys {
    /// Fresh random secrets; Retry tokens stay valid for `lifetime`.
    pub fn generate(lifetime: Duration) -> Self {
        let rng = SystemRandom::new();
        Self {
            retry: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("OS random generator failed"),
            reset: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("OS random generator failed"),
            lifetime,
        }
    }

    /// Like [`generate`](Self::generate), but stateless-reset tokens come
    /// from `reset_secret`, so they survive a restart: peers of a server that
    /// lost its state recognise its resets (RFC 9000 §10.3).
    pub fn with_reset_secret(lifetime: Duration, reset_secret: &[u8; 32]) -> Self {
        Self { reset: hmac::Key::new(hmac::HMAC_SHA256, reset_secret), ..Self::generate(lifetime) }
    }

    /// The stateless reset token for one of our connection IDs.
    pub fn reset_token(&self, cid: &[u8]) -> u128 {
        let tag = hmac::sign(&self.reset, cid);
        u128::from_be_bytes(tag.as_ref()[..16].try_into().expect("HMAC-SHA256 is 32 bytes"))
    }

    /// A Retry token binding `peer`, the client's original DCID and the
    /// Retry's new source CID, written into `out`.
    pub fn mint_retry(&self, peer: SocketAddr, original_dcid: &[u8], retry_scid: &[u8], out: &mut Vec<u8>) {
        self.mint_at(now_ms(), peer, original_dcid, retry_scid, out)
    }

    fn mint_at(&self, issued_ms: u64, peer: SocketAddr, odcid: &[u8], rscid: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.push(TOKEN_VERSION);
        out.extend_from_slice(&issued_ms.to_be_bytes());
        out.push(odcid.len() as u8);
        out.extend_from_slice(odcid);
        out.push(rscid.len() as u8);
        out.extend_from_slice(rscid);
        let tag = self.tag(peer, out);
        out.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
    }

    /// Checks a token presented by `peer`.
    pub fn validate_retry(&self, peer: SocketAddr, token: &[u8]) -> Result<RetryCids, TokenError> {
        self.validate_at(now_ms(), peer, token)
    }

    fn validate_at(&self, now_ms: u64, peer: SocketAddr, token: &[u8]) -> Result<RetryCids, TokenError> {
        let body_len = token.len().checked_sub(TAG_LEN).ok_or(TokenError::Malformed)?;
        let (body, tag) = token.split_at(body_len);
        let mut r = Reader(body);
        if r.u8()? != TOKEN_VERSION {
            return Err(TokenError::Malformed);
        }
        let issued = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| TokenError::Malformed)?);
        let odcid = r.cid()?.to_vec();
        let rscid = r.cid()?.to_vec();
        if !r.0.is_empty() {
            return Err(TokenError::Malformed);
        }
        let expected = self.tag(peer, body);
        if !constant_time_eq(&expected.as_ref()[..TAG_LEN], tag) {
            return Err(TokenError::BadTag);
        }
        let age = now_ms.saturating_sub(issued);
        if issued > now_ms + 1_000 || age > self.lifetime.as_millis() as u64 {
            return Err(TokenError::Expired);
        }
        Ok(RetryCids { original_dcid: odcid, retry_scid: rscid })
    }

    fn tag(&self, peer: SocketAddr, body: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.retry);
        ctx.update(body);
        match peer {
            SocketAddr::V4(a) => ctx.update(&a.ip().to_ipv6_mapped().octets()),
            SocketAddr::V6(a) => ctx.update(&a.ip().octets()),
        }
        ctx.update(&peer.port().to_be_bytes());
        ctx.sign()
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }
    fn cid(&mut self) -> Result<&'a [u8], TokenError> {
        let len = usize::from(self.u8()?);
        if len > MAX_CID_LEN {
            return Err(TokenError::Malformed);
        }
        self.take(len)
    }
}

/// Compares tags without an early exit, so timing does not reveal how many
/// leading bytes of a forgery were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn retry_token_round_trips_for_the_same_peer_only() {
        let k = TokenKeys::generate(Duration::from_secs(10));
        let mut t = Vec::new();
        k.mint_at(1_000_000, peer(5), &[1, 2, 3], &[9; 8], &mut t);
        let cids = k.validate_at(1_000_500, peer(5), &t).unwrap();
        assert_eq!(cids.original_dcid, vec![1, 2, 3]);
        assert_eq!(cids.retry_scid, vec![9; 8]);
        assert_eq!(k.validate_at(1_000_500, peer(6), &t), Err(TokenError::BadTag));
        assert_eq!(k.validate_at(1_011_000, peer(5), &t), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_truncated_tokens_are_refused() {
        let k = TokenKeys::generate(Duration::from_secs(10));
        let mut t = Vec::new();
        k.mint_at(5, peer(5), &[1; 20], &[2; 8], &mut t);
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x01;
            assert!(k.validate_at(5, peer(5), &bad).is_err(), "flipped byte {i} accepted");
        }
        for n in 0..t.len() {
            assert!(k.validate_at(5, peer(5), &t[..n]).is_err(), "prefix {n} accepted");
        }
        let other = TokenKeys::generate(Duration::from_secs(10));
        assert_eq!(other.validate_at(5, peer(5), &t), Err(TokenError::BadTag));
    }

    #[test]
    fn a_reset_secret_gives_the_same_tokens_after_a_restart() {
        let a = TokenKeys::with_reset_secret(Duration::from_secs(1), &[7; 32]);
        let b = TokenKeys::with_reset_secret(Duration::from_secs(1), &[7; 32]);
        assert_eq!(a.reset_token(&[1; 8]), b.reset_token(&[1; 8]));
        let c = TokenKeys::with_reset_secret(Duration::from_secs(1), &[8; 32]);
        assert_ne!(a.reset_token(&[1; 8]), c.reset_token(&[1; 8]));
    }

    #[test]
    fn reset_tokens_are_stable_per_cid_and_differ_between_cids() {
        let k = TokenKeys::generate(Duration::from_secs(1));
        assert_eq!(k.reset_token(&[1; 8]), k.reset_token(&[1; 8]));
        assert_ne!(k.reset_token(&[1; 8]), k.reset_token(&[2; 8]));
    }
}
