//! What a run of the lab found, and how it is printed.

use std::fmt::{self, Write as _};
use std::time::Duration;

use isml_runtime::transport::impair::{CutMode, LinkConfig, Profile};

use super::LabTransport;

/// What happened to the messages of one direction.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DirectionReport {
    /// Messages sent (`send_with` returned a handle).
    pub sent: u64,
    /// Of them, acknowledged by the peer.
    pub acked: u64,
    /// Distinct messages a handler saw.
    pub delivered: u64,
    /// Acknowledged messages no handler saw.
    pub lost: u64,
    /// Handler calls for a message a handler had seen before (or for one
    /// never sent).
    pub duplicated: u64,
    /// Messages whose handle failed (the reliable state ended).
    pub failed: u64,
    /// Messages still unacknowledged when the lab stopped waiting.
    pub unacked: u64,
    /// Bytes of the delivered messages' frames, each message counted once,
    /// as on the byte stream: length prefix, header with its sequence
    /// number, payload (wire format §2, §3).
    pub frame_bytes: u64,
    /// Of them, bytes of message payloads.
    pub payload_bytes: u64,
    /// What the link could carry this way while it was up, from the first
    /// message sent to the last one delivered: rate × (that time − the cuts).
    pub capacity: f64,
    /// Of it, what it could carry while the sending side had a session:
    /// the capacity less the reconnections (from the end of a cut to the
    /// handshake's end on the sending side).
    pub session_capacity: f64,
    /// Link time of the first send.
    pub first_send: Duration,
    /// Link time of the last delivery.
    pub last_delivery: Duration,
    /// Send-to-handler times of the delivered messages, sorted.
    pub latencies: Vec<Duration>,
    /// Frames the sender wrote again after a resume (those the peer had
    /// not received; they cost the link nothing unless they had been on it).
    pub resent: u64,
    /// Duplicates the receiving runtime dropped before any handler.
    pub dropped_duplicates: u64,
    /// Acknowledgement frames the receiver wrote (they travel the other way).
    pub acks: u64,
    /// All bytes the link delivered this way over the whole run: messages,
    /// acknowledgements of the other way, handshakes.
    pub link_bytes: u64,
}

impl DirectionReport {
    /// Delivered frame bytes over the capacity while the link was up
    /// (0 when nothing was sent).
    pub fn goodput(&self) -> f64 {
        ratio(self.frame_bytes as f64, self.capacity)
    }

    /// Delivered frame bytes over the capacity while a session was up.
    pub fn session_goodput(&self) -> f64 {
        ratio(self.frame_bytes as f64, self.session_capacity)
    }

    /// The latency at quantile `q` (0 ..= 1).
    pub fn latency(&self, q: f64) -> Duration {
        let Some(last) = self.latencies.len().checked_sub(1) else {
            return Duration::ZERO;
        };
        self.latencies[((last as f64 * q.clamp(0.0, 1.0)).round() as usize).min(last)]
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LabReport {
    /// The link.
    pub link: LinkConfig,
    /// The transport under it.
    pub transport: LabTransport,
    /// Device -> server.
    pub up: DirectionReport,
    /// Server -> device.
    pub down: DirectionReport,
    /// Link time at the end of the run.
    pub elapsed: Duration,
    /// Link time the link was cut.
    pub cut_time: Duration,
    /// Connections the link carried.
    pub connections: u64,
    /// Of them, those a cut ended.
    pub dropped: u64,
    /// Sessions that resumed the cabinet's reliable state.
    pub resumes: u64,
    /// Sessions that started a new reliable state (an expired or unknown token).
    pub new_states: u64,
}

impl LabReport {
    /// Messages sent, both ways.
    pub fn sent(&self) -> u64 {
        self.up.sent + self.down.sent
    }

    /// Messages acknowledged, both ways.
    pub fn acked(&self) -> u64 {
        self.up.acked + self.down.acked
    }

    /// Acknowledged messages no handler saw, both ways.
    pub fn lost(&self) -> u64 {
        self.up.lost + self.down.lost
    }

    /// Messages a handler saw twice, both ways.
    pub fn duplicated(&self) -> u64 {
        self.up.duplicated + self.down.duplicated
    }

    /// Messages sent and never acknowledged (failed, or still waiting at
    /// the end), both ways.
    pub fn unacknowledged(&self) -> u64 {
        self.up.unacked + self.down.unacked + self.up.failed + self.down.failed
    }

    /// The last line: `link-lab: profile P, sent N, acked N, lost L,
    /// duplicated D, goodput G% of link`, with the goodput of the device ->
    /// server direction, the one the cabinet fills.
    pub fn summary(&self) -> String {
        format!(
            "link-lab: profile {}, sent {}, acked {}, lost {}, duplicated {}, goodput {:.1}% of link",
            profile_name(&self.link),
            self.sent(),
            self.acked(),
            self.lost(),
            self.duplicated(),
            self.up.goodput() * 100.0
        )
    }
}

pub(super) fn profile_name(link: &LinkConfig) -> &'static str {
    link.profile.map_or("custom", Profile::name)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn describe(link: &LinkConfig) -> String {
    let mut s = match link.rate {
        Some(r) if r % 1000 == 0 => format!("{} kbit/s", r / 1000),
        Some(r) => format!("{r} bit/s"),
        None => "no rate cap".to_owned(),
    };
    let _ = write!(s, ", {} ± {}", secs(link.latency), secs(link.jitter));
    if let Some(c) = link.cuts {
        let what = match c.mode {
            CutMode::Drop => "cut",
            CutMode::Stall => "stalled",
        };
        let _ = write!(
            s,
            ", {what} every {} for {}",
            secs(c.every),
            secs(c.duration)
        );
    }
    s
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

impl fmt::Display for LabReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (u, d) = (&self.up, &self.down);
        writeln!(
            f,
            "profile {} ({}), seed {}, over {}",
            profile_name(&self.link),
            describe(&self.link),
            self.link.seed,
            self.transport.name()
        )?;
        writeln!(
            f,
            "{} of link time, {} of it cut; {} connections, {} ended by cuts; {} resumes, {} new states",
            secs(self.elapsed),
            secs(self.cut_time),
            self.connections,
            self.dropped,
            self.resumes,
            self.new_states
        )?;
        writeln!(f)?;
        let mut row = |name: &str, a: String, b: String| writeln!(f, "{name:<44} {a:>17} {b:>17}");
        row("", "device -> server".into(), "server -> device".into())?;
        let n = |x: u64| x.to_string();
        let b = |x: f64| format!("{x:.0}");
        row("sent", n(u.sent), n(d.sent))?;
        row("acked", n(u.acked), n(d.acked))?;
        row("delivered to the handler", n(u.delivered), n(d.delivered))?;
        row("lost (acked, never delivered)", n(u.lost), n(d.lost))?;
        row(
            "duplicated (delivered twice)",
            n(u.duplicated),
            n(d.duplicated),
        )?;
        row(
            "failed / unacked at the end",
            format!("{} / {}", u.failed, u.unacked),
            format!("{} / {}", d.failed, d.unacked),
        )?;
        row("resent after a resume", n(u.resent), n(d.resent))?;
        row(
            "duplicates dropped by the runtime",
            n(u.dropped_duplicates),
            n(d.dropped_duplicates),
        )?;
        row("acks written by the receiver", n(u.acks), n(d.acks))?;
        row(
            "message frame bytes (each message once)",
            n(u.frame_bytes),
            n(d.frame_bytes),
        )?;
        row("  of which payload", n(u.payload_bytes), n(d.payload_bytes))?;
        row(
            "link capacity while up (bytes)",
            b(u.capacity),
            b(d.capacity),
        )?;
        row(
            "  of which with a session up",
            b(u.session_capacity),
            b(d.session_capacity),
        )?;
        row(
            "goodput of the link while up",
            percent(u.goodput()),
            percent(d.goodput()),
        )?;
        row(
            "goodput while a session was up",
            percent(u.session_goodput()),
            percent(d.session_goodput()),
        )?;
        row(
            "all bytes the link carried",
            n(u.link_bytes),
            n(d.link_bytes),
        )?;
        for (name, q) in [
            ("latency p50", 0.5),
            ("latency p90", 0.9),
            ("latency p99", 0.99),
            ("latency max", 1.0),
        ] {
            row(name, secs(u.latency(q)), secs(d.latency(q)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_the_sorted_latencies() {
        let r = DirectionReport {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..DirectionReport::default()
        };
        assert_eq!(r.latency(0.5), Duration::from_millis(51));
        assert_eq!(r.latency(0.99), Duration::from_millis(99));
        assert_eq!(r.latency(1.0), Duration::from_millis(100));
        assert_eq!(DirectionReport::default().latency(0.5), Duration::ZERO);
        assert_eq!(DirectionReport::default().goodput(), 0.0);
    }
}
