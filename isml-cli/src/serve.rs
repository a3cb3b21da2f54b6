//! `isml serve`: a ready broker for the channels of schemas loaded at run
//! time, as mosquitto is for MQTT.
//!
//! Every message type with an id goes into the handshake's type table (with
//! the fingerprints generated code has), every channel into the broker.
//! Retained values are kept in a redb store in `--data-dir`. Sessions are
//! logged with tracing on stderr (the server logs closes, this command the
//! openings); SIGINT or SIGTERM stop the server
//! gracefully (exit code 0). With `--cluster`, the server is one node of
//! a fleet joined over NATS JetStream (`docs/cluster.md`).

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use isml_runtime::Server;
use isml_runtime::pubsub::Acl;
use isml_runtime::transport::tls::rustls;
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::output::outln;
use crate::{Failure, Outcome};

pub(crate) fn serve(a: &ServeArgs) -> Outcome {
    let schema = crate::commands::load(&a.includes, &a.files)?;
    let types = crate::served::type_table(&schema);
    let channels = crate::served::channels(&schema)?;
    let acl = match &a.acl {
        Some(path) => Some(Acl::from_toml_file(path).map_err(|e| Failure::invalid(e.to_string()))?),
        None => None,
    };
    let text_maps = text_maps(&schema, &a.text_map)?;
    let auth = match &a.auth {
        Some(path) => Some(Arc::new(crate::auth::CredentialsFile::from_file(path)?)),
        None => None,
    };
    let tls = tls_config(a)?;
    std::fs::create_dir_all(&a.data_dir).map_err(|e| {
        Failure::usage(format!(
            "cannot create the data directory `{}`: {e}",
            a.data_dir.display()
        ))
    })?;
    init_logging(a);

    let events = isml_gateway::SessionEvents::new();
    let (opened, closed) = (events.clone(), events.clone());
    let mut b = Server::builder()
        .types(types)
        .data_dir(&a.data_dir)
        .on_open(move |s| {
            tracing::info!(
                session = s.id(),
                device = s.device_id(),
                peer = s.peer(),
                transport = s.scheme(),
                "session opened"
            );
            opened.opened(s);
        })
        .on_close(move |s, reason| closed.closed(s, reason));
    if let Some(auth) = &auth {
        b = b.authenticator(crate::auth::Shared(auth.clone()));
    }
    for url in &a.listen {
        b = b.listen(url.clone());
    }
    b = b.handshake_rate(
        a.handshake_rate
            .0
            .map(|(per_second, burst)| isml_runtime::server::Rate { per_second, burst }),
    );
    if let Some(k) = a.keepalive {
        b = b.keepalive((!k.is_zero()).then_some(k));
    }
    for (variable, channel) in text_maps {
        b = b.text_map(variable, channel);
    }
    let schema: &'static isml_schema::Schema = Box::leak(Box::new(schema));
    b = b.text_values(DynamicValues::new(schema));
    for c in &channels {
        b = b.channel_info(c.clone());
    }
    if let Some(acl) = acl.clone() {
        b = b.acl(acl);
    }
    if let Some(config) = tls.clone() {
        b = b.tls(config);
    }

    let rt = crate::served::runtime()?;
    rt.block_on(async move {
        // Watched before the listeners open, so that a signal sent as soon
        // as `listening on` is printed stops the server gracefully.
        let mut signals = Signals::new()?;
        if let Some(url) = &a.cluster.url {
            let mut c = isml_runtime::cluster::NatsCluster::builder(url.clone());
            if let Some(id) = &a.cluster.node_id {
                c = c.node_id(id.clone());
            }
            if let Some(lease) = a.cluster.cluster_lease {
                c = c.lease(lease);
            }
            let cluster = c
                .connect()
                .await
                .map_err(|e| Failure::usage(e.to_string()))?;
            b = b.cluster(cluster);
        }
        let server = b.start().await.map_err(|e| Failure::usage(e.to_string()))?;
        for url in server.urls() {
            tracing::info!(%url, "listening");
            outln!("listening on {url}")?;
        }
        let gateway = match &a.http {
            Some(addr) => {
                let mut g = isml_gateway::Gateway::builder(server.clone(), schema)
                    .events(events)
                    .body_limit(a.http_body_limit)
                    .max_connections(a.http_max_connections)
                    .request_timeout(a.http_timeout);
                if let Some(auth) = &auth {
                    g = g.authenticator(auth.clone());
                }
                if let Some(acl) = acl {
                    g = g.acl(acl);
                }
                if a.http_tls
                    && let Some(config) = tls
                {
                    g = g.tls(config);
                }
                let g = match g.bind(addr).await {
                    Ok(g) => g,
                    Err(e) => {
                        server.shutdown().await;
                        return Err(Failure::usage(e.to_string()));
                    }
                };
                tracing::info!(url = g.url(), "gateway listening");
                outln!("listening on {}", g.url())?;
                Some(g)
            }
            None => None,
        };
        crate::output::flush()?;
        tracing::info!(
            channels = channels.len(),
            types = types.len(),
            data_dir = %a.data_dir.display(),
            acl = a.acl.is_some(),
            cluster = a.cluster.url.as_deref().unwrap_or("none"),
            node = %server.cluster_stats().node_id,
            "serving"
        );
        let signal = signals.next().await;
        tracing::info!("{signal}: shutting down");
        if let Some(g) = gateway {
            g.shutdown().await;
        }
        server.shutdown().await;
        tracing::info!("stopped");
        Ok(0)
    })
}

/// SIGINT and SIGTERM, watched (instead of ending the process at once).
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts watching; needs a tokio runtime.
    pub(crate) fn new() -> Result<Signals, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind| {
            signal(kind).map_err(|e| Failure::usage(format!("cannot watch for signals: {e}")))
        };
        Ok(Signals {
            term: watch(SignalKind::terminate())?,
            int: watch(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next one and names it.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Logs on stderr: `RUST_LOG` if set, else info (every session opened and
/// closed), `-q` warnings only, `-v` debug, `-vv` trace.
fn init_logging(a: &ServeArgs) {
    let level = match (a.quiet, a.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The rustls configuration for `tls://` listeners, from `--tls-cert` and
/// `--tls-key`.
fn tls_config(a: &ServeArgs) -> Result<Option<Arc<rustls::ServerConfig>>, Failure> {
    let wants_tls = a.http_tls
        || a.listen
            .iter()
            .any(|u| u.starts_with("tls://") || u.starts_with("text+tls://"));
    let (cert, key) = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => (c, k),
        _ if wants_tls => {
            return Err(Failure::usage(
                "a tls:// listener needs --tls-cert and --tls-key",
            ));
        }
        _ => return Ok(None),
    };
    if !wants_tls {
        return Err(Failure::usage(
            "--tls-cert and --tls-key are for tls:// listeners, and none is given",
        ));
    }
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    let config = isml_runtime::transport::tls::server_config(certs, key, None)
        .map_err(|e| Failure::usage(format!("TLS certificate or key refused: {e}")))?;
    Ok(Some(config))
}

/// Every certificate of a PEM file (at least one).
pub(crate) fn read_certs(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Failure> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let err = |e: &dyn std::fmt::Display| {
        Failure::usage(format!(
            "cannot read certificates from `{}`: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no CERTIFICATE block"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, Failure> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Failure::usage(format!(
            "cannot read a private key from `{}`: {e}",
            path.display()
        ))
    })
}

/// `--text-map VARIABLE=CHANNEL`, the channel by full or simple name.
fn text_maps(
    schema: &isml_schema::Schema,
    maps: &[String],
) -> Result<Vec<(String, String)>, Failure> {
    maps.iter()
        .map(|m| {
            let (variable, channel) = m.split_once('=').ok_or_else(|| {
                Failure::usage(format!("--text-map {m}: expected VARIABLE=CHANNEL"))
            })?;
            let (variable, channel) = (variable.trim(), channel.trim());
            if variable.is_empty() {
                return Err(Failure::usage(format!(
                    "--text-map {m}: the variable is empty"
                )));
            }
            let c = crate::served::find_channel(schema, channel)
                .map_err(|e| Failure::usage(format!("--text-map {m}: {}", e.message)))?;
            Ok((variable.to_owned(), crate::served::full_name(c)))
        })
        .collect()
}

/// JSON for text devices, through the schemas' dynamic messages: values of
/// variables mapped to typed channels, and messages of any type sent to a
/// text device.
struct DynamicValues {
    schema: &'static isml_schema::Schema,
    by_id: std::collections::HashMap<u32, isml_schema::ir::TypeId>,
}

impl DynamicValues {
    fn new(schema: &'static isml_schema::Schema) -> DynamicValues {
        let by_id = schema
            .types
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((t.message_id()?, isml_schema::ir::TypeId(i as u32))))
            .collect();
        DynamicValues { schema, by_id }
    }

    fn descriptor(
        &self,
        type_id: u32,
    ) -> Result<isml_schema::dynamic::Descriptor<'static>, String> {
        self.by_id
            .get(&type_id)
            .and_then(|t| isml_schema::dynamic::Descriptor::new(self.schema, *t))
            .ok_or_else(|| format!("no loaded schema has type id {type_id}"))
    }
}

impl isml_runtime::text::TextValues for DynamicValues {
    fn encode(&self, type_id: u32, json: &str) -> Result<bytes::Bytes, String> {
        let desc = self.descriptor(type_id)?;
        let value = isml_schema::dynamic::from_json_str(desc, json).map_err(|e| e.to_string())?;
        value
            .encode()
            .map(bytes::Bytes::from)
            .map_err(|e| e.to_string())
    }

    fn decode(&self, type_id: u32, payload: &[u8]) -> Result<String, String> {
        let desc = self.descriptor(type_id)?;
        let value = isml_schema::dynamic::decode(desc, payload).map_err(|e| e.to_string())?;
        Ok(value.to_json_string(false))
    }
}
