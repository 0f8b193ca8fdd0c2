//! Framing: a u32 big-endian length followed by one protobuf message. The length is checked
//! against a limit before any byte of the body is buffered, so a peer cannot make us allocate
//! more than the limit by announcing a huge frame.

use prost::Message;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// Default limit on one frame's body: large enough for a push of a few hundred check-ins.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 4 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced length exceeds the limit; nothing was buffered.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced body length.
        len: u64,
        /// The limit in force.
        limit: u32,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame: expected {expected} more bytes, the stream ended after {got}")]
    Truncated {
        /// Bytes the frame still needed.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("frame is not a valid {message}: {reason}")]
    Decode {
        /// The message type expected.
        message: &'static str,
        /// prost's description of the problem.
        reason: String,
    },
}

/// Encodes `msg` as one frame (header + body).
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    // Frames larger than 4 GiB cannot be expressed; callers keep messages far below that.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    msg.encode_raw(&mut out);
    out
}

/// Reads a header and returns the body length, refusing it when it exceeds `limit`.
pub fn body_len(header: [u8; HEADER_LEN], limit: u32) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len > limit {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            limit,
        });
    }
    Ok(len as usize)
}

/// Decodes a frame body as `M`.
pub fn decode<M: Message + Default>(body: &[u8]) -> Result<M, FrameError> {
    M::decode(body).map_err(|e| FrameError::Decode {
        message: short_type_name::<M>(),
        reason: e.to_string(),
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The one frame decoder of the server and the SDK: bytes go in as they arrive, frames come out.
/// The header lives in a fixed array; the body buffer grows with the bytes that actually
/// arrived, never ahead of them, so a peer that announces a large frame and sends nothing holds
/// no memory for it. A driver that must not read past one frame (a request stream whose frame is
/// followed by raw photo bytes) reads at most [`FrameDecoder::wants`] bytes at a time.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: u32,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The body in progress: its announced length and the bytes so far.
    body: Option<(usize, Vec<u8>)>,
}

impl FrameDecoder {
    /// A decoder refusing frames whose body exceeds `limit` bytes.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            header: [0; HEADER_LEN],
            header_len: 0,
            body: None,
        }
    }

    /// How many more bytes the frame in progress needs: what is left of the header, or of the
    /// body once the header passed the limit check.
    pub fn wants(&self) -> usize {
        match &self.body {
            None => HEADER_LEN - self.header_len,
            Some((len, buf)) => len - buf.len(),
        }
    }

    /// Feeds bytes of one frame, at most [`FrameDecoder::wants`] of them (more is an error of
    /// the driver, reported as truncation of nothing); returns the body once it is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let mut rest = bytes;
        let done = self.step(&mut rest)?;
        if !rest.is_empty() {
            return Err(FrameError::Truncated {
                expected: 0,
                got: rest.len(),
            });
        }
        Ok(done)
    }

    /// Takes what the frame in progress needs from the front of `chunk`; the body when it
    /// completes. A header over the limit is refused before any body byte is buffered.
    fn step(&mut self, chunk: &mut &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            match &mut self.body {
                None => {
                    let take = (HEADER_LEN - self.header_len).min(chunk.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&chunk[..take]);
                    self.header_len += take;
                    *chunk = &chunk[take..];
                    if self.header_len < HEADER_LEN {
                        return Ok(None);
                    }
                    let len = body_len(self.header, self.limit)?;
                    self.header_len = 0;
                    self.body = Some((len, Vec::new()));
                }
                Some((len, buf)) => {
                    let take = (*len - buf.len()).min(chunk.len());
                    buf.extend_from_slice(&chunk[..take]);
                    *chunk = &chunk[take..];
                    if buf.len() < *len {
                        return Ok(None);
                    }
                    return Ok(self.body.take().map(|(_, done)| done));
                }
            }
        }
    }

    /// Feeds bytes of any number of frames; returns the complete frame bodies they finish.
    /// Bytes after the last complete frame stay buffered for the next call.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut frames = Vec::new();
        loop {
            if let Some(done) = self.step(&mut chunk)? {
                frames.push(done);
            } else if chunk.is_empty() {
                return Ok(frames);
            }
        }
    }

    /// Call at end of stream: an error if a frame was left incomplete.
    pub fn finish(&self) -> Result<(), FrameError> {
        match (&self.body, self.header_len) {
            (None, 0) => Ok(()),
            (None, got) => Err(FrameError::Truncated {
                expected: HEADER_LEN - got,
                got,
            }),
            (Some((len, buf)), _) => Err(FrameError::Truncated {
                expected: len - buf.len(),
                got: buf.len(),
            }),
        }
    }

    /// Bytes currently allocated for frame bodies (for tests and memory accounting).
    pub fn buffered_capacity(&self) -> usize {
        self.body.as_ref().map_or(0, |(_, b)| b.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn frame_over_limit_is_refused_before_buffering() {
        let mut dec = FrameDecoder::new(1024);
        let err = dec
            .push(&u32::MAX.to_be_bytes())
            .expect_err("4 GiB frame must be refused");
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u64::from(u32::MAX),
                limit: 1024
            }
        );
        assert_eq!(dec.buffered_capacity(), 0);
    }

    #[test]
    fn an_announced_body_takes_no_memory_before_its_bytes_arrive() {
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(dec.wants(), HEADER_LEN);
        assert_eq!(dec.feed(&DEFAULT_MAX_FRAME_BYTES.to_be_bytes()), Ok(None));
        assert_eq!(dec.wants(), DEFAULT_MAX_FRAME_BYTES as usize);
        assert_eq!(dec.buffered_capacity(), 0, "4 MiB announced, nothing sent");
        assert_eq!(dec.feed(&[7; 100]), Ok(None));
        assert!(
            dec.buffered_capacity() < 4096,
            "{}",
            dec.buffered_capacity()
        );
        assert_eq!(dec.wants(), DEFAULT_MAX_FRAME_BYTES as usize - 100);
    }

    #[test]
    fn feeding_what_a_frame_wants_stops_at_its_end() {
        let frame = encode(&wire::Notify { cursor: 42 });
        let mut dec = FrameDecoder::new(1024);
        let mut got = None;
        let mut at = 0;
        while got.is_none() {
            let n = dec.wants().min(3);
            got = dec.feed(&frame[at..at + n]).expect("feed");
            at += n;
        }
        assert_eq!(at, frame.len(), "nothing read past the frame");
        assert_eq!(
            decode::<wire::Notify>(&got.expect("frame")).map(|n| n.cursor),
            Ok(42)
        );
        assert!(matches!(
            dec.feed(&[0; 5]),
            Err(FrameError::Truncated {
                expected: 0,
                got: 1
            })
        ));
    }

    #[test]
    fn truncated_frame_is_reported_at_end_of_stream() {
        let frame = encode(&wire::Notify { cursor: 42 });
        let mut dec = FrameDecoder::new(1024);
        assert!(
            dec.push(&frame[..frame.len() - 1])
                .expect("push")
                .is_empty()
        );
        assert!(matches!(dec.finish(), Err(FrameError::Truncated { .. })));
    }

    #[test]
    fn garbage_body_is_a_decode_error_naming_the_message() {
        let err = decode::<wire::Request>(&[0xff, 0xff, 0xff]).expect_err("garbage");
        assert!(
            matches!(
                err,
                FrameError::Decode {
                    message: "Request",
                    ..
                }
            ),
            "{err}"
        );
    }
}
