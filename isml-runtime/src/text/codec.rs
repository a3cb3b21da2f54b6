//! Framing of the text protocol: tokio-util's [`LinesCodec`] with a maximum
//! line length, whose errors become items, so that one bad line is answered
//! `BAD` and the connection reads on.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

/// One received line, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A line, without its `\n` (and `\r`).
    Line(String),
    /// A line longer than the maximum: its bytes up to the next `\n` are
    /// discarded as they arrive, never buffered.
    TooLong,
    /// A line that is not UTF-8 (consumed).
    NotUtf8,
}

/// Lines in, lines out, each at most `max_line` bytes.
#[derive(Debug, Clone)]
pub struct LineCodec {
    inner: LinesCodec,
    max_line: usize,
}

impl LineCodec {
    /// A codec refusing lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> LineCodec {
        LineCodec {
            inner: LinesCodec::new_with_max_length(max_line),
            max_line,
        }
    }

    /// The maximum line length.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    fn map(r: Result<Option<String>, LinesCodecError>) -> std::io::Result<Option<Received>> {
        match r {
            Ok(line) => Ok(line.map(Received::Line)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Received::TooLong)),
            Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Ok(Some(Received::NotUtf8))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for LineCodec {
    type Item = Received;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Received>> {
        Self::map(self.inner.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Received>> {
        Self::map(self.inner.decode_eof(buf))
    }
}

impl<T: AsRef<str>> Encoder<T> for LineCodec {
    type Error = std::io::Error;

    fn encode(&mut self, line: T, buf: &mut BytesMut) -> std::io::Result<()> {
        self.inner.encode(line, buf).map_err(|e| match e {
            LinesCodecError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<Received> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                out.push(r);
            }
            assert!(
                buf.len() <= codec.max_line() + 1,
                "buffer grew to {}",
                buf.len()
            );
        }
        out
    }

    #[test]
    fn several_lines_in_one_read_and_one_line_in_many() {
        let mut c = LineCodec::new(64);
        let got = decode_all(&mut c, &[b"a\nb\r\nc", b"d", b"e\n"]);
        let want = ["a", "b", "cde"].map(|s| Received::Line(s.into()));
        assert_eq!(got, want);
    }

    #[test]
    fn long_and_invalid_lines_become_items_and_reading_goes_on() {
        let mut c = LineCodec::new(16);
        let long = vec![b'x'; 1000];
        let got = decode_all(
            &mut c,
            &[&long[..300], &long[300..], b"\nok\n", b"\xff\xfe\nafter\n"],
        );
        assert_eq!(
            got,
            vec![
                Received::TooLong,
                Received::Line("ok".into()),
                Received::NotUtf8,
                Received::Line("after".into()),
            ]
        );
    }
}
