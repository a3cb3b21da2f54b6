//! Names in NATS: subjects of channels and keys, keys of the buckets.
//!
//! A channel `charging.v1.variables` publishes on `isml.charging.v1.variables`,
//! and with key `door` on `isml.charging.v1.variables.door`. A key becomes one
//! subject token (and one key-value key token) by escaping: ASCII letters,
//! digits, `_` and `-` stay as they are; every other byte of its UTF-8 is
//! written `=XX` (two upper-case hex digits), and the empty key is `=`. So
//! `door.1` is `door=2E1`, `tür` is `t=C3=BCr`, and no escaped key holds
//! `.`, `*`, `>` or white space, which NATS gives meaning to. Both subjects
//! and bucket keys allow `=`, so the one form serves both.

/// The root of every publication subject.
pub(crate) const ROOT: &str = "isml";

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// One subject token for `text` (see the module docs).
pub(crate) fn escape(text: &str) -> String {
    if text.is_empty() {
        return "=".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push('=');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// The text of an escaped token; `None` when it is not one [`escape`] makes.
pub(crate) fn unescape(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if plain(b) {
            out.push(b);
            i += 1;
        } else if b == b'=' && i + 2 < bytes.len() {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            let byte = hex(bytes[i + 1])? << 4 | hex(bytes[i + 2])?;
            if plain(byte) {
                // Escaped where it need not be: not a form `escape` makes,
                // and two tokens must never name one key.
                return None;
            }
            out.push(byte);
            i += 3;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// The channel's name as subject tokens (each segment escaped; schema
/// names need no escaping, names given at run time might).
pub(crate) fn channel_tokens(name: &str) -> String {
    name.split('.').map(escape).collect::<Vec<_>>().join(".")
}

/// The subject of a channel's publications (of one key, when given).
pub(crate) fn subject(channel: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("{ROOT}.{}.{}", channel_tokens(channel), escape(k)),
        None => format!("{ROOT}.{}", channel_tokens(channel)),
    }
}

/// The subject that matches every publication of a channel.
pub(crate) fn channel_filter(channel: &str, keyed: bool) -> String {
    if keyed {
        format!("{ROOT}.{}.*", channel_tokens(channel))
    } else {
        subject(channel, None)
    }
}

/// The key of a retained value in the retained bucket.
pub(crate) fn retained_key(channel: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("{}.{}", channel_tokens(channel), escape(k)),
        None => channel_tokens(channel),
    }
}

/// The key a publication's subject (or a bucket key) names, on a keyed
/// channel: its last token, unescaped.
pub(crate) fn key_of(subject: &str) -> Option<String> {
    unescape(subject.rsplit('.').next()?)
}

/// Whether `id` may name a node: it becomes a subject token as it is.
pub(crate) fn valid_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_one_token() {
        for key in [
            "door",
            "door.1",
            "a b",
            "*",
            ">",
            "tür",
            "=",
            "==41",
            "x_y-z",
            "",
            "\u{1F600}",
        ] {
            let token = escape(key);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)),
                "{key:?} -> {token:?}"
            );
            assert_eq!(unescape(&token).as_deref(), Some(key), "{token}");
        }
        assert_eq!(escape("door.1"), "door=2E1");
        assert_eq!(escape("tür"), "t=C3=BCr");
        assert_eq!(escape(""), "=");
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for token in ["", "a.b", "=4", "=zz", "=41", "a=", "=FF", "a*"] {
            assert_eq!(unescape(token), None, "{token:?}");
        }
    }

    #[test]
    fn subjects_and_bucket_keys() {
        assert_eq!(
            subject("charging.v1.telemetry", None),
            "isml.charging.v1.telemetry"
        );
        assert_eq!(
            subject("charging.v1.variables", Some("door.1")),
            "isml.charging.v1.variables.door=2E1"
        );
        assert_eq!(
            channel_filter("charging.v1.variables", true),
            "isml.charging.v1.variables.*"
        );
        assert_eq!(
            retained_key("charging.v1.variables", Some("a b")),
            "charging.v1.variables.a=20b"
        );
        assert_eq!(
            key_of("isml.charging.v1.variables.door=2E1").as_deref(),
            Some("door.1")
        );
        assert!(valid_node_id("node-a_1"));
        assert!(!valid_node_id("a.b"));
        assert!(!valid_node_id(""));
    }
}
