//! `GET /api/ws`: a WebSocket of live publications and session events.
//!
//! The client sends JSON commands, one per text message:
//! `{"op":"subscribe","channel":"charging.v1.telemetry"}` (with `"key"` on
//! keyed channels, or without to get every key), `{"op":"unsubscribe",
//! "channel":...}`, `{"op":"events"}` for session events, `{"op":"ping"}`.
//! `?channels=a,b&events=sessions` subscribes when connecting. The server
//! sends `{"type":"publication",...}`, `{"type":"session",...}`,
//! `{"type":"subscribed",...}`, `{"type":"unsubscribed",...}`,
//! `{"type":"pong"}` and `{"type":"error","error":{...}}`.
//!
//! Each socket has a bounded queue of outgoing messages: when a client
//! reads too slowly, publications are dropped (counted in the next
//! publication's `dropped`), never buffered without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Query;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use isml_runtime::pubsub::Action;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::api::{Params, Peer, Shared, State};
use crate::auth::Caller;
use crate::error::ApiError;

/// Outgoing messages queued per socket.
const QUEUE: usize = 256;
/// Subscriptions one socket may hold.
const MAX_SUBSCRIPTIONS: usize = 64;
/// The largest message a client may send.
const MAX_MESSAGE: usize = 16 * 1024;

pub(crate) async fn upgrade(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let caller = st.caller_of(&headers, &peer, &params).await?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run(st, caller, params, socket)))
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    Subscribe {
        channel: String,
        #[serde(default)]
        key: Option<String>,
    },
    Unsubscribe {
        channel: String,
        #[serde(default)]
        key: Option<String>,
    },
    Events,
    Ping,
}

struct Socket {
    st: Arc<State>,
    caller: Caller,
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
    subs: HashMap<(String, Option<String>), JoinHandle<()>>,
    events: Option<broadcast::Receiver<crate::events::SessionEvent>>,
}

impl Socket {
    fn send(&self, v: serde_json::Value) {
        if self.tx.try_send(v.to_string()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn error(&self, e: &ApiError) {
        let mut body = e.body();
        if let Some(obj) = body.as_object_mut() {
            obj.insert("type".into(), json!("error"));
        }
        self.send(body);
    }

    async fn subscribe(&mut self, channel: &str, key: Option<String>) -> Result<(), ApiError> {
        let c = self.st.catalog.channel(channel)?;
        self.st
            .allow(&self.caller, Action::Subscribe, &c.full_name)?;
        if key.is_some() && !c.def.keyed {
            return Err(ApiError::bad_request(format!(
                "channel {} has no keys",
                c.full_name
            )));
        }
        let name = c.full_name.clone();
        if self.subs.contains_key(&(name.clone(), key.clone())) {
            return Ok(());
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "resource_exhausted",
                format!("a socket holds at most {MAX_SUBSCRIPTIONS} subscriptions"),
            ));
        }
        let mut sub = self
            .st
            .server
            .subscribe_raw(c.def.id, key.as_deref())
            .await
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "failed_precondition",
                    e.to_string(),
                )
            })?;
        // Announced before the forwarding starts, so that the retained values
        // follow the confirmation.
        self.send(json!({ "type": "subscribed", "channel": name, "key": key }));
        let (st, tx, dropped) = (self.st.clone(), self.tx.clone(), self.dropped.clone());
        let task = tokio::spawn(async move {
            while let Some(p) = sub.next().await {
                let mut v = crate::api::publication_json(&st, &p);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("type".into(), json!("publication"));
                    obj.insert("dropped".into(), json!(dropped.load(Ordering::Relaxed)));
                }
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(v.to_string()) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                } else if tx.is_closed() {
                    return;
                }
            }
        });
        self.subs.insert((name, key), task);
        Ok(())
    }

    async fn command(&mut self, text: &str) {
        let cmd: Command = match serde_json::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                return self.error(&ApiError::bad_request(format!(
                    "not a command ({e}); send {{\"op\":\"subscribe\",\"channel\":NAME}}, unsubscribe, events or ping"
                )));
            }
        };
        match cmd {
            Command::Subscribe { channel, key } => {
                if let Err(e) = self.subscribe(&channel, key).await {
                    self.error(&e);
                }
            }
            Command::Unsubscribe { channel, key } => {
                let name = self
                    .st
                    .catalog
                    .channel(&channel)
                    .map_or(channel, |c| c.full_name.clone());
                if let Some(task) = self.subs.remove(&(name.clone(), key.clone())) {
                    task.abort();
                }
                self.send(json!({ "type": "unsubscribed", "channel": name, "key": key }));
            }
            Command::Events => {
                if self.events.is_none() {
                    self.events = Some(self.st.events.subscribe());
                }
                self.send(json!({ "type": "subscribed", "events": "sessions" }));
            }
            Command::Ping => self.send(json!({ "type": "pong" })),
        }
    }
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<crate::events::SessionEvent>>,
) -> Option<serde_json::Value> {
    let rx = events.as_mut()?;
    match rx.recv().await {
        Ok(e) => {
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("type".into(), json!("session"));
            }
            Some(v)
        }
        Err(broadcast::error::RecvError::Lagged(n)) => {
            Some(json!({ "type": "lagged", "missed_events": n }))
        }
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

async fn run(st: Arc<State>, caller: Caller, params: HashMap<String, String>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    let shutdown = st.shutdown.clone();
    let mut s = Socket {
        st,
        caller,
        tx,
        dropped: Arc::default(),
        subs: HashMap::new(),
        events: None,
    };
    if params.get("events").is_some_and(|e| e == "sessions") {
        s.command(r#"{"op":"events"}"#).await;
    }
    if let Some(list) = params.get("channels") {
        for c in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if let Err(e) = s.subscribe(c, None).await {
                s.error(&e);
            }
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => s.command(t.as_str()).await,
                Some(Ok(Message::Binary(_))) => s.error(&ApiError::bad_request("send commands as JSON text")),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            Some(out) = rx.recv() => {
                if sink.send(Message::Text(out.into())).await.is_err() {
                    break;
                }
            }
            Some(ev) = next_event(&mut s.events), if s.events.is_some() => {
                s.send(ev);
            }
        }
    }
    for (_, task) in s.subs.drain() {
        task.abort();
    }
}
