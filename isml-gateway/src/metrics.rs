//! `GET /metrics`: the server, its sessions, the broker's channels, its
//! link to its cluster and the gateway's own calls in the Prometheus text
//! format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::State;

/// What the gateway counts itself.
#[derive(Default)]
pub(crate) struct Counters {
    /// Calls through the gateway by (method, status code name).
    calls: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    auth_refused: AtomicU64,
    acl_refused: AtomicU64,
    published: AtomicU64,
}

impl Counters {
    pub(crate) fn call(&self, method: &'static str, code: &'static str) {
        let mut m = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method, code)).or_default() += 1;
    }

    pub(crate) fn auth_refused(&self) {
        self.auth_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn acl_refused(&self) {
        self.acl_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }
}

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }
}

pub(crate) fn render(state: &State) -> String {
    let server = &state.server;
    let stats = server.stats();
    let sessions = server.sessions();
    let ended = state.events.ended();
    let (mut fin, mut fout, mut bin, mut bout, mut filtered, mut errors) = (
        ended.frames_in,
        ended.frames_out,
        ended.bytes_in,
        ended.bytes_out,
        ended.filtered,
        ended.errors,
    );
    let mut by_transport: BTreeMap<&'static str, u64> = BTreeMap::new();
    for s in &sessions {
        let st = s.stats();
        fin += st.frames_in;
        fout += st.frames_out;
        bin += st.bytes_in;
        bout += st.bytes_out;
        filtered += st.filtered;
        errors += st.errors;
        *by_transport.entry(s.scheme()).or_default() += 1;
    }
    let mut o = Out(String::with_capacity(8 * 1024));
    o.head(
        "isml_sessions",
        "gauge",
        "Sessions established now, by transport.",
    );
    if by_transport.is_empty() {
        let _ = writeln!(o.0, "isml_sessions 0");
    }
    for (t, n) in &by_transport {
        let _ = writeln!(o.0, "isml_sessions{{transport=\"{}\"}} {n}", label(t));
    }
    o.one(
        "isml_sessions_unauthenticated",
        "gauge",
        "Connections in their handshake now.",
        stats.unauthenticated,
    );
    o.one(
        "isml_connections_accepted_total",
        "counter",
        "Connections accepted.",
        stats.accepted,
    );
    o.one(
        "isml_sessions_opened_total",
        "counter",
        "Sessions established since the gateway started.",
        state.events.opened_total(),
    );
    o.one(
        "isml_sessions_closed_total",
        "counter",
        "Sessions ended since the gateway started.",
        ended.sessions,
    );
    o.one(
        "isml_sessions_refused_total",
        "counter",
        "Authenticated connections refused by the session limit.",
        stats.refused,
    );
    o.one(
        "isml_handshake_failures_total",
        "counter",
        "Connections closed before completing the handshake.",
        stats.handshake_failures,
    );
    o.one(
        "isml_connections_rate_limited_total",
        "counter",
        "Connections refused because their address opened too many too fast.",
        stats.rate_limited,
    );
    o.head(
        "isml_frames_total",
        "counter",
        "Frames received and sent by sessions.",
    );
    let _ = writeln!(o.0, "isml_frames_total{{direction=\"in\"}} {fin}");
    let _ = writeln!(o.0, "isml_frames_total{{direction=\"out\"}} {fout}");
    o.head(
        "isml_bytes_total",
        "counter",
        "Bytes received and sent by sessions on the wire.",
    );
    let _ = writeln!(o.0, "isml_bytes_total{{direction=\"in\"}} {bin}");
    let _ = writeln!(o.0, "isml_bytes_total{{direction=\"out\"}} {bout}");
    o.one(
        "isml_session_errors_total",
        "counter",
        "Failed handlers, undecodable messages, refused types and dropped frames.",
        errors,
    );
    o.one(
        "isml_filtered_messages_total",
        "counter",
        "Messages and publications from sessions refused by the server's filters or ACL.",
        filtered,
    );
    let broker = server.broker_stats();
    o.one(
        "isml_broker_refused_total",
        "counter",
        "Messages and publications the broker refused (ACL or filters).",
        broker.refused,
    );
    o.one(
        "isml_messages_forwarded_total",
        "counter",
        "Device-to-device messages forwarded.",
        broker.messages,
    );
    type Pick = fn(&isml_runtime::pubsub::ChannelStats) -> u64;
    let per_channel: [(&str, &str, &str, Pick); 6] = [
        (
            "isml_publications_total",
            "counter",
            "Publications accepted, by channel.",
            |c| c.published,
        ),
        (
            "isml_publications_refused_total",
            "counter",
            "Publications refused, by channel.",
            |c| c.refused,
        ),
        (
            "isml_deliveries_total",
            "counter",
            "Deliveries handed to subscribers, by channel.",
            |c| c.delivered,
        ),
        (
            "isml_deliveries_dropped_total",
            "counter",
            "Deliveries dropped for slow subscribers, by channel.",
            |c| c.dropped,
        ),
        (
            "isml_channel_subscribers",
            "gauge",
            "Subscriptions now, by channel.",
            |c| c.subscribers as u64,
        ),
        (
            "isml_channel_retained",
            "gauge",
            "Retained values now, by channel.",
            |c| c.retained as u64,
        ),
    ];
    for (name, kind, help, pick) in per_channel {
        o.head(name, kind, help);
        for c in &broker.channels {
            let _ = writeln!(o.0, "{name}{{channel=\"{}\"}} {}", label(&c.name), pick(c));
        }
    }
    cluster(&mut o, &server.cluster_stats());
    o.head(
        "isml_gateway_calls_total",
        "counter",
        "Calls made through the gateway, by method and status code.",
    );
    {
        let calls = state
            .metrics
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for ((method, code), n) in calls.iter() {
            let _ = writeln!(
                o.0,
                "isml_gateway_calls_total{{method=\"{}\",code=\"{code}\"}} {n}",
                label(method)
            );
        }
    }
    o.one(
        "isml_gateway_publications_total",
        "counter",
        "Publications made through the gateway.",
        state.metrics.published.load(Ordering::Relaxed),
    );
    o.head(
        "isml_gateway_refused_total",
        "counter",
        "Gateway requests refused, by reason.",
    );
    let _ = writeln!(
        o.0,
        "isml_gateway_refused_total{{reason=\"unauthenticated\"}} {}",
        state.metrics.auth_refused.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o.0,
        "isml_gateway_refused_total{{reason=\"permission_denied\"}} {}",
        state.metrics.acl_refused.load(Ordering::Relaxed)
    );
    o.0
}

/// The cluster link: its mode as one gauge per mode (1 for the one it is
/// in), and its counters.
fn cluster(o: &mut Out, c: &isml_runtime::cluster::ClusterStats) {
    use isml_runtime::cluster::ClusterStatus;
    o.head(
        "isml_cluster_mode",
        "gauge",
        "This node's link to its cluster: 1 for its mode (single: no cluster; degraded: the cluster is unreachable, local traffic only).",
    );
    for mode in [
        ClusterStatus::Single,
        ClusterStatus::Connected,
        ClusterStatus::Degraded,
    ] {
        let _ = writeln!(
            o.0,
            "isml_cluster_mode{{node=\"{}\",mode=\"{mode}\"}} {}",
            label(&c.node_id),
            u8::from(c.status == mode)
        );
    }
    let pairs: [(&str, &str, u64, u64); 3] = [
        (
            "isml_cluster_publications_total",
            "Publications sent to the other nodes (out) and of other nodes delivered here (in).",
            c.published,
            c.received,
        ),
        (
            "isml_cluster_retained_total",
            "Retained values and deletes written to the cluster (out) and of other nodes applied here (in).",
            c.retained_writes,
            c.retained_applied,
        ),
        (
            "isml_cluster_calls_total",
            "Calls to devices on other nodes (out) and of other nodes served here (in).",
            c.calls_out,
            c.calls_in,
        ),
    ];
    for (name, help, out, inc) in pairs {
        o.head(name, "counter", help);
        let _ = writeln!(o.0, "{name}{{direction=\"out\"}} {out}");
        let _ = writeln!(o.0, "{name}{{direction=\"in\"}} {inc}");
    }
    o.one(
        "isml_cluster_publications_dropped_total",
        "counter",
        "Publications not sent to the other nodes (the cluster unreachable, or its queue full).",
        c.dropped,
    );
    o.one(
        "isml_cluster_messages_sent_total",
        "counter",
        "Device-to-device messages sent to devices on other nodes.",
        c.sent,
    );
    o.one(
        "isml_cluster_sessions_replaced_total",
        "counter",
        "Sessions here closed because their device connected to another node.",
        c.replaced,
    );
    o.one(
        "isml_cluster_disconnects_total",
        "counter",
        "Times the link to the cluster was lost.",
        c.disconnects,
    );
    o.one(
        "isml_cluster_resyncs_total",
        "counter",
        "Times the shared state was resynchronised after the link returned.",
        c.resyncs,
    );
}
