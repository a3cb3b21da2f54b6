//! The text protocol: the line framing (`LineCodec`), the line parser
//! (`Line`, `Command`) and the escaping of values.

use bytes::BytesMut;
use isml_runtime::text::{Command, Line, LineCodec, Received, escape, unescape};
use tokio_util::codec::Decoder;

/// The first byte picks the maximum line length and the read size; the rest
/// arrives as a client's bytes. Every line the codec yields parses or is
/// refused with an error; the codec never buffers more than a line; parsed
/// lines print and parse back to themselves; values survive escaping.
pub fn text_line(data: &[u8]) {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let max_line = [16usize, 256, 4096][usize::from(sel % 3)];
    let read = usize::from(sel / 3) + 1;
    let mut codec = LineCodec::new(max_line);
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    for chunk in data.chunks(read) {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("line decoding never fails hard")
        {
            lines.push(item);
        }
        assert!(
            buf.len() <= max_line + read + 1,
            "{} bytes buffered for lines of at most {max_line}",
            buf.len()
        );
    }
    while let Some(item) = codec
        .decode_eof(&mut buf)
        .expect("line decoding never fails hard")
    {
        lines.push(item);
    }
    for item in &lines {
        match item {
            Received::Line(text) => {
                assert!(
                    text.len() <= max_line,
                    "a line of {} bytes passed",
                    text.len()
                );
                assert!(!text.contains('\n'));
                line(text);
            }
            Received::TooLong | Received::NotUtf8 => {}
        }
    }
    // The whole input as one line, whatever its length.
    if let Ok(text) = std::str::from_utf8(data) {
        line(text);
    }
}

fn line(text: &str) {
    let parsed = Line::parse(text);
    let command = Command::parse(text);
    match &parsed {
        Ok(Some(line)) => {
            let printed = line.to_string();
            let back = Line::parse(&printed)
                .unwrap_or_else(|e| {
                    panic!("{printed:?} (printed from {text:?}) does not parse: {e}")
                })
                .expect("a printed line is not blank");
            assert_eq!(&back, line, "printed as {printed:?}");
            if let Err(e) = &command {
                let _ = e.to_string();
            }
            for (_, value) in &line.params {
                assert_eq!(unescape(&escape(value)).as_deref(), Some(value.as_str()));
            }
        }
        Ok(None) => assert!(matches!(command, Ok(None))),
        Err(e) => {
            let _ = (e.kind(), e.to_string());
            assert!(
                command.is_err(),
                "the command parsed from a line that did not"
            );
        }
    }
    if let Some(value) = unescape(text) {
        let escaped = escape(&value);
        assert_eq!(unescape(&escaped).as_deref(), Some(value.as_str()));
    }
}
