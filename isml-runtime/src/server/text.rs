//! Text-protocol listeners (`text+tcp://`, `text+tls://`): devices that
//! speak lines join the same broker, registry and rules as binary ones.
//!
//! Each text connection is translated, line by line, onto a binary session
//! of its own: the connection opens an in-process session to this server
//! (over a duplex pipe, through the server's normal connection path), with
//! the device id and token of its `ID` command. So the authenticator, the
//! duplicate-id policy, the ACL, the filters, the registry and the broker
//! treat a text device exactly as a binary one, and `send_to` reaches it.
//!
//! One task per connection reads lines, runs each command to its end on
//! the session and writes its one `OK` or `BAD`, in order. Pushes (`SUB`,
//! `MSG`, `HELLO?`) come from per-subscription tasks through one bounded
//! queue, and are written between replies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::admission::{Refusal, Source, Ticket};
use super::{Inner, ServerError};
use crate::client::{Client, ConnectError};
use crate::handshake::{Credentials, Untrusted};
use crate::pubsub::{Channel, ChannelInfo, PublishError, RawPublication, SubscribeError};
use crate::session::{Calls, Inbound, Outcome, Session, SessionConfig, Started};
use crate::text::{
    Command, Line, LineCodec, ParseError, Received, TextOptions, TextValues, Value, channels,
    rfc3339,
};
use crate::transport::{Incoming, Transport};
use crate::wire::Frame;
use crate::{Message, TopLevel};

/// Pushes waiting to be written to one connection.
const PUSH_QUEUE: usize = 256;

/// What the server builder collects for text listeners.
#[derive(Default)]
pub(crate) struct TextSetup {
    pub(crate) maps: Vec<(String, String)>,
    pub(crate) values: Option<Arc<dyn TextValues>>,
}

/// Counters of the text listeners (all connections together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TextStats {
    /// Connections accepted.
    pub connections: u64,
    /// Lines received (blank ones included).
    pub lines: u64,
    /// Commands answered `OK`.
    pub ok: u64,
    /// Commands answered `BAD`, for any reason (the sum of the rest).
    pub bad: u64,
    /// `BAD`: a line longer than the listener's `max_line`.
    pub too_long: u64,
    /// `BAD`: a line, or an unescaped value, that is not UTF-8.
    pub not_utf8: u64,
    /// `BAD`: no `START`, no `END`, no `COMMAND`, a part without `=`, a name twice.
    pub malformed: u64,
    /// `BAD`: a command word the server does not know.
    pub unknown_command: u64,
    /// `BAD`: a parameter the command needs is missing.
    pub missing_parameter: u64,
    /// `BAD`: an empty, over-long or control-character variable name or id.
    pub invalid_name: u64,
    /// `BAD`: a command before `ID` on a listener that requires it.
    pub not_identified: u64,
    /// `BAD`: a value that is not valid JSON of a mapped channel's type.
    pub invalid_value: u64,
    /// `BAD`: refused by the authenticator, the ACL, a filter or the broker
    /// (an unknown device for `MSG`, a device id in use, `UNSUB` of a
    /// variable not subscribed).
    pub refused: u64,
    /// Connections closed because `HELLO?` went unanswered.
    pub keepalive_timeouts: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    lines: AtomicU64,
    ok: AtomicU64,
    too_long: AtomicU64,
    not_utf8: AtomicU64,
    malformed: AtomicU64,
    unknown_command: AtomicU64,
    missing_parameter: AtomicU64,
    invalid_name: AtomicU64,
    not_identified: AtomicU64,
    invalid_value: AtomicU64,
    refused: AtomicU64,
    keepalive_timeouts: AtomicU64,
}

impl Counters {
    fn bad(&self, kind: &str) {
        let c = match kind {
            "too_long" => &self.too_long,
            "not_utf8" => &self.not_utf8,
            "unknown_command" => &self.unknown_command,
            "missing_parameter" => &self.missing_parameter,
            "invalid_name" => &self.invalid_name,
            "not_identified" => &self.not_identified,
            "invalid_value" => &self.invalid_value,
            "refused" => &self.refused,
            _ => &self.malformed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TextStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = TextStats {
            connections: l(&self.connections),
            lines: l(&self.lines),
            ok: l(&self.ok),
            bad: 0,
            too_long: l(&self.too_long),
            not_utf8: l(&self.not_utf8),
            malformed: l(&self.malformed),
            unknown_command: l(&self.unknown_command),
            missing_parameter: l(&self.missing_parameter),
            invalid_name: l(&self.invalid_name),
            not_identified: l(&self.not_identified),
            invalid_value: l(&self.invalid_value),
            refused: l(&self.refused),
            keepalive_timeouts: l(&self.keepalive_timeouts),
        };
        s.bad = s.too_long
            + s.not_utf8
            + s.malformed
            + s.unknown_command
            + s.missing_parameter
            + s.invalid_name
            + s.not_identified
            + s.invalid_value
            + s.refused;
        s
    }
}

/// What every text connection of a server shares.
pub(crate) struct TextShared {
    /// Text variables mapped to typed channels.
    maps: HashMap<String, ChannelInfo>,
    values: Option<Arc<dyn TextValues>>,
    counters: Counters,
}

impl TextShared {
    /// Resolves the `text_map` entries against the broker's channels.
    pub(crate) fn new(setup: TextSetup, channels: &[ChannelInfo]) -> Result<Self, ServerError> {
        let mut maps = HashMap::new();
        for (variable, name) in setup.maps {
            let err = |message: String| ServerError::Text {
                message: format!("text map {variable}={name}: {message}"),
            };
            let info = channels
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| err("no such channel is served".into()))?;
            if setup.values.is_none() {
                return Err(err(
                    "mapping to a typed channel needs a JSON codec (ServerBuilder::text_values)"
                        .into(),
                ));
            }
            if maps.insert(variable.clone(), info.clone()).is_some() {
                return Err(err("the variable is mapped twice".into()));
            }
        }
        Ok(TextShared {
            maps,
            values: setup.values,
            counters: Counters::default(),
        })
    }

    pub(crate) fn stats(&self) -> TextStats {
        self.counters.snapshot()
    }
}

/// A bound text listener.
pub(crate) struct TextListener {
    url: String,
    scheme: &'static str,
    tcp: tokio::net::TcpListener,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: Arc<TextOptions>,
}

impl TextListener {
    /// The URL with the bound port (and without the options).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Binds `text+tcp://HOST:PORT[?options]` or `text+tls://...`.
    pub(crate) async fn bind(
        url: &str,
        options: &crate::transport::ListenOptions,
    ) -> Result<TextListener, ServerError> {
        let listen_err = |source| ServerError::Listen {
            url: url.to_owned(),
            source,
        };
        let invalid = |reason: String| ServerError::Text {
            message: format!("text listener {url}: {reason}"),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected text+tcp:// or text+tls://".into()))?;
        let scheme: &'static str = match scheme {
            "text+tcp" => "text+tcp",
            "text+tls" => "text+tls",
            _ => return Err(invalid("expected text+tcp:// or text+tls://".into())),
        };
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let text_options = TextOptions::from_query(query).map_err(invalid)?;
        // The address is checked as a binary listener's is.
        let _: crate::transport::Endpoint = format!("tcp://{addr}").parse().map_err(listen_err)?;
        #[cfg(feature = "tls")]
        let tls = match (scheme, &options.tls) {
            ("text+tls", Some(config)) => Some(crate::transport::tls::acceptor(config.clone())),
            ("text+tls", None) => {
                return Err(invalid(
                    "text+tls:// needs a rustls ServerConfig (ServerBuilder::tls)".into(),
                ));
            }
            _ => None,
        };
        #[cfg(not(feature = "tls"))]
        {
            let _ = options;
            if scheme == "text+tls" {
                return Err(listen_err(crate::transport::TransportError::Unsupported {
                    scheme: "text+tls",
                    feature: "tls",
                }));
            }
        }
        let tcp = crate::transport::listener::bind_tcp(addr)
            .await
            .map_err(listen_err)?;
        let bound = tcp
            .local_addr()
            .map_or_else(|_| addr.to_owned(), |a| a.to_string());
        Ok(TextListener {
            url: format!("{scheme}://{bound}"),
            scheme,
            tcp,
            #[cfg(feature = "tls")]
            tls,
            options: Arc::new(text_options),
        })
    }
}

/// Accepts text connections until shutdown, through the same admission
/// rules as binary ones.
pub(crate) async fn accept_loop(inner: Arc<Inner>, l: TextListener) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            r = l.tcp.accept() => r,
        };
        let (stream, addr) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(10);
                a
            }
            Err(e) => {
                tracing::warn!(listener = %l.url, error = %e, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    biased;
                    _ = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let peer = addr.to_string();
        let ticket = match inner.admission.admit(Source::of_peer(&peer)) {
            Ok(t) => t,
            Err(Refusal::Rate | Refusal::PerAddress(_)) => {
                tracing::info!(%peer, listener = %l.url, "text connection refused by the admission rules");
                continue;
            }
        };
        inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(text) = &inner.text {
            text.counters.connections.fetch_add(1, Ordering::Relaxed);
        }
        let _ = stream.set_nodelay(true);
        let conn = Conn::new(inner.clone(), peer, l.scheme, l.options.clone(), ticket);
        #[cfg(feature = "tls")]
        if let Some(acceptor) = l.tls.clone() {
            let deadline = inner.handshake_timeout;
            inner.tracker.spawn(async move {
                let tls = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(peer = %conn.peer, error = %e, "text+tls handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(peer = %conn.peer, "text+tls handshake not completed in time");
                        return;
                    }
                };
                let certs = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect());
                let mut conn = conn;
                conn.certs = certs;
                conn.run(tls).await;
            });
            continue;
        }
        inner.tracker.spawn(conn.run(stream));
    }
}

/// A push waiting to be written, with the subscription it came from (a
/// push of a subscription that has ended since is dropped).
struct Push {
    from: Option<(String, u64)>,
    line: Line,
}

/// What a command gets.
enum Answer {
    Ok,
    Bad {
        kind: &'static str,
        reason: String,
    },
    /// `OK`, then the connection closes.
    Close,
}

impl Answer {
    fn bad(kind: &'static str, reason: impl Into<String>) -> Answer {
        Answer::Bad {
            kind,
            reason: reason.into(),
        }
    }
}

/// Why the connection ends.
enum End {
    /// The device closed it or the link failed: no `CLOSE` line.
    Peer(String),
    /// The server closes it: a `CLOSE` line first.
    Server(String),
}

struct Conn {
    inner: Arc<Inner>,
    peer: String,
    scheme: &'static str,
    options: Arc<TextOptions>,
    certs: Option<Vec<Vec<u8>>>,
    ticket: Option<Ticket>,
    session: Option<Session>,
    /// Subscriptions by variable: the task forwarding it and its generation.
    subs: HashMap<String, (tokio::task::AbortHandle, u64)>,
    generation: u64,
    push_tx: mpsc::Sender<Push>,
    push_rx: Option<mpsc::Receiver<Push>>,
    /// `HELLO?` sent and not answered.
    unanswered: u32,
    /// Why the session opened at connection (without `require_id`) was refused.
    anonymous_refused: Option<String>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for (task, _) in self.subs.values() {
            task.abort();
        }
    }
}

impl Conn {
    fn new(
        inner: Arc<Inner>,
        peer: String,
        scheme: &'static str,
        options: Arc<TextOptions>,
        ticket: Ticket,
    ) -> Conn {
        let (push_tx, push_rx) = mpsc::channel(PUSH_QUEUE);
        Conn {
            inner,
            peer,
            scheme,
            options,
            certs: None,
            ticket: Some(ticket),
            session: None,
            subs: HashMap::new(),
            generation: 0,
            push_tx,
            push_rx: Some(push_rx),
            unanswered: 0,
            anonymous_refused: None,
        }
    }

    fn shared(&self) -> &TextShared {
        // A text connection exists only when the server has text listeners,
        // and then it has the shared state.
        self.inner
            .text
            .as_deref()
            .expect("text listeners imply text state")
    }

    fn device(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.device_id())
    }

    async fn run<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut framed = Framed::new(io, LineCodec::new(self.options.max_line));
        let Some(mut push_rx) = self.push_rx.take() else {
            return;
        };
        let end = self.serve(&mut framed, &mut push_rx).await;
        let reason = match &end {
            End::Peer(r) => r.clone(),
            End::Server(r) => {
                // Best effort: a device that stopped reading does not hold the task.
                let close = Line::new("CLOSE").to_string();
                let _ = tokio::time::timeout(Duration::from_secs(2), framed.send(close)).await;
                r.clone()
            }
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            SinkExt::<String>::close(&mut framed),
        )
        .await;
        tracing::info!(peer = %self.peer, device = %Untrusted(self.device()), reason = %reason, "text connection closed");
        if let Some(s) = self.session.take() {
            s.close("text connection closed").await;
        }
    }

    async fn serve<IO>(
        &mut self,
        framed: &mut Framed<IO, LineCodec>,
        push_rx: &mut mpsc::Receiver<Push>,
    ) -> End
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let inner = self.inner.clone();
        if !self.options.require_id
            && let Err(reason) = self.open(None, None).await
        {
            // An authenticator that wants credentials refuses a device
            // without them: it may still send ID (with a TOKEN), within the
            // handshake timeout, as on a listener that requires ID.
            tracing::info!(peer = %self.peer, reason = %Untrusted(&reason), "no anonymous session for a text device; waiting for ID");
            self.anonymous_refused = Some(reason);
        }
        let period = inner.config.keepalive;
        let mut keepalive = period.map(|p| tokio::time::interval_at(Instant::now() + p, p));
        let identify_by = Instant::now() + inner.handshake_timeout;
        loop {
            let current = self.session.clone();
            let closed = async move {
                match current {
                    Some(s) => s.closed().await,
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match keepalive.as_mut() {
                    Some(k) => k.tick().await,
                    None => std::future::pending().await,
                }
            };
            let waiting_for_id = self.session.is_none();
            // A connection still waiting for its ID is pending, and may be
            // shed for a newer one, as a binary connection in its handshake.
            let shed_token = self.ticket.as_ref().and_then(Ticket::shed_token);
            let shed = async move {
                match shed_token {
                    Some(t) => t.cancelled_owned().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = inner.shutdown.cancelled() => return End::Server("server shutting down".into()),
                r = framed.next() => {
                    let received = match r {
                        None => return End::Peer("the device closed the connection".into()),
                        Some(Err(e)) => return End::Peer(format!("read failed: {e}")),
                        Some(Ok(r)) => r,
                    };
                    let Some(answer) = self.handle(received).await else {
                        continue;
                    };
                    let close = matches!(answer, Answer::Close);
                    let line = self.reply(answer);
                    if let Err(e) = framed.send(line.to_string()).await {
                        return End::Peer(format!("write failed: {e}"));
                    }
                    if close {
                        return End::Peer("the device sent CLOSE".into());
                    }
                }
                Some(push) = push_rx.recv() => {
                    let current = match &push.from {
                        None => true,
                        Some((variable, generation)) => {
                            self.subs.get(variable).is_some_and(|(_, g)| g == generation)
                        }
                    };
                    if current && let Err(e) = framed.send(push.line.to_string()).await {
                        return End::Peer(format!("write failed: {e}"));
                    }
                }
                _ = tick => {
                    if self.unanswered >= self.options.misses {
                        self.shared().counters.keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
                        return End::Server(format!("{} HELLO? unanswered", self.unanswered));
                    }
                    self.unanswered += 1;
                    if let Err(e) = framed.send(Line::new("HELLO?").to_string()).await {
                        return End::Peer(format!("write failed: {e}"));
                    }
                }
                reason = closed => {
                    return End::Server(format!("session closed: {}", reason.message));
                }
                () = shed, if waiting_for_id => {
                    return End::Server("too many connections are waiting for their ID; this one waited longest".into());
                }
                () = tokio::time::sleep_until(identify_by), if waiting_for_id => {
                    return End::Server(format!("no ID within {:?}", inner.handshake_timeout));
                }
            }
        }
    }

    /// The `OK` or `BAD` line of an answer, counted and logged.
    fn reply(&self, answer: Answer) -> Line {
        let counters = &self.shared().counters;
        match answer {
            Answer::Ok | Answer::Close => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
                Line::new("OK")
            }
            Answer::Bad { kind, reason } => {
                counters.bad(kind);
                tracing::info!(peer = %self.peer, device = %Untrusted(self.device()), kind, reason = %Untrusted(&reason), "text command refused");
                let line = Line::new("BAD");
                if self.options.reasons {
                    line.param("REASON", reason)
                } else {
                    line
                }
            }
        }
    }

    /// Runs one received line; `None` for a blank line (no answer).
    async fn handle(&mut self, received: Received) -> Option<Answer> {
        self.shared().counters.lines.fetch_add(1, Ordering::Relaxed);
        let line = match received {
            Received::Line(l) => l,
            Received::TooLong => {
                let e = ParseError::TooLong {
                    max: self.options.max_line,
                };
                return Some(Answer::bad(e.kind(), e.to_string()));
            }
            Received::NotUtf8 => {
                let e = ParseError::NotUtf8;
                return Some(Answer::bad(e.kind(), e.to_string()));
            }
        };
        let command = match Command::parse(&line) {
            Ok(None) => return None,
            Ok(Some(c)) => c,
            Err(e) => return Some(Answer::bad(e.kind(), e.to_string())),
        };
        Some(self.execute(command).await)
    }

    async fn execute(&mut self, command: Command) -> Answer {
        match command {
            Command::Hello => {
                self.unanswered = 0;
                return Answer::Ok;
            }
            Command::Close => return Answer::Close,
            Command::Id { id, token } => return self.identify(id, token).await,
            _ => {}
        }
        let Some(session) = self.session.clone() else {
            return Answer::bad(
                "not_identified",
                match &self.anonymous_refused {
                    Some(why) => format!("send ID first (without it: {why})"),
                    None => "send ID first".to_owned(),
                },
            );
        };
        match command {
            Command::Sub { variable } => self.subscribe(&session, variable).await,
            Command::Unsub { variable } => match self.subs.remove(&variable) {
                Some((task, _)) => {
                    // Dropping the subscription (in its task) tells the
                    // broker; its pushes still queued are dropped by generation.
                    task.abort();
                    Answer::Ok
                }
                None => Answer::bad("refused", format!("not subscribed to {variable}")),
            },
            Command::UnsubAll => {
                for (_, (task, _)) in self.subs.drain() {
                    task.abort();
                }
                match session.unsubscribe_all().await {
                    Ok(()) => Answer::Ok,
                    Err(e) => refused_sub(&e),
                }
            }
            Command::Pub { variable, value } => {
                let target = self.target(&variable);
                let payload = match self.encode(&target, &value) {
                    Ok(p) => p,
                    Err(e) => return Answer::bad("invalid_value", e),
                };
                match session
                    .publish_raw(target.channel.id, target.key.as_deref(), payload)
                    .await
                {
                    Ok(_) => Answer::Ok,
                    Err(e) => refused_pub(&e),
                }
            }
            Command::Del { variable } => {
                let target = self.target(&variable);
                match session
                    .delete_retained_raw(target.channel.id, target.key.as_deref())
                    .await
                {
                    Ok(()) => Answer::Ok,
                    Err(e) => refused_pub(&e),
                }
            }
            Command::Msg { device, value } => {
                let payload = match (Value { value }).encode_to_bytes() {
                    Ok(p) => p,
                    Err(e) => return Answer::bad("invalid_value", e.to_string()),
                };
                match session.send_to_raw(&device, Value::TYPE_ID, payload).await {
                    Ok(()) => Answer::Ok,
                    Err(e) => refused_pub(&e),
                }
            }
            Command::Hello | Command::Close | Command::Id { .. } => Answer::Ok,
        }
    }

    /// The channel and key a text variable lives on.
    fn target(&self, variable: &str) -> Target {
        match self.shared().maps.get(variable) {
            Some(info) => Target {
                key: info.keyed.then(|| variable.to_owned()),
                channel: info.clone(),
                mapped: true,
            },
            None => Target {
                channel: variables_info(),
                key: Some(variable.to_owned()),
                mapped: false,
            },
        }
    }

    fn encode(&self, target: &Target, value: &str) -> Result<Bytes, String> {
        if target.mapped {
            let values = self
                .shared()
                .values
                .as_ref()
                .ok_or("no JSON codec for mapped variables")?;
            values
                .encode(target.channel.type_id, value)
                .map_err(|e| format!("VALUE is not a valid {}: {e}", target.channel.name))
        } else {
            Value {
                value: value.to_owned(),
            }
            .encode_to_bytes()
            .map_err(|e| e.to_string())
        }
    }

    async fn subscribe(&mut self, session: &Session, variable: String) -> Answer {
        let target = self.target(&variable);
        let sub = match session
            .subscribe_raw(target.channel.id, target.key.as_deref())
            .await
        {
            Ok(s) => s,
            Err(e) => return refused_sub(&e),
        };
        self.generation += 1;
        let generation = self.generation;
        let task = tokio::spawn(forward(
            sub,
            variable.clone(),
            generation,
            target,
            self.inner.text.clone(),
            self.options.time,
            self.push_tx.clone(),
        ));
        // A second SUB of a variable replaces the first subscription (its
        // retained value arrives again, as on any subscribe).
        if let Some((old, _)) = self
            .subs
            .insert(variable, (task.abort_handle(), generation))
        {
            old.abort();
        }
        Answer::Ok
    }

    /// `ID`: opens a session with this device id (and token), then moves the
    /// subscriptions over from the session before, if any.
    async fn identify(&mut self, id: String, token: Option<String>) -> Answer {
        if let Some(s) = &self.session
            && s.device_id() == id
            && token.is_none()
        {
            return Answer::Ok;
        }
        let old = self.session.take();
        let new = match self.open(Some(id), token).await {
            Ok(()) => self.session.clone(),
            Err(reason) => {
                self.session = old;
                return Answer::bad("refused", reason);
            }
        };
        let Some(new) = new else {
            return Answer::bad("refused", "no session");
        };
        let variables: Vec<String> = self.subs.keys().cloned().collect();
        for variable in variables {
            if let Answer::Bad { reason, .. } = self.subscribe(&new, variable.clone()).await {
                tracing::info!(peer = %self.peer, device = %Untrusted(new.device_id()), variable = %Untrusted(&variable), reason = %Untrusted(&reason), "subscription not carried over to the new device id");
                if let Some((task, _)) = self.subs.remove(&variable) {
                    task.abort();
                }
            }
        }
        if let Some(old) = old {
            old.close("the text device identified again").await;
        }
        Answer::Ok
    }

    /// Opens the in-process session of this connection: the server's side
    /// runs through the normal connection path (authenticator, duplicate
    /// ids, registry), this side forwards what it receives as pushes.
    async fn open(&mut self, id: Option<String>, token: Option<String>) -> Result<(), String> {
        let inner = &self.inner;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let mut server_end = Transport::from_io(theirs, self.scheme, self.peer.clone(), None);
        if let Some(certs) = &self.certs {
            server_end.set_peer_certificates(certs.clone());
        }
        // The connection's own admission ticket covers it: this one only
        // counts it as pending, without its address.
        let ticket = inner
            .admission
            .admit(None)
            .map_err(|_| "the server is refusing connections".to_owned())?;
        inner.tracker.spawn(super::connection(
            inner.clone(),
            Incoming::new(self.peer.clone(), server_end),
            ticket,
        ));
        let client_end = Transport::from_io(ours, "mem", format!("text:{}", self.peer), None);
        let config = SessionConfig {
            keepalive: None,
            ..SessionConfig::clone(&inner.config)
        };
        let mut b = Client::builder(format!("{}://{}", self.scheme, self.peer))
            .session_config(config)
            .handshake_timeout(inner.handshake_timeout)
            .agent("isml text protocol")
            .inbound(Arc::new(TextInbound {
                tx: self.push_tx.clone(),
                text: inner.text.clone(),
                time: self.options.time,
            }));
        if let Some(id) = &id {
            b = b.device_id(id.clone());
        }
        if let Some(token) = token {
            b = b.credentials(Credentials::Token(token));
        }
        let session = b.connect_over(client_end).await.map_err(|e| match e {
            ConnectError::Refused { code, message, .. } => format!("{message} (code {code})"),
            ConnectError::InvalidDeviceId { id, source } => {
                format!(
                    "invalid device id {:?}: {source}",
                    Untrusted(&id).to_string()
                )
            }
            other => other.to_string(),
        })?;
        if let Some(mut t) = self.ticket.take() {
            t.established();
            // Held until the connection ends, as a binary session's is.
            self.ticket = Some(t);
        }
        tracing::info!(peer = %self.peer, device = %Untrusted(session.device_id()), transport = self.scheme, "text device identified");
        self.session = Some(session);
        Ok(())
    }
}

/// The channel (and key) of a text variable.
struct Target {
    channel: ChannelInfo,
    key: Option<String>,
    /// Mapped to a typed channel: values are JSON.
    mapped: bool,
}

/// The description of the built-in variables channel.
pub(crate) fn variables_info() -> ChannelInfo {
    ChannelInfo {
        id: channels::Variables::ID,
        name: channels::Variables::NAME.to_owned(),
        type_id: Value::TYPE_ID,
        fingerprint: Value::FINGERPRINT,
        retain: channels::Variables::RETAIN,
        keyed: channels::Variables::KEYED,
    }
}

fn refused_pub(e: &PublishError) -> Answer {
    Answer::bad("refused", e.to_string())
}

fn refused_sub(e: &SubscribeError) -> Answer {
    Answer::bad("refused", e.to_string())
}

/// Forwards one subscription's publications as `SUB` pushes until it is
/// aborted (its subscription is dropped, which tells the broker) or the
/// connection's queue is gone.
async fn forward(
    mut sub: crate::pubsub::RawSubscription,
    variable: String,
    generation: u64,
    target: Target,
    text: Option<Arc<TextShared>>,
    time: bool,
    tx: mpsc::Sender<Push>,
) {
    while let Some(p) = sub.next().await {
        let value = match render(&p, &target, text.as_deref()) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(variable = %Untrusted(&variable), publisher = %Untrusted(&p.publisher), error = %e, "publication not shown to a text subscriber");
                continue;
            }
        };
        let mut line = Line::new("SUB")
            .param("VARIABLE", variable.clone())
            .param("VALUE", value);
        if time {
            line = line.param("TIME", rfc3339(p.timestamp_ms));
        }
        let push = Push {
            from: Some((variable.clone(), generation)),
            line,
        };
        if tx.send(push).await.is_err() {
            return;
        }
    }
}

/// A publication's value as text: the string of a [`Value`], or compact
/// JSON of a mapped channel's type.
fn render(
    p: &RawPublication,
    target: &Target,
    text: Option<&TextShared>,
) -> Result<String, String> {
    if p.channel == channels::Variables::ID && !target.mapped {
        return Value::decode_slice(&p.payload)
            .map(|v| v.value)
            .map_err(|e| format!("undecodable isml.text.Value: {e}"));
    }
    let values = text
        .and_then(|t| t.values.as_ref())
        .ok_or("no JSON codec for typed channels")?;
    values.decode(target.channel.type_id, &p.payload)
}

/// What the in-process session of a text connection receives: device-to-
/// device messages become `MSG` pushes. It serves no type and no service.
struct TextInbound {
    tx: mpsc::Sender<Push>,
    text: Option<Arc<TextShared>>,
    time: bool,
}

impl Inbound for TextInbound {
    fn one_way(&self, _: &Session, _: u32, _: Bytes) -> Option<Outcome<()>> {
        None
    }

    fn request(&self, _: &Session, _: u64, _: u32, _: Bytes) -> Option<Outcome<(u32, Bytes)>> {
        None
    }

    fn direct(
        &self,
        _: &Session,
        from: &str,
        type_id: u32,
        payload: Bytes,
    ) -> Option<BoxFuture<'static, ()>> {
        let value = if type_id == Value::TYPE_ID {
            Value::decode_slice(&payload)
                .map(|v| v.value)
                .map_err(|e| e.to_string())
        } else {
            match self.text.as_ref().and_then(|t| t.values.as_ref()) {
                Some(values) => values.decode(type_id, &payload),
                None => Err(format!("type {type_id} has no text form")),
            }
        };
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(from = %Untrusted(from), type_id, error = %e, "message not shown to a text device");
                return Some(Box::pin(async {}));
            }
        };
        let mut line = Line::new("MSG").param("DEVICE", from).param("VALUE", value);
        if self.time {
            line = line.param("TIME", rfc3339(super::broker::now_ms()));
        }
        let tx = self.tx.clone();
        Some(Box::pin(async move {
            let _ = tx.send(Push { from: None, line }).await;
        }))
    }
}

impl Calls for TextInbound {
    fn call(&self, session: &Session, frame: Frame, inline: bool) -> Started {
        crate::rpc::server::start(session, &[], frame, inline)
    }
}
