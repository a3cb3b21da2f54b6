//! Lines of the text protocol: parsing, formatting and the escaping of
//! values (docs/text-protocol.md, "Lines" and "Escaping").
//!
//! A line is `START | COMMAND=<CMD> | <NAME>=<VALUE> | ... | END`. Parsing
//! is tolerant where the seed's devices differ (case of `START`, `END`,
//! names and commands; spaces and tabs around `|` and `=`; a `%` that does
//! not start an escape) and strict where a mistake would change meaning
//! (a missing `START` or `END`, a part without `=`, a name given twice).

use std::fmt;

/// The longest variable name, device id or command word accepted, in bytes.
pub const MAX_NAME: usize = 256;

/// One parsed line: its command word and its parameters, in order.
///
/// Names are upper-cased; values are unescaped. This is the shape of every
/// line in both directions: [`Command::from_line`] reads a client's command
/// from it, and a client reads the server's pushes from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The command word (`SUB`, `HELLO?`, ...), upper-cased.
    pub command: String,
    /// The parameters after `COMMAND`, as `(NAME, value)`.
    pub params: Vec<(String, String)>,
}

impl Line {
    /// A line with a command and no parameters.
    pub fn new(command: impl Into<String>) -> Line {
        Line {
            command: command.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Line {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The value of parameter `name` (upper-case), if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored).
    /// `Ok(None)` for a blank line, which is not a command.
    pub fn parse(line: &str) -> Result<Option<Line>, ParseError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim_matches(is_space).is_empty() {
            return Ok(None);
        }
        let parts: Vec<&str> = line.split('|').map(|p| p.trim_matches(is_space)).collect();
        let first = parts.first().copied().unwrap_or_default();
        if !first.eq_ignore_ascii_case("START") {
            return Err(ParseError::MissingStart);
        }
        let last = parts.last().copied().unwrap_or_default();
        if parts.len() < 2 || !last.eq_ignore_ascii_case("END") {
            return Err(ParseError::MissingEnd);
        }
        let middle = &parts[1..parts.len() - 1];
        let mut command = None;
        let mut params: Vec<(String, String)> = Vec::with_capacity(middle.len().saturating_sub(1));
        for (i, part) in middle.iter().enumerate() {
            // Positions count from 1 at START.
            let position = i + 2;
            if part.is_empty() {
                return Err(ParseError::EmptyPart { position });
            }
            let Some((name, value)) = part.split_once('=') else {
                return Err(ParseError::NotAParameter { position });
            };
            let name = name.trim_matches(is_space);
            if name.is_empty()
                || name.len() > MAX_NAME
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ParseError::BadName { position });
            }
            let name = name.to_ascii_uppercase();
            let value = unescape(value.trim_matches(is_space))
                .ok_or_else(|| ParseError::NotUtf8Value { name: name.clone() })?;
            if i == 0 {
                if name != "COMMAND" {
                    return Err(ParseError::MissingCommand);
                }
                if value.is_empty() || value.len() > MAX_NAME {
                    return Err(ParseError::MissingCommand);
                }
                command = Some(value.to_ascii_uppercase());
                continue;
            }
            if name == "COMMAND" || params.iter().any(|(n, _)| *n == name) {
                return Err(ParseError::Duplicate { name });
            }
            params.push((name, value));
        }
        let command = command.ok_or(ParseError::MissingCommand)?;
        Ok(Some(Line { command, params }))
    }
}

/// Writes the line, values escaped, without the line end.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "START | COMMAND={}", escape(&self.command))?;
        for (name, value) in &self.params {
            write!(f, " | {name}={}", escape(value))?;
        }
        f.write_str(" | END")
    }
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Why a line is not a valid command. Each answers `BAD`, and is counted.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line is longer than the listener's maximum.
    #[error("line longer than {max} bytes")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// The line is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// The first part is not `START`.
    #[error("line does not begin with START")]
    MissingStart,
    /// The last part is not `END`.
    #[error("line does not end with END")]
    MissingEnd,
    /// The part after `START` is not `COMMAND=<word>`.
    #[error("the part after START must be COMMAND=<command>")]
    MissingCommand,
    /// Two `|` with nothing between them.
    #[error("part {position} is empty")]
    EmptyPart {
        /// The part's position (1 is `START`).
        position: usize,
    },
    /// A part without `=`.
    #[error("part {position} is not NAME=VALUE")]
    NotAParameter {
        /// The part's position (1 is `START`).
        position: usize,
    },
    /// A name that is empty or has characters other than letters, digits, `_` and `-`.
    #[error("part {position} has an invalid parameter name")]
    BadName {
        /// The part's position (1 is `START`).
        position: usize,
    },
    /// A parameter given twice.
    #[error("parameter {name} is given twice")]
    Duplicate {
        /// Its name.
        name: String,
    },
    /// A value whose unescaped bytes are not UTF-8.
    #[error("the value of {name} is not UTF-8 once unescaped")]
    NotUtf8Value {
        /// The parameter.
        name: String,
    },
    /// A command word this server does not know.
    #[error("unknown command {command:?}")]
    UnknownCommand {
        /// The word, as sent (at most [`MAX_NAME`] bytes).
        command: String,
    },
    /// A parameter the command needs is missing.
    #[error("{command} needs parameter {name}")]
    MissingParameter {
        /// The command.
        command: &'static str,
        /// The parameter.
        name: &'static str,
    },
    /// A variable name or device id that is empty, too long or has control characters.
    #[error("{name} {reason}")]
    InvalidName {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl ParseError {
    /// A short name of the error's kind, for statistics and logs
    /// (`too_long`, `not_utf8`, `malformed`, `unknown_command`, `missing_parameter`).
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::TooLong { .. } => "too_long",
            ParseError::NotUtf8 | ParseError::NotUtf8Value { .. } => "not_utf8",
            ParseError::UnknownCommand { .. } => "unknown_command",
            ParseError::MissingParameter { .. } => "missing_parameter",
            ParseError::InvalidName { .. } => "invalid_name",
            _ => "malformed",
        }
    }
}

/// A command of a text client.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELLO!`: the answer to the server's `HELLO?`.
    Hello,
    /// `SUB`: subscribe to a variable.
    Sub {
        /// The variable.
        variable: String,
    },
    /// `UNSUB`: unsubscribe from a variable.
    Unsub {
        /// The variable.
        variable: String,
    },
    /// `UNSUBALL`: unsubscribe from everything.
    UnsubAll,
    /// `PUB`: publish a value to a variable.
    Pub {
        /// The variable.
        variable: String,
        /// The value.
        value: String,
    },
    /// `DEL`: delete a variable's retained value.
    Del {
        /// The variable.
        variable: String,
    },
    /// `MSG`: send a value to a device.
    Msg {
        /// The receiving device's id.
        device: String,
        /// The value.
        value: String,
    },
    /// `ID`: set this connection's device id (with an optional `TOKEN`,
    /// handed to the server's authenticator).
    Id {
        /// The device id.
        id: String,
        /// The token, if given.
        token: Option<String>,
    },
    /// `CLOSE`: the client closes the connection.
    Close,
}

impl Command {
    /// Parses a client's line; `Ok(None)` for a blank line.
    pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
        match Line::parse(line)? {
            Some(line) => Command::from_line(&line).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a client's command from a parsed line. Parameters a command
    /// does not use are ignored.
    pub fn from_line(line: &Line) -> Result<Command, ParseError> {
        let need = |command: &'static str, name: &'static str| {
            line.get(name)
                .map(str::to_owned)
                .ok_or(ParseError::MissingParameter { command, name })
        };
        let variable = |command: &'static str| {
            let v = need(command, "VARIABLE")?;
            check_name("VARIABLE", &v)?;
            Ok::<_, ParseError>(v)
        };
        Ok(match line.command.as_str() {
            "HELLO!" => Command::Hello,
            "SUB" => Command::Sub {
                variable: variable("SUB")?,
            },
            "UNSUB" => Command::Unsub {
                variable: variable("UNSUB")?,
            },
            "UNSUBALL" => Command::UnsubAll,
            "PUB" => Command::Pub {
                variable: variable("PUB")?,
                value: need("PUB", "VALUE")?,
            },
            "DEL" => Command::Del {
                variable: variable("DEL")?,
            },
            "MSG" => {
                let device = need("MSG", "DEVICE")?;
                check_name("DEVICE", &device)?;
                Command::Msg {
                    device,
                    value: need("MSG", "VALUE")?,
                }
            }
            "ID" => {
                let id = need("ID", "ID")?;
                check_name("ID", &id)?;
                Command::Id {
                    id,
                    token: line.get("TOKEN").map(str::to_owned),
                }
            }
            "CLOSE" => Command::Close,
            other => {
                return Err(ParseError::UnknownCommand {
                    command: other.to_owned(),
                });
            }
        })
    }
}

/// Variable names and device ids: not empty, at most [`MAX_NAME`] bytes,
/// no control characters.
fn check_name(name: &'static str, value: &str) -> Result<(), ParseError> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value.len() > MAX_NAME {
        "is longer than 256 bytes"
    } else if value.chars().any(char::is_control) {
        "has a control character"
    } else {
        return Ok(());
    };
    Err(ParseError::InvalidName { name, reason })
}

/// Escapes a value for a line: `%` as `%25`, `|` as `%7C`, control
/// characters as `%XX`, and a space or tab at either end as `%20` / `%09`
/// (spaces around `|` are insignificant). Everything else is written as is.
pub fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    let last = value.len().saturating_sub(1);
    let needs = |i: usize, c: char| {
        c == '%' || c == '|' || c.is_control() || ((i == 0 || i == last) && is_space(c))
    };
    if !value.char_indices().any(|(i, c)| needs(i, c)) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for (i, c) in value.char_indices() {
        if needs(i, c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Reverses [`escape`]: `%` and two hex digits is that byte; any other `%`
/// is kept as it is. `None` when the bytes are not UTF-8.
pub fn unescape(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Formats a time (milliseconds since the Unix epoch) as RFC 3339 in UTC
/// with milliseconds: `2026-12-02T15:04:05.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Year, month, day of a day count since 1970-01-01 (the proleptic
/// Gregorian calendar, by 400-year eras).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_seed_form_and_tolerates_spacing_and_case() {
        let c = Command::parse("START | COMMAND=PUB | VARIABLE=door | VALUE=open | END").unwrap();
        assert_eq!(
            c,
            Some(Command::Pub {
                variable: "door".into(),
                value: "open".into()
            })
        );
        let c = Command::parse("start|command = sub|variable= door |end\r").unwrap();
        assert_eq!(
            c,
            Some(Command::Sub {
                variable: "door".into()
            })
        );
        assert_eq!(Command::parse("   ").unwrap(), None);
        assert_eq!(
            Command::parse("START | COMMAND=HELLO! | END").unwrap(),
            Some(Command::Hello)
        );
    }

    #[test]
    fn each_malformed_form_has_its_error() {
        let cases: &[(&str, ParseError)] = &[
            ("COMMAND=SUB | VARIABLE=x | END", ParseError::MissingStart),
            ("START | COMMAND=SUB | VARIABLE=x", ParseError::MissingEnd),
            ("START", ParseError::MissingEnd),
            ("START | VARIABLE=x | END", ParseError::MissingCommand),
            ("START | END", ParseError::MissingCommand),
            (
                "START | COMMAND=SUB || VARIABLE=x | END",
                ParseError::EmptyPart { position: 3 },
            ),
            (
                "START | COMMAND=SUB | VARIABLE | END",
                ParseError::NotAParameter { position: 3 },
            ),
            (
                "START | COMMAND=SUB | VAR IABLE=x | END",
                ParseError::BadName { position: 3 },
            ),
            (
                "START | COMMAND=PUB | VARIABLE=x | VARIABLE=y | VALUE=1 | END",
                ParseError::Duplicate {
                    name: "VARIABLE".into(),
                },
            ),
            (
                "START | COMMAND=PUB | VARIABLE=x | VALUE=%FF | END",
                ParseError::NotUtf8Value {
                    name: "VALUE".into(),
                },
            ),
            (
                "START | COMMAND=JUMP | END",
                ParseError::UnknownCommand {
                    command: "JUMP".into(),
                },
            ),
            (
                "START | COMMAND=PUB | VARIABLE=x | END",
                ParseError::MissingParameter {
                    command: "PUB",
                    name: "VALUE",
                },
            ),
            (
                "START | COMMAND=MSG | VALUE=x | END",
                ParseError::MissingParameter {
                    command: "MSG",
                    name: "DEVICE",
                },
            ),
            (
                "START | COMMAND=SUB | VARIABLE= | END",
                ParseError::InvalidName {
                    name: "VARIABLE",
                    reason: "is empty",
                },
            ),
            (
                "START | COMMAND=SUB | VARIABLE=a%0Ab | END",
                ParseError::InvalidName {
                    name: "VARIABLE",
                    reason: "has a control character",
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(Command::parse(line).as_ref(), Err(want), "{line}");
        }
    }

    #[test]
    fn values_keep_equals_signs_and_unescape_percent_sequences() {
        let c = Command::parse("START | COMMAND=PUB | VARIABLE=eq | VALUE=a=b%7Cc%0A%25 50% | END")
            .unwrap();
        assert_eq!(
            c,
            Some(Command::Pub {
                variable: "eq".into(),
                value: "a=b|c\n% 50%".into()
            })
        );
    }

    #[test]
    fn escape_covers_what_would_change_the_line() {
        assert_eq!(escape("plain value"), "plain value");
        assert_eq!(escape("a|b"), "a%7Cb");
        assert_eq!(escape("50%"), "50%25");
        assert_eq!(escape("x\ny\r"), "x%0Ay%0D");
        assert_eq!(escape(" pad "), "%20pad%20");
        assert_eq!(escape("é"), "é");
        let line = Line::new("SUB")
            .param("VARIABLE", "door")
            .param("VALUE", "{\"a\":\"b|c\"}");
        assert_eq!(
            line.to_string(),
            "START | COMMAND=SUB | VARIABLE=door | VALUE={\"a\":\"b%7Cc\"} | END"
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_223_845_123), "2026-12-02T15:04:05.123Z");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The parser never panics, whatever the line.
        #[test]
        fn parse_never_panics(line in ".{0,200}") {
            let _ = Command::parse(&line);
        }

        /// Lines built from the grammar's pieces, with noise, never panic either.
        #[test]
        fn parse_never_panics_on_near_valid_lines(
            parts in proptest::collection::vec("(START|END|COMMAND|=|\\||%|[A-Za-z!?]{1,6}| |%[0-9A-F]{2}){0,12}", 0..6)
        ) {
            let _ = Command::parse(&parts.join("|"));
        }

        /// Every value survives escape, a line, and parsing.
        #[test]
        fn any_value_round_trips(value in "\\PC*|.*", variable in "[a-z][a-z0-9/._-]{0,20}") {
            let line = Line::new("PUB").param("VARIABLE", variable.clone()).param("VALUE", value.clone());
            let text = line.to_string();
            prop_assert!(!text.contains('\n'));
            let back = Command::parse(&text).unwrap();
            prop_assert_eq!(back, Some(Command::Pub { variable, value }));
        }
    }
}
