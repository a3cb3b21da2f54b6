//! `isml serve --auth FILE`: who may connect, as devices over the isml
//! protocol and as people or apps through the HTTP gateway. The file is
//! TOML:
//!
//! ```toml
//! [[token]]
//! token = "demo-token"          # a bearer token
//! principal = "devices"         # optional: the identity the ACL matches
//!
//! [[user]]
//! username = "ops"
//! password = "s3cret"
//! principal = "ops:alice"
//! ```
//!
//! Anyone presenting neither a listed token nor a listed user is refused.

use std::path::Path;

use isml_runtime::handshake::{
    AuthError, AuthFuture, AuthRequest, Authenticator, Credentials, Identity,
};
use serde::Deserialize;

use crate::Failure;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<TokenEntry>,
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    #[serde(default)]
    principal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    password: String,
    #[serde(default)]
    principal: Option<String>,
}

/// The credentials of an `--auth` file.
pub(crate) struct CredentialsFile {
    tokens: Vec<TokenEntry>,
    users: Vec<UserEntry>,
}

/// Compares without stopping at the first difference, so that the time a
/// refusal takes tells nothing about how much of a secret was right.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl CredentialsFile {
    pub(crate) fn from_file(path: &Path) -> Result<CredentialsFile, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read the auth file `{}`: {e}",
                path.display()
            ))
        })?;
        let file: File = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| {
                let before = &text[..s.start.min(text.len())];
                (
                    before.matches('\n').count() + 1,
                    before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                )
            });
            Failure::invalid(format!("{}:{line}:{col}: {}", path.display(), e.message()))
        })?;
        if file.token.iter().any(|t| t.token.is_empty())
            || file.user.iter().any(|u| u.username.is_empty())
        {
            return Err(Failure::invalid(format!(
                "{}: tokens and user names must not be empty",
                path.display()
            )));
        }
        Ok(CredentialsFile {
            tokens: file.token,
            users: file.user,
        })
    }

    fn check(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        let found = match credentials {
            Credentials::Token(t) => self
                .tokens
                .iter()
                .find(|e| same(&e.token, t))
                .map(|e| e.principal.clone())
                .ok_or("invalid token"),
            Credentials::UserPassword { username, password } => self
                .users
                .iter()
                .find(|u| same(&u.username, username) && same(&u.password, password))
                .map(|u| u.principal.clone())
                .ok_or("invalid user name or password"),
            _ => Err("credentials are required (a token, or a user name and password)"),
        };
        found
            .map(|principal| Identity {
                device_id: None,
                principal,
            })
            .map_err(|m| AuthError(m.to_owned()))
    }
}

impl Authenticator for CredentialsFile {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        let r = self.check(request.credentials);
        Box::pin(async move { r })
    }
}

/// One authenticator shared by the server and the gateway.
pub(crate) struct Shared(pub(crate) std::sync::Arc<CredentialsFile>);

impl Authenticator for Shared {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        self.0.authenticate(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(
            &path,
            "[[token]]\ntoken = \"t1\"\nprincipal = \"ops:a\"\n[[user]]\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let f = CredentialsFile::from_file(&path).unwrap();
        let id = f.check(&Credentials::Token("t1".into())).unwrap();
        assert_eq!(id.principal.as_deref(), Some("ops:a"));
        assert!(f.check(&Credentials::Token("t2".into())).is_err());
        assert!(f.check(&Credentials::Token("t".into())).is_err());
        let id = f
            .check(&Credentials::UserPassword {
                username: "u".into(),
                password: "p".into(),
            })
            .unwrap();
        assert_eq!(id.principal, None);
        assert!(
            f.check(&Credentials::UserPassword {
                username: "u".into(),
                password: "x".into(),
            })
            .is_err()
        );
        assert!(f.check(&Credentials::None).is_err());

        std::fs::write(&path, "[[token]]\ntokn = \"x\"\n").unwrap();
        let e = CredentialsFile::from_file(&path).err().unwrap();
        assert!(e.message.contains("auth.toml:2:1"), "{}", e.message);
    }
}
