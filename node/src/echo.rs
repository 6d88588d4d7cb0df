//! The `ECHO` service: every byte after the tag goes back to the client, and
//! the server finishes its half when the client finishes.

use stoq_core::{ReadError, RecvStream, SendStream, WriteError};

/// Service tag of the echo service.
pub const TAG_ECHO: [u8; 4] = stoq_perf::protocol::TAG_ECHO;

/// Why an echo stream ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EchoError {
    /// Reading from the client failed.
    #[error("echo stream failed while reading after {echoed} bytes: {source}")]
    Read {
        /// Bytes echoed before.
        echoed: u64,
        /// The failure.
        source: ReadError,
    },
    /// Writing back failed.
    #[error("echo stream failed while writing after {echoed} bytes: {source}")]
    Write {
        /// Bytes echoed before.
        echoed: u64,
        /// The failure.
        source: WriteError,
    },
}

/// Echoes a stream whose tag has been read; returns the bytes echoed.
pub fn handle_echo_stream(mut send: SendStream, mut recv: RecvStream) -> Result<u64, EchoError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut echoed = 0u64;
    loop {
        match recv.read(&mut buf) {
            Ok(Some(n)) => {
                send.write_all(&buf[..n]).map_err(|source| EchoError::Write { echoed, source })?;
                echoed += n as u64;
            }
            Ok(None) => break,
            Err(source) => return Err(EchoError::Read { echoed, source }),
        }
    }
    send.finish().map_err(|source| EchoError::Write { echoed, source })?;
    Ok(echoed)
}
