//! Access control lists, read from TOML files:
//!
//! ```toml
//! # A request is allowed when an allow rule matches it and no deny rule
//! # does. With an ACL installed, everything else is denied.
//! [[allow]]
//! devices = ["station-*"]            # globs on the device id (default: any)
//! actions = ["publish"]              # publish, subscribe, delete, call, send_to, or "*"
//! names = ["charging.v1.telemetry"]  # channel names, method names, or the
//!                                    # target device id for send_to (globs)
//!
//! [[allow]]
//! identities = ["ops:*"]             # globs on the principal the authenticator
//!                                    # established; a session without one never matches
//! actions = ["*"]
//! names = ["*"]
//!
//! [[deny]]
//! devices = ["station-9*"]
//! actions = ["delete"]
//! names = ["*"]
//! ```
//!
//! Globs: `*` matches any run of characters (dots included), `?` exactly one;
//! every other character matches itself.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What a session wants to do, as the ACL sees it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish on a channel (the name is the channel's full name).
    Publish,
    /// Subscribe to a channel.
    Subscribe,
    /// Delete a retained value of a channel.
    Delete,
    /// Call a method (the name is the method's full name).
    Call,
    /// Send a device-to-device message (the name is the target device id).
    SendTo,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::Publish,
        Action::Subscribe,
        Action::Delete,
        Action::Call,
        Action::SendTo,
    ];

    /// The name in ACL files.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Delete => "delete",
            Action::Call => "call",
            Action::SendTo => "send_to",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn parse(s: &str) -> Option<u8> {
        if s == "*" {
            return Some(0x1f);
        }
        Action::ALL.iter().find(|a| a.name() == s).map(|a| a.bit())
    }
}

/// Why an ACL file could not be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("cannot read ACL file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not a valid ACL.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// The file, or `<string>`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<RuleText>,
    #[serde(default)]
    deny: Vec<RuleText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    #[serde(default)]
    devices: Option<Vec<String>>,
    #[serde(default)]
    identities: Option<Vec<String>>,
    actions: Vec<String>,
    names: Vec<String>,
}

/// One rule of an ACL: who (devices, identities), what (actions), on what (names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// Globs on the device id; `None`: any device.
    pub devices: Option<Vec<String>>,
    /// Globs on the principal; `None`: any session, with a principal or not.
    pub identities: Option<Vec<String>>,
    /// The actions it covers.
    pub actions: Vec<Action>,
    /// Globs on channel names, method names or target device ids.
    pub names: Vec<String>,
}

#[derive(Debug, Clone)]
struct Compiled {
    devices: Option<Vec<String>>,
    identities: Option<Vec<String>>,
    actions: u8,
    names: Vec<String>,
}

impl Compiled {
    fn new(r: &AclRule) -> Compiled {
        Compiled {
            devices: r.devices.clone(),
            identities: r.identities.clone(),
            actions: r.actions.iter().fold(0, |m, a| m | a.bit()),
            names: r.names.clone(),
        }
    }

    fn matches(&self, device: &str, principal: Option<&str>, action: Action, name: &str) -> bool {
        self.actions & action.bit() != 0
            && self
                .devices
                .as_ref()
                .is_none_or(|d| d.iter().any(|p| glob_match(p, device)))
            && match &self.identities {
                None => true,
                Some(ids) => principal.is_some_and(|p| ids.iter().any(|g| glob_match(g, p))),
            }
            && self.names.iter().any(|p| glob_match(p, name))
    }
}

/// An access control list: allow rules and deny rules. A request is allowed
/// when at least one allow rule matches it and no deny rule does; an empty
/// ACL denies everything. See the module docs for the file format.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    allow: Vec<Compiled>,
    deny: Vec<Compiled>,
}

impl Acl {
    /// An ACL from rules.
    pub fn new(allow: &[AclRule], deny: &[AclRule]) -> Acl {
        Acl {
            allow: allow.iter().map(Compiled::new).collect(),
            deny: deny.iter().map(Compiled::new).collect(),
        }
    }

    /// Reads an ACL file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Acl, AclError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Io {
            path: path.to_owned(),
            source,
        })?;
        parse(&text, &path.display().to_string())
    }

    /// Parses an ACL from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Acl, AclError> {
        parse(text, "<string>")
    }

    /// Whether `device` (with the authenticator's `principal`, if any) may
    /// do `action` on `name`: a channel's or method's full name, or the
    /// target device id for [`Action::SendTo`].
    pub fn check(&self, device: &str, principal: Option<&str>, action: Action, name: &str) -> bool {
        self.allow
            .iter()
            .any(|r| r.matches(device, principal, action, name))
            && !self
                .deny
                .iter()
                .any(|r| r.matches(device, principal, action, name))
    }
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn parse(text: &str, origin: &str) -> Result<Acl, AclError> {
    let err = |offset: usize, message: String| {
        let (line, column) = position(text, offset);
        AclError::Parse {
            origin: origin.to_owned(),
            line,
            column,
            message,
        }
    };
    let file: File = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        err(offset, e.message().to_owned())
    })?;
    let lower = |rules: Vec<RuleText>, kind: &str| -> Result<Vec<Compiled>, AclError> {
        let mut out = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            let mut actions = 0u8;
            for a in &r.actions {
                actions |= Action::parse(a).ok_or_else(|| {
                    let offset = text.find(&format!("\"{a}\"")).unwrap_or(0);
                    err(
                        offset,
                        format!(
                            "{kind} rule {}: unknown action {a:?} (expected publish, subscribe, delete, call, send_to or \"*\")",
                            i + 1
                        ),
                    )
                })?;
            }
            let empty = |v: &Option<Vec<String>>| {
                v.as_ref().is_some_and(|v| v.iter().any(String::is_empty))
            };
            if r.names.iter().any(String::is_empty) || empty(&r.devices) || empty(&r.identities) {
                return Err(err(
                    0,
                    format!(
                        "{kind} rule {}: an empty pattern matches nothing; write \"*\" for anything",
                        i + 1
                    ),
                ));
            }
            out.push(Compiled {
                devices: r.devices,
                identities: r.identities,
                actions,
                names: r.names,
            });
        }
        Ok(out)
    };
    Ok(Acl {
        allow: lower(file.allow, "allow")?,
        deny: lower(file.deny, "deny")?,
    })
}

/// Whether `text` matches the glob `pattern` (`*`: any run, `?`: one
/// character). Linear in time: the last `*` is retried, never more.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("station-*", "station-12"));
        assert!(!glob_match("station-*", "stations"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("charging.*.telemetry", "charging.v1.telemetry"));
        assert!(glob_match("*a*b", "xxaxxbb"));
        assert!(!glob_match("*a*b", "xxaxxbc"));
    }

    #[test]
    fn file_format_and_errors() {
        let acl = Acl::from_toml_str(
            r#"
[[allow]]
devices = ["station-*"]
actions = ["publish", "subscribe"]
names = ["charging.v1.*"]

[[allow]]
identities = ["ops"]
actions = ["*"]
names = ["*"]

[[deny]]
devices = ["station-9"]
actions = ["publish"]
names = ["*"]
"#,
        )
        .unwrap();
        assert!(acl.check("station-1", None, Action::Publish, "charging.v1.telemetry"));
        assert!(!acl.check("station-1", None, Action::Delete, "charging.v1.telemetry"));
        assert!(!acl.check("station-9", None, Action::Publish, "charging.v1.telemetry"));
        assert!(acl.check(
            "station-9",
            None,
            Action::Subscribe,
            "charging.v1.telemetry"
        ));
        assert!(acl.check("laptop", Some("ops"), Action::Delete, "x"));
        assert!(!acl.check("laptop", None, Action::Delete, "x"));
        assert!(!Acl::default().check("a", None, Action::Call, "b"));

        let e =
            Acl::from_toml_str("[[allow]]\nactions = [\"fly\"]\nnames = [\"*\"]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "<string>:2:12: allow rule 1: unknown action \"fly\" (expected publish, subscribe, delete, call, send_to or \"*\")"
        );
        let e = Acl::from_toml_str("[[allow]]\nactions = [\"call\"]\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("<string>:1:1: missing field `names`"),
            "{e}"
        );
        let e = Acl::from_toml_str("[[allow]]\nactons = 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `actons`"), "{e}");
        assert!(matches!(
            Acl::from_toml_file("/nonexistent/acl.toml"),
            Err(AclError::Io { .. })
        ));
    }
}
