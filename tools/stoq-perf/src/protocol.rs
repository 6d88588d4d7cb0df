//! The perf wire protocol (docs/perf-protocol.md): the 4-byte service tag
//! every client-opened bidirectional stream starts with, the 20-byte PERF
//! request header and the 16-byte result an upload ends with.

use stoq_core::{ReadError, RecvStream};

/// Service tag of the perf service.
pub const TAG_PERF: [u8; 4] = *b"PERF";
/// Service tag of the echo service (hosted by stoq-node).
pub const TAG_ECHO: [u8; 4] = *b"ECHO";
/// The only request version defined.
pub const VERSION: u8 = 1;
/// Size of an encoded [`Request`].
pub const REQUEST_LEN: usize = 20;
/// Size of an encoded [`PerfResult`].
pub const RESULT_LEN: usize = 16;
/// The `length` value meaning "no fixed length".
pub const UNBOUNDED: u64 = u64::MAX;

/// Which way the payload flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The client sends, the server verifies.
    Upload,
    /// The server sends, the client verifies.
    Download,
}

impl Direction {
    /// `upload` or `download`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }

    fn code(self) -> u8 {
        match self {
            Direction::Upload => 0,
            Direction::Download => 1,
        }
    }
}

/// A PERF request: what the client asks the server to do on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Which way the payload flows.
    pub direction: Direction,
    /// Payload bytes, or `None` for no fixed length.
    pub length: Option<u64>,
    /// Key of the payload pattern.
    pub seed: u64,
}

/// Why bytes are not a valid PERF request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The version byte is not one this server speaks.
    #[error("unsupported PERF request version {0} (this implementation speaks version 1)")]
    Version(u8),
    /// The direction byte is neither 0 (upload) nor 1 (download).
    #[error("unknown PERF direction {0} (0 = upload, 1 = download)")]
    Direction(u8),
}

impl Request {
    /// The 20-byte wire form.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0] = VERSION;
        b[1] = self.direction.code();
        b[4..12].copy_from_slice(&self.length.unwrap_or(UNBOUNDED).to_be_bytes());
        b[12..20].copy_from_slice(&self.seed.to_be_bytes());
        b
    }

    /// Parses the 20-byte wire form. The reserved field is ignored.
    pub fn decode(b: &[u8; REQUEST_LEN]) -> Result<Self, RequestError> {
        if b[0] != VERSION {
            return Err(RequestError::Version(b[0]));
        }
        let direction = match b[1] {
            0 => Direction::Upload,
            1 => Direction::Download,
            d => return Err(RequestError::Direction(d)),
        };
        let length = u64::from_be_bytes(word(&b[4..12]));
        let seed = u64::from_be_bytes(word(&b[12..20]));
        Ok(Self { direction, length: (length != UNBOUNDED).then_some(length), seed })
    }
}

fn word(b: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    w
}

/// The status byte of an upload's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every byte matched and the length was right.
    Ok,
    /// A byte did not match the pattern.
    PatternMismatch,
    /// The stream ended before, or ran past, the announced length.
    LengthMismatch,
    /// The request header was not understood.
    BadRequest,
    /// A status code this implementation does not know.
    Unknown(u8),
}

impl Status {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::PatternMismatch => 1,
            Status::LengthMismatch => 2,
            Status::BadRequest => 3,
            Status::Unknown(c) => c,
        }
    }

    /// The status for a wire code.
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => Status::Ok,
            1 => Status::PatternMismatch,
            2 => Status::LengthMismatch,
            3 => Status::BadRequest,
            c => Status::Unknown(c),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::PatternMismatch => f.write_str("pattern mismatch"),
            Status::LengthMismatch => f.write_str("length mismatch"),
            Status::BadRequest => f.write_str("bad request"),
            Status::Unknown(c) => write!(f, "unknown status {c}"),
        }
    }
}

/// What the server found on an upload stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfResult {
    /// Outcome.
    pub status: Status,
    /// Payload bytes that matched the pattern, counted from offset 0.
    pub bytes_verified: u64,
}

impl PerfResult {
    /// The 16-byte wire form.
    pub fn encode(&self) -> [u8; RESULT_LEN] {
        let mut b = [0u8; RESULT_LEN];
        b[0] = self.status.code();
        b[8..16].copy_from_slice(&self.bytes_verified.to_be_bytes());
        b
    }

    /// Parses the wire form; `None` unless it is exactly 16 bytes.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != RESULT_LEN {
            return None;
        }
        Some(Self { status: Status::from_code(b[0]), bytes_verified: u64::from_be_bytes(word(&b[8..16])) })
    }
}

/// Why a fixed-size prefix (tag or header) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The stream ended first.
    #[error("stream ended after {got} of the {want} bytes of its {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes that arrived.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
    /// The stream or connection failed.
    #[error("reading the stream failed: {0}")]
    Read(#[from] ReadError),
}

/// Reads exactly `buf.len()` bytes, naming `what` in the error if the stream
/// ends first.
pub fn read_exact(recv: &mut RecvStream, buf: &mut [u8], what: &'static str) -> Result<(), PrefixError> {
    let mut got = 0;
    while got < buf.len() {
        match recv.read(&mut buf[got..])? {
            Some(n) => got += n,
            None => return Err(PrefixError::Truncated { what, got, want: buf.len() }),
        }
    }
    Ok(())
}

/// Reads the 4-byte service tag that starts every client-opened
/// bidirectional stream.
pub fn read_tag(recv: &mut RecvStream) -> Result<[u8; 4], PrefixError> {
    let mut tag = [0u8; 4];
    read_exact(recv, &mut tag, "service tag")?;
    Ok(tag)
}

/// A tag for log messages: ASCII as text, anything else in hex.
pub fn tag_display(tag: &[u8; 4]) -> String {
    if tag.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(tag).into_owned()
    } else {
        format!("0x{:02x}{:02x}{:02x}{:02x}", tag[0], tag[1], tag[2], tag[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        for r in [
            Request { direction: Direction::Upload, length: Some(0), seed: 0 },
            Request { direction: Direction::Download, length: Some(1 << 40), seed: u64::MAX },
            Request { direction: Direction::Upload, length: None, seed: 0x0102_0304_0506_0708 },
        ] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn request_layout_is_big_endian() {
        let r = Request { direction: Direction::Download, length: Some(0x0102), seed: 0x0a0b };
        let b = r.encode();
        assert_eq!(&b[..4], &[1, 1, 0, 0]);
        assert_eq!(&b[4..12], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&b[12..20], &[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        let unbounded = Request { length: None, ..r }.encode();
        assert_eq!(&unbounded[4..12], &[0xff; 8]);
    }

    #[test]
    fn bad_requests_are_rejected() {
        let good = Request { direction: Direction::Upload, length: Some(5), seed: 9 }.encode();
        let mut v = good;
        v[0] = 2;
        assert_eq!(Request::decode(&v), Err(RequestError::Version(2)));
        let mut d = good;
        d[1] = 7;
        assert_eq!(Request::decode(&d), Err(RequestError::Direction(7)));
        assert!(Request::decode(&[0u8; REQUEST_LEN]).is_err());
    }

    #[test]
    fn result_round_trips_and_checks_length() {
        let r = PerfResult { status: Status::LengthMismatch, bytes_verified: 123_456_789 };
        let b = r.encode();
        assert_eq!(b[0], 2);
        assert_eq!(&b[1..8], &[0; 7]);
        assert_eq!(PerfResult::decode(&b), Some(r));
        assert_eq!(PerfResult::decode(&b[..15]), None);
        assert_eq!(PerfResult::decode(&[0u8; 17]), None);
        let mut odd = b;
        odd[0] = 9;
        assert_eq!(PerfResult::decode(&odd).map(|r| r.status), Some(Status::Unknown(9)));
    }

    #[test]
    fn tags_display_readably() {
        assert_eq!(tag_display(&TAG_PERF), "PERF");
        assert_eq!(tag_display(&[0, 1, 2, 0xff]), "0x000102ff");
    }
}
