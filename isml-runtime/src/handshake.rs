//! The connection handshake: `hello` (client to server) and `welcome` (server
//! to client) link frames, credentials and the pluggable [`Authenticator`].
//!
//! Payloads are written with the wire primitives (`uvarint`, length-prefixed
//! strings, fixed 8-byte little-endian fingerprints); `docs/runtime.md` gives
//! their layout. A refusal is a `close` frame whose error body carries the
//! reason (code 6 unauthenticated, 11 version mismatch, 8 resource exhausted).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::session::PeerService;
use crate::wire::{DecodeError, Reader, varint, write};

/// The runtime protocol version carried in `hello` and `welcome`.
pub const PROTOCOL_VERSION: u64 = 1;

/// Why [`read_whole`] stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    Transport(crate::transport::TransportError),
    Fragment(crate::wire::FragmentError),
}

/// Reads the next whole message of a handshake, joining fragments (wire
/// format §2.6) within the reassembler's limit. `Ok(None)`: the connection
/// ended (inside a message or not).
pub(crate) async fn read_whole(
    rx: &mut crate::transport::FrameStream,
    joiner: &mut crate::wire::Reassembler,
) -> Result<Option<crate::wire::Frame>, ReadError> {
    use futures_util::StreamExt;
    loop {
        let Some(frame) = rx.next().await else {
            return Ok(None);
        };
        let frame = frame.map_err(ReadError::Transport)?;
        match joiner.push(frame).map_err(ReadError::Fragment)? {
            crate::wire::Assembled::Complete(f) => return Ok(Some(f)),
            crate::wire::Assembled::Pending => {}
        }
    }
}

/// Longest device id, in bytes of UTF-8.
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Why a device id is refused ([`validate_device_id`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDeviceId {
    /// Empty (only a claim may be empty: the server then assigns one).
    #[error("device id is empty")]
    Empty,
    /// Longer than [`MAX_DEVICE_ID_LEN`] bytes.
    #[error("device id is {len} bytes long; the limit is {MAX_DEVICE_ID_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// It contains a character that is not printable.
    #[error("device id contains the non-printable character {ch:?} at byte {at}")]
    NotPrintable {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// It begins or ends with white space.
    #[error("device id begins or ends with white space")]
    Padded,
}

/// Checks a device id: 1 to [`MAX_DEVICE_ID_LEN`] bytes of printable UTF-8,
/// with no control characters, no invisible formatting characters (zero
/// width spaces, bidirectional overrides, byte order marks) and no white
/// space at either end. Device ids reach logs, dashboards and terminals:
/// these rules keep them from rewriting what is shown around them.
///
/// ```
/// use isml_runtime::handshake::validate_device_id;
/// assert!(validate_device_id("cabinet-0042").is_ok());
/// assert!(validate_device_id("bad\nid").is_err());
/// ```
pub fn validate_device_id(id: &str) -> Result<(), InvalidDeviceId> {
    if id.is_empty() {
        return Err(InvalidDeviceId::Empty);
    }
    if id.len() > MAX_DEVICE_ID_LEN {
        return Err(InvalidDeviceId::TooLong { len: id.len() });
    }
    if let Some((at, ch)) = id.char_indices().find(|&(_, c)| !printable(c)) {
        return Err(InvalidDeviceId::NotPrintable { ch, at });
    }
    if id.trim() != id {
        return Err(InvalidDeviceId::Padded);
    }
    Ok(())
}

/// Not a control character, and not one of the invisible characters that
/// change how the text around them is shown.
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{00AD}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// A peer-supplied string made safe to log: special characters escaped (as
/// Rust's `escape_debug` does) and cut to at most 200 characters.
pub(crate) struct Untrusted<'a>(pub(crate) &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 200;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX {
                return f.write_str("…");
            }
            if printable(c) && c != '\\' {
                fmt::Write::write_char(f, c)?;
            } else {
                write!(f, "{}", c.escape_unicode())?;
            }
        }
        Ok(())
    }
}

/// What a client proves its identity with.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Nothing (the TLS client certificate, if any, may suffice).
    #[default]
    None,
    /// A bearer token.
    Token(String),
    /// A username and password.
    UserPassword {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token(_) => f.write_str("Token(***)"),
            Credentials::UserPassword { username, .. } => {
                write!(
                    f,
                    "UserPassword {{ username: {username:?}, password: *** }}"
                )
            }
        }
    }
}

/// The `hello` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's protocol version.
    pub version: u64,
    /// The device id the client claims (may be empty: the server assigns one).
    pub device_id: String,
    /// Free-form client description (software and version).
    pub agent: String,
    /// Proof of identity.
    pub credentials: Credentials,
    /// `(type id, fingerprint)` of every message type the client knows.
    pub types: Vec<(u32, u64)>,
    /// Bytes of items the client accepts on a stream before it grants more
    /// credit (wire format §2.7).
    pub stream_window: u32,
    /// The services the client serves (the server may call them).
    pub services: Vec<PeerService>,
}

/// The `welcome` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The server's protocol version.
    pub version: u64,
    /// The session id the server assigned.
    pub session_id: u64,
    /// The device id the server assigned.
    pub device_id: String,
    /// The server's keep-alive interval in milliseconds (0: none).
    pub keepalive_ms: u64,
    /// `(type id, fingerprint)` of every message type the server knows.
    pub types: Vec<(u32, u64)>,
    /// Bytes of items the server accepts on a stream before it grants more
    /// credit (wire format §2.7).
    pub stream_window: u32,
    /// The services the server serves.
    pub services: Vec<PeerService>,
}

/// The resume section a client adds to its `hello` when it wants a
/// reliable session (`docs/reliability.md`, `docs/runtime.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HelloResume {
    /// The token of the session to resume (from an earlier `welcome`);
    /// `None` for a new reliable session.
    pub token: Option<[u8; 16]>,
    /// The highest sequence number the client received on that session.
    pub received: u64,
}

/// The resume section of a `welcome` to a client that sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WelcomeResume {
    /// The token naming the session's reliable state, for the next resume.
    pub token: [u8; 16],
    /// Whether the server resumed the session the client named.
    pub resumed: bool,
    /// The highest sequence number the server received on that session
    /// (0 when not resumed).
    pub received: u64,
    /// How long the server keeps the state after the connection breaks.
    pub expiry_ms: u64,
}

fn put_token(buf: &mut BytesMut, token: Option<&[u8; 16]>) {
    match token {
        Some(t) => {
            varint::put(buf, 16);
            buf.put_slice(t);
        }
        None => varint::put(buf, 0),
    }
}

fn get_token(r: &mut Reader<'_>) -> Result<Option<[u8; 16]>, DecodeError> {
    let at = r.position();
    let t = r.byte_slice()?;
    match t.len() {
        0 => Ok(None),
        16 => {
            let mut token = [0u8; 16];
            token.copy_from_slice(t);
            Ok(Some(token))
        }
        n => Err(DecodeError::IntegerOutOfRange {
            at,
            value: n as u64,
            ty: "resume token length (0 or 16)",
        }),
    }
}

fn put_str(buf: &mut BytesMut, s: &str) {
    write::len_prefixed(buf, s.as_bytes());
}

fn put_types(buf: &mut BytesMut, types: &[(u32, u64)]) {
    varint::put(buf, types.len() as u64);
    for &(id, fp) in types {
        varint::put(buf, u64::from(id));
        buf.put_u64_le(fp);
    }
}

/// The stream window a hello of another protocol version is given (it is
/// refused anyway).
pub const DEFAULT_STREAM_WINDOW: u32 = 16;

fn put_services(buf: &mut BytesMut, window: u32, services: &[PeerService]) {
    varint::put(buf, u64::from(window));
    varint::put(buf, services.len() as u64);
    for s in services {
        put_str(buf, &s.name);
        varint::put(buf, s.methods.len() as u64);
        for &(id, fp) in &s.methods {
            varint::put(buf, u64::from(id));
            buf.put_u64_le(fp);
        }
    }
}

fn get_services(r: &mut Reader<'_>) -> Result<(u32, Vec<PeerService>), DecodeError> {
    let at = r.position();
    let window = r.uvarint()?;
    let window = match u32::try_from(window) {
        Ok(w) if w >= 1 => w,
        _ => {
            return Err(DecodeError::IntegerOutOfRange {
                at,
                value: window,
                ty: "stream window (1 ..= 2^32-1)",
            });
        }
    };
    let n = r.uvarint()?;
    // A service takes at least 2 bytes, a method 9: never allocate past
    // what is there.
    let mut services = Vec::with_capacity((n as usize).min(r.remaining() / 2));
    for _ in 0..n {
        let name = r.str()?.to_owned();
        let m = r.uvarint()?;
        let mut methods: Vec<(u32, u64)> = Vec::with_capacity((m as usize).min(r.remaining() / 9));
        for _ in 0..m {
            let at = r.position();
            let id = r.uvarint()?;
            if id == 0 || id > 65535 {
                return Err(DecodeError::IntegerOutOfRange {
                    at,
                    value: id,
                    ty: "method id (1 ..= 65535)",
                });
            }
            if methods
                .last()
                .is_some_and(|&(prev, _)| u64::from(prev) >= id)
            {
                return Err(DecodeError::IntegerOutOfRange {
                    at,
                    value: id,
                    ty: "method id (ascending, each once)",
                });
            }
            let raw = r.raw(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(raw);
            methods.push((id as u32, u64::from_le_bytes(a)));
        }
        services.push(PeerService { name, methods });
    }
    Ok((window, services))
}

fn get_types(r: &mut Reader<'_>) -> Result<Vec<(u32, u64)>, DecodeError> {
    let n = r.uvarint()?;
    // Each entry takes at least 9 bytes: never allocate past what is there.
    let mut out = Vec::with_capacity((n as usize).min(r.remaining() / 9));
    for _ in 0..n {
        let at = r.position();
        let id = r.u32()?;
        if id == 0 {
            // Type ids start at 1 (wire format §2.1).
            return Err(DecodeError::IntegerOutOfRange {
                at,
                value: 0,
                ty: "type id (1 ..= 2^32-1)",
            });
        }
        let raw = r.raw(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(raw);
        out.push((id, u64::from_le_bytes(a)));
    }
    Ok(out)
}

impl Hello {
    /// Encodes the payload.
    pub fn encode(&self) -> Bytes {
        self.encode_with(None)
    }

    /// Encodes the payload with a resume section (`docs/runtime.md`).
    pub fn encode_with(&self, resume: Option<&HelloResume>) -> Bytes {
        let mut buf = BytesMut::with_capacity(32 + self.types.len() * 10);
        varint::put(&mut buf, self.version);
        put_str(&mut buf, &self.device_id);
        put_str(&mut buf, &self.agent);
        match &self.credentials {
            Credentials::None => varint::put(&mut buf, 0),
            Credentials::Token(t) => {
                varint::put(&mut buf, 1);
                put_str(&mut buf, t);
            }
            Credentials::UserPassword { username, password } => {
                varint::put(&mut buf, 2);
                put_str(&mut buf, username);
                put_str(&mut buf, password);
            }
        }
        put_types(&mut buf, &self.types);
        put_services(&mut buf, self.stream_window, &self.services);
        if let Some(resume) = resume {
            put_token(&mut buf, resume.token.as_ref());
            varint::put(&mut buf, resume.received);
        }
        buf.freeze()
    }

    /// Decodes a payload. Only the version is read when it is not
    /// [`PROTOCOL_VERSION`], so that a newer client gets a clear refusal.
    pub fn decode(payload: &[u8]) -> Result<Hello, DecodeError> {
        Self::decode_with(payload).map(|(h, _)| h)
    }

    /// Decodes a payload and its resume section, if it has one.
    pub fn decode_with(payload: &[u8]) -> Result<(Hello, Option<HelloResume>), DecodeError> {
        let mut r = Reader::new(payload);
        let version = r.uvarint()?;
        if version != PROTOCOL_VERSION {
            let hello = Hello {
                version,
                device_id: String::new(),
                agent: String::new(),
                credentials: Credentials::None,
                types: Vec::new(),
                stream_window: DEFAULT_STREAM_WINDOW,
                services: Vec::new(),
            };
            return Ok((hello, None));
        }
        let device_id = r.str()?.to_owned();
        let agent = r.str()?.to_owned();
        let credentials = match r.uvarint()? {
            0 => Credentials::None,
            1 => Credentials::Token(r.str()?.to_owned()),
            2 => Credentials::UserPassword {
                username: r.str()?.to_owned(),
                password: r.str()?.to_owned(),
            },
            other => {
                return Err(DecodeError::IntegerOutOfRange {
                    at: 0,
                    value: other,
                    ty: "credential kind",
                });
            }
        };
        let types = get_types(&mut r)?;
        let (stream_window, services) = get_services(&mut r)?;
        let resume = if r.is_empty() {
            None
        } else {
            let token = get_token(&mut r)?;
            let received = r.uvarint()?;
            Some(HelloResume { token, received })
        };
        r.finish("hello")?;
        let hello = Hello {
            version,
            device_id,
            agent,
            credentials,
            types,
            stream_window,
            services,
        };
        Ok((hello, resume))
    }
}

impl Welcome {
    /// Encodes the payload.
    pub fn encode(&self) -> Bytes {
        self.encode_with(None)
    }

    /// Encodes the payload with a resume section (`docs/runtime.md`).
    pub fn encode_with(&self, resume: Option<&WelcomeResume>) -> Bytes {
        let mut buf = BytesMut::with_capacity(32 + self.types.len() * 10);
        varint::put(&mut buf, self.version);
        varint::put(&mut buf, self.session_id);
        put_str(&mut buf, &self.device_id);
        varint::put(&mut buf, self.keepalive_ms);
        put_types(&mut buf, &self.types);
        put_services(&mut buf, self.stream_window, &self.services);
        if let Some(resume) = resume {
            put_token(&mut buf, Some(&resume.token));
            varint::put(&mut buf, u64::from(resume.resumed));
            varint::put(&mut buf, resume.received);
            varint::put(&mut buf, resume.expiry_ms);
        }
        buf.freeze()
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8]) -> Result<Welcome, DecodeError> {
        Self::decode_with(payload).map(|(w, _)| w)
    }

    /// Decodes a payload and its resume section, if it has one.
    pub fn decode_with(payload: &[u8]) -> Result<(Welcome, Option<WelcomeResume>), DecodeError> {
        let mut r = Reader::new(payload);
        let version = r.uvarint()?;
        let session_id = r.uvarint()?;
        let device_id = r.str()?.to_owned();
        let keepalive_ms = r.uvarint()?;
        let types = get_types(&mut r)?;
        let (stream_window, services) = get_services(&mut r)?;
        let resume = if r.is_empty() {
            None
        } else {
            let at = r.position();
            let token = get_token(&mut r)?.ok_or(DecodeError::IntegerOutOfRange {
                at,
                value: 0,
                ty: "resume token length (16)",
            })?;
            let at = r.position();
            let resumed = match r.uvarint()? {
                0 => false,
                1 => true,
                value => {
                    return Err(DecodeError::IntegerOutOfRange {
                        at,
                        value,
                        ty: "resumed flag (0 or 1)",
                    });
                }
            };
            let received = r.uvarint()?;
            let expiry_ms = r.uvarint()?;
            Some(WelcomeResume {
                token,
                resumed,
                received,
                expiry_ms,
            })
        };
        r.finish("welcome")?;
        let welcome = Welcome {
            version,
            session_id,
            device_id,
            keepalive_ms,
            types,
            stream_window,
            services,
        };
        Ok((welcome, resume))
    }
}

/// What an [`Authenticator`] is asked to check.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthRequest<'a> {
    /// The credentials from `hello`.
    pub credentials: &'a Credentials,
    /// The device id the client claims (may be empty).
    pub device_id: &'a str,
    /// The client's agent string.
    pub agent: &'a str,
    /// The peer address.
    pub peer: &'a str,
    /// The transport scheme (`tcp`, `tls`, ...).
    pub scheme: &'static str,
    /// The DER certificate chain of a TLS client (mutual TLS), leaf first.
    pub peer_certificates: Option<&'a [Vec<u8>]>,
}

impl<'a> AuthRequest<'a> {
    /// A request to check credentials presented outside a handshake (an
    /// HTTP gateway's bearer token or Basic credentials), so that the same
    /// [`Authenticator`] decides for devices and for people.
    pub fn new(
        credentials: &'a Credentials,
        device_id: &'a str,
        agent: &'a str,
        peer: &'a str,
        scheme: &'static str,
    ) -> Self {
        AuthRequest {
            credentials,
            device_id,
            agent,
            peer,
            scheme,
            peer_certificates: None,
        }
    }
}

/// Who the client turned out to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The device id to assign; `None` keeps the one the client claimed (or,
    /// when it claimed none, `device-<session id>`).
    pub device_id: Option<String>,
    /// The principal (user, certificate subject) for the application's use;
    /// stored as the session property [`crate::session::PRINCIPAL`].
    pub principal: Option<String>,
}

/// Why authentication failed: sent to the client in the `close` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// A boxed future, as returned by [`Authenticator::authenticate`].
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>>;

/// Checks the credentials of a connecting client.
///
/// Implement it for a database or an identity service; [`AllowAll`],
/// [`TokenAuthenticator`] and [`auth_fn`] cover the simple cases.
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts (returning the identity) or refuses the client.
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a>;
}

/// Accepts everyone (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate<'a>(&'a self, _: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(async { Ok(Identity::default()) })
    }
}

/// Accepts clients presenting one of a set of tokens.
#[derive(Debug, Clone, Default)]
pub struct TokenAuthenticator {
    tokens: Vec<String>,
}

impl TokenAuthenticator {
    /// Accepts any of `tokens`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        TokenAuthenticator {
            tokens: tokens.into_iter().map(Into::into).collect(),
        }
    }
}

impl Authenticator for TokenAuthenticator {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            match request.credentials {
                Credentials::Token(t) if self.tokens.iter().any(|k| k == t) => {
                    Ok(Identity::default())
                }
                Credentials::Token(_) => Err(AuthError("invalid token".into())),
                _ => Err(AuthError("a token is required".into())),
            }
        })
    }
}

/// An [`Authenticator`] from a synchronous function.
pub fn auth_fn<F>(f: F) -> impl Authenticator
where
    F: Fn(&AuthRequest<'_>) -> Result<Identity, AuthError> + Send + Sync + 'static,
{
    struct FnAuth<F>(F);
    impl<F> Authenticator for FnAuth<F>
    where
        F: Fn(&AuthRequest<'_>) -> Result<Identity, AuthError> + Send + Sync + 'static,
    {
        fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
            let r = (self.0)(request);
            Box::pin(async move { r })
        }
    }
    FnAuth(f)
}

pub(crate) type SharedAuthenticator = Arc<dyn Authenticator>;

/// Types whose definitions differ on the two sides: `(type id, name)`, by id.
pub(crate) fn mismatched(
    local: &[(u32, &'static str, u64)],
    remote: &[(u32, u64)],
) -> Vec<(u32, &'static str)> {
    let mut out: Vec<(u32, &'static str)> = local
        .iter()
        .filter(|(id, _, fp)| remote.iter().any(|(rid, rfp)| rid == id && rfp != fp))
        .map(|&(id, name, _)| (id, name))
        .collect();
    out.sort_unstable();
    out.dedup_by_key(|e| e.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        let h = Hello {
            version: 1,
            device_id: "cab-1".into(),
            agent: "test/1".into(),
            credentials: Credentials::UserPassword {
                username: "u".into(),
                password: "p".into(),
            },
            types: vec![(1, 0xdead_beef), (300, 7)],
            stream_window: 16,
            services: vec![],
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn welcome_round_trip_and_truncation() {
        let w = Welcome {
            version: 1,
            session_id: 42,
            device_id: "device-42".into(),
            keepalive_ms: 5000,
            types: vec![(5, 1)],
            stream_window: 16,
            services: vec![],
        };
        let b = w.encode();
        assert_eq!(Welcome::decode(&b).unwrap(), w);
        for n in 0..b.len() {
            assert!(Welcome::decode(&b[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn resume_sections_round_trip_and_are_checked() {
        let h = Hello {
            version: 1,
            device_id: "cab-1".into(),
            agent: "a".into(),
            credentials: Credentials::None,
            types: vec![],
            stream_window: 16,
            services: vec![],
        };
        for resume in [
            HelloResume::default(),
            HelloResume {
                token: Some([7; 16]),
                received: 300,
            },
        ] {
            let b = h.encode_with(Some(&resume));
            assert_eq!(Hello::decode_with(&b).unwrap(), (h.clone(), Some(resume)));
            // The resume section is cut: every prefix past the rpc part fails.
            for n in h.encode().len() + 1..b.len() {
                assert!(Hello::decode_with(&b[..n]).is_err(), "prefix of {n} bytes");
            }
        }
        assert_eq!(Hello::decode_with(&h.encode()).unwrap().1, None);
        // A token of another length is refused, naming it.
        let mut b = BytesMut::from(&h.encode()[..]);
        varint::put(&mut b, 3);
        b.put_slice(b"abc");
        varint::put(&mut b, 0);
        let e = Hello::decode_with(&b).unwrap_err().to_string();
        assert!(e.contains("resume token length"), "{e}");

        let w = Welcome {
            version: 1,
            session_id: 9,
            device_id: "cab-1".into(),
            keepalive_ms: 0,
            types: vec![],
            stream_window: 16,
            services: vec![],
        };
        let r = WelcomeResume {
            token: [1; 16],
            resumed: true,
            received: 12,
            expiry_ms: 60_000,
        };
        let b = w.encode_with(Some(&r));
        assert_eq!(Welcome::decode_with(&b).unwrap(), (w.clone(), Some(r)));
        for n in w.encode().len() + 1..b.len() {
            assert!(
                Welcome::decode_with(&b[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
    }

    #[test]
    fn newer_version_decodes_to_its_number_only() {
        let mut b = BytesMut::new();
        varint::put(&mut b, 2);
        b.put_slice(b"whatever comes next");
        assert_eq!(Hello::decode(&b).unwrap().version, 2);
    }

    #[test]
    fn type_id_zero_is_refused() {
        let h = Hello {
            version: 1,
            device_id: String::new(),
            agent: String::new(),
            credentials: Credentials::None,
            types: vec![(1, 1), (0, 2)],
            stream_window: 16,
            services: vec![],
        };
        let err = Hello::decode(&h.encode()).unwrap_err();
        assert!(err.to_string().contains("type id"), "{err}");
    }

    #[test]
    fn device_ids_are_printable_and_short() {
        assert!(validate_device_id("cab-1").is_ok());
        assert!(validate_device_id("Zähler 7 · Halle B").is_ok());
        assert!(validate_device_id(&"x".repeat(128)).is_ok());
        assert_eq!(
            validate_device_id(&"x".repeat(129)),
            Err(InvalidDeviceId::TooLong { len: 129 })
        );
        assert_eq!(validate_device_id(""), Err(InvalidDeviceId::Empty));
        for (bad, at) in [
            ("a\0b", 1),
            ("ab\n", 2),
            ("\u{1b}[2J", 0),
            ("a\u{202e}b", 1),
            ("x\u{feff}", 1),
        ] {
            assert!(
                matches!(validate_device_id(bad), Err(InvalidDeviceId::NotPrintable { at: a, .. }) if a == at),
                "{bad:?}"
            );
        }
        assert_eq!(validate_device_id(" cab"), Err(InvalidDeviceId::Padded));
    }

    #[test]
    fn untrusted_strings_are_escaped_and_cut() {
        assert_eq!(Untrusted("ok id").to_string(), "ok id");
        assert_eq!(Untrusted("a\nb\u{1b}").to_string(), "a\\u{a}b\\u{1b}");
        assert_eq!(Untrusted(&"y".repeat(500)).to_string().chars().count(), 201);
    }

    #[test]
    fn mismatches_name_the_type() {
        let local = [(1, "a.A", 10), (2, "a.B", 20), (3, "a.C", 30)];
        let remote = [(1, 10), (2, 21), (4, 40)];
        assert_eq!(mismatched(&local, &remote), vec![(2, "a.B")]);
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::UserPassword {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Token("s3cret".into())).contains("s3cret"));
    }
}
