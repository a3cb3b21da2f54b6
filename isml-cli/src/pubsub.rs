//! `isml pub` and `isml sub`: publish JSON to, and print JSON from, a
//! channel of a running server, as mosquitto_pub and mosquitto_sub do for
//! MQTT. Values go through the same dynamic JSON codec as `isml encode` and
//! `isml decode`.

use std::io::BufRead as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use isml_runtime::Session;
use isml_runtime::client::Client;
use isml_runtime::handshake::Credentials;
use isml_runtime::transport::tls::{self, rustls};
use isml_schema::Schema;
use isml_schema::dynamic::{self, Descriptor};
use isml_schema::ir::ChannelDef;
use serde_json::json;

use crate::cli::{Connection, PubArgs, SubArgs};
use crate::output::outln;
use crate::served::{channel_type, find_channel, full_name};
use crate::{Failure, Outcome};

/// Connects to the server of `c`, announcing the schema's types.
async fn connect(c: &Connection, schema: &Schema) -> Result<Session, Failure> {
    let mut b = Client::builder(c.url.clone())
        .types(crate::served::type_table(schema))
        .agent(concat!("isml-cli/", env!("CARGO_PKG_VERSION")))
        .handshake_timeout(Duration::from_secs(c.timeout.max(1)));
    if let Some(id) = &c.device_id {
        b = b.device_id(id.clone());
    }
    if let Some(token) = &c.token {
        b = b.credentials(Credentials::Token(token.clone()));
    }
    if c.url.starts_with("tls://") {
        b = b.tls(client_tls(c)?);
    } else if c.ca.is_some() {
        return Err(Failure::usage("--ca is for tls:// servers"));
    }
    b.connect_session()
        .await
        .map_err(|e| Failure::usage(format!("cannot connect: {e}")))
}

fn client_tls(c: &Connection) -> Result<Arc<rustls::ClientConfig>, Failure> {
    let Some(ca) = &c.ca else {
        return Err(Failure::usage(
            "a tls:// server needs --ca PEM (the certificate(s) to trust)",
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::serve::read_certs(ca)? {
        roots.add(cert).map_err(|e| {
            Failure::usage(format!("certificate in `{}` refused: {e}", ca.display()))
        })?;
    }
    tls::client_config(roots, None).map_err(|e| Failure::usage(format!("TLS: {e}")))
}

/// Checks `--key` against the channel: keyed channels need one, others take none.
fn check_key(c: &ChannelDef, key: Option<&str>) -> Result<(), Failure> {
    match (c.keyed, key) {
        (true, None) => Err(Failure::usage(format!(
            "channel `{}` is keyed: give --key",
            full_name(c)
        ))),
        (false, Some(_)) => Err(Failure::usage(format!(
            "channel `{}` is not keyed: --key is not allowed",
            full_name(c)
        ))),
        _ => Ok(()),
    }
}

/// Parses and encodes one JSON value of the channel's type.
fn encode(desc: Descriptor<'_>, text: &str, origin: &str) -> Result<Bytes, Failure> {
    let value = dynamic::from_json_str(desc, text)
        .map_err(|e| Failure::invalid(format!("{origin}: invalid input: {e}")))?;
    let bytes = value
        .encode()
        .map_err(|e| Failure::invalid(format!("{origin}: cannot encode: {e}")))?;
    Ok(Bytes::from(bytes))
}

pub(crate) fn publish(a: &PubArgs) -> Outcome {
    let schema = crate::commands::load(&a.includes, &a.files)?;
    let channel = find_channel(&schema, &a.channel)?;
    let desc = channel_type(&schema, channel)?;
    let key = a.key.as_deref();
    check_key(channel, key)?;
    if a.retain_delete && !channel.retain {
        return Err(Failure::usage(format!(
            "channel `{}` keeps no retained value: --retain-delete has nothing to delete",
            full_name(channel)
        )));
    }
    // Every value is checked before anything is sent: a bad line in the
    // middle of a file publishes nothing.
    let mut values = Vec::new();
    if !a.retain_delete {
        match &a.json {
            Some(text) => values.push(encode(desc, text, "--json")?),
            None => {
                for (i, line) in std::io::stdin().lock().lines().enumerate() {
                    let line = line
                        .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    values.push(encode(desc, &line, &format!("line {}", i + 1))?);
                }
                if values.is_empty() {
                    return Err(Failure::usage(
                        "nothing to publish: give --json, or JSON values on standard input (one a line)",
                    ));
                }
            }
        }
    }
    let name = full_name(channel);
    let rt = crate::served::runtime()?;
    rt.block_on(async {
        let session = connect(&a.connection, &schema).await?;
        let result = async {
            if a.retain_delete {
                session
                    .delete_retained_raw(channel.id, key)
                    .await
                    .map_err(|e| Failure::invalid(format!("delete on `{name}`: {e}")))?;
                return Ok(0);
            }
            for (i, payload) in values.into_iter().enumerate() {
                // Returns once the broker accepted it (and, on a retained
                // channel of a server with a data directory, stored it).
                session
                    .publish_raw(channel.id, key, payload)
                    .await
                    .map_err(|e| {
                        Failure::invalid(format!("publication {} on `{name}`: {e}", i + 1))
                    })?;
            }
            Ok(0)
        }
        .await;
        session.close("done").await;
        result
    })
}

pub(crate) fn subscribe(a: &SubArgs) -> Outcome {
    let schema = crate::commands::load(&a.includes, &a.files)?;
    let channel = find_channel(&schema, &a.channel)?;
    let desc = channel_type(&schema, channel)?;
    if a.key.is_some() && !channel.keyed {
        return Err(Failure::usage(format!(
            "channel `{}` is not keyed: --key is not allowed",
            full_name(channel)
        )));
    }
    if a.count == Some(0) {
        return Ok(0);
    }
    let name = full_name(channel);
    let rt = crate::served::runtime()?;
    rt.block_on(async {
        let mut signals = crate::serve::Signals::new()?;
        let session = connect(&a.connection, &schema).await?;
        let mut sub = session
            .subscribe_raw(channel.id, a.key.as_deref())
            .await
            .map_err(|e| Failure::invalid(format!("subscription to `{name}`: {e}")))?;
        let mut seen = 0u64;
        let outcome = loop {
            let p = tokio::select! {
                p = sub.next() => p,
                _ = signals.next() => break Ok(0),
            };
            let Some(p) = p else {
                let why = session
                    .close_reason()
                    .map_or_else(|| "the subscription ended".to_owned(), |r| r.to_string());
                break Err(Failure::usage(format!(
                    "the server closed the session: {why}"
                )));
            };
            let value = match dynamic::decode(desc, &p.payload) {
                Ok(v) => v.to_json(),
                Err(e) => {
                    eprintln!(
                        "warning: a publication on `{name}` does not decode as `{}`: {e}",
                        desc.full_name()
                    );
                    serde_json::Value::Null
                }
            };
            let line = json!({
                "value": value,
                "key": p.key,
                "publisher": p.publisher,
                "timestamp_ms": p.timestamp_ms,
                "retained": p.retained,
            });
            outln!("{line}")?;
            seen += 1;
            if a.count.is_some_and(|n| seen >= n) {
                break Ok(0);
            }
        };
        drop(sub);
        session.close("done").await;
        outcome
    })
}
