//! The link lab: a server and a cabinet exchanging at-least-once messages
//! in both directions over a shaped link (`impair+…`), counting what was
//! sent, acknowledged, delivered to a handler, lost and duplicated, and how
//! much of the link's capacity the messages used (docs/reliability.md,
//! "Link lab").
//!
//! The `link-lab` binary runs it for a number of seconds of real time. The
//! acceptance test (`examples/tests/link_lab.rs`) runs it for a number of
//! messages on tokio's paused clock: the same code, the same link, without
//! waiting for it.
//!
//! The cabinet sends `MeterReading`s, numbered by the meter's `energy_wh`
//! counter; the server sends `StopCharging` commands, numbered in their
//! `reason`. Each sender keeps at most a window's worth of messages
//! unacknowledged ([`LabConfig::window`], which is also the runtime's
//! `unacked_bytes` on both sides) and a few more queued behind it, so it
//! sends as fast as the window lets it and its messages do not wait in a
//! long queue of the lab's own.

mod book;
mod report;
mod time;

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isml_runtime::client::{Backoff, Client};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::{Delivered, Delivery, SendError};
use isml_runtime::transport::Endpoint;
use isml_runtime::transport::impair::{self, LinkConfig, Profile};
use isml_runtime::wire::{self, FrameHeader};
use isml_runtime::{Message, TopLevel};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::charging::v1::{AnyMessage, MeterReading, StopCharging};
use crate::common::Timestamp;
use book::Ledger;

pub use report::{DirectionReport, LabReport};
pub use time::{cut_between, session_between};

/// The cabinet's device id.
pub const DEVICE: &str = "cabinet-lab";

/// Messages a sender may have queued behind its window.
const QUEUE_BEHIND_WINDOW: usize = 16;

/// Names the in-memory links of several runs in one process apart.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The transport the shaped link wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabTransport {
    /// The in-memory transport (`impair+mem://`).
    Mem,
    /// TCP over the loopback interface (`impair+tcp://`).
    Tcp,
}

impl LabTransport {
    /// The URL scheme.
    pub fn name(self) -> &'static str {
        match self {
            LabTransport::Mem => "mem",
            LabTransport::Tcp => "tcp",
        }
    }
}

impl std::str::FromStr for LabTransport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mem" => Ok(LabTransport::Mem),
            "tcp" => Ok(LabTransport::Tcp),
            other => Err(format!("unknown transport `{other}` (mem or tcp)")),
        }
    }
}

/// When a sender stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// After this many messages.
    Messages(u64),
    /// After this long (from the start of the run).
    For(Duration),
}

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LabConfig {
    /// The shaped link.
    pub link: LinkConfig,
    /// The transport under it.
    pub transport: LabTransport,
    /// What the cabinet sends (device -> server).
    pub up: Budget,
    /// What the server sends (server -> device).
    pub down: Budget,
    /// Bytes of messages sent and not yet acknowledged, per direction
    /// (`unacked_bytes` on both sides).
    pub window: usize,
    /// How long an acknowledgement may wait (`ack_delay` on both sides;
    /// `None`: the runtime's default).
    pub ack_delay: Option<Duration>,
    /// The cabinet's reconnection delays.
    pub reconnect: Backoff,
    /// How long to wait, once the senders stopped, for the last
    /// acknowledgements and deliveries.
    pub drain: Duration,
}

impl LabConfig {
    /// Both sides sending for `seconds` over `profile` with `seed`, over
    /// TCP, with the window of [`default_window`], the cabinet trying to
    /// reconnect every 50 to 100 ms.
    pub fn new(profile: Profile, seed: u64, seconds: u64) -> LabConfig {
        let mut link = profile.config();
        link.seed = seed;
        let window = default_window(&link);
        let period = link.cuts.map_or(Duration::ZERO, |c| c.every);
        LabConfig {
            link,
            transport: LabTransport::Tcp,
            up: Budget::For(Duration::from_secs(seconds)),
            down: Budget::For(Duration::from_secs(seconds)),
            window,
            ack_delay: None,
            // A modem tells when its bearer is back; trying often costs the
            // link nothing while it is cut (the attempt fails locally).
            reconnect: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(100),
                jitter: 0.5,
            },
            drain: Duration::from_secs(30) + 2 * period,
        }
    }

    /// The URL the cabinet connects to: the link's parameters spelled out,
    /// around the server's address.
    fn url(&self, run: u64, server: &str) -> String {
        let l = &self.link;
        let mut q = format!(
            "latency={}us&jitter={}us&byte_bits={}&seed={}",
            l.latency.as_micros(),
            l.jitter.as_micros(),
            l.byte_bits,
            l.seed
        );
        if let Some(rate) = l.rate {
            let _ = write!(q, "&rate={rate}");
        }
        if let Some(burst) = l.burst {
            let _ = write!(q, "&burst={burst}B");
        }
        if let Some(c) = l.cuts {
            let _ = write!(
                q,
                "&cut_every={}us&cut_for={}us&cut_mode={}",
                c.every.as_micros(),
                c.duration.as_micros(),
                c.mode.as_str()
            );
        }
        match self.transport {
            LabTransport::Mem => format!("impair+mem://link-lab-{run}?{q}"),
            LabTransport::Tcp => format!("impair+{server}?{q}"),
        }
    }
}

/// The window the lab uses unless told otherwise: four seconds of the
/// link's rate, at least 16 KiB, at most 1 MiB. It has to cover a round
/// trip, and on a slow link an acknowledgement's trip includes the time it
/// waits behind the other direction's data in the transport's buffers.
pub fn default_window(link: &LinkConfig) -> usize {
    let per_second = link.bytes_per_second().unwrap_or(f64::INFINITY);
    ((per_second * 4.0).min(1024.0 * 1024.0) as usize).max(16 * 1024)
}

/// Why the lab could not run.
#[derive(Debug)]
pub struct LabError {
    what: &'static str,
    error: String,
}

impl LabError {
    fn new(what: &'static str, error: impl fmt::Display) -> LabError {
        LabError {
            what,
            error: error.to_string(),
        }
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.error)
    }
}

impl std::error::Error for LabError {}

/// Bytes of a one-way frame with sequence number `seq` and a payload of
/// `payload` bytes on a byte stream.
fn stream_frame_len(type_id: u32, seq: u64, payload: usize) -> u32 {
    wire::stream_frame_len(&FrameHeader::one_way(type_id).with_seq(seq), payload) as u32
}

/// The cabinet's message `n`, sent at link time `at`.
fn reading(n: u64, at: Duration) -> MeterReading {
    MeterReading {
        at: Timestamp {
            millis: at.as_millis() as u64,
        },
        energy_wh: n,
        power_w: 7_000 + (n % 400) as i32,
        voltage_v: 230.0,
        current_a: 30.5,
        phase_voltages_v: None,
    }
}

const ORDER: &str = "tariff window closed, order ";

/// The server's message `n`.
fn command(n: u64) -> StopCharging {
    StopCharging {
        slot: (n % 8) as u8,
        reason: Some(format!("{ORDER}{n}")),
    }
}

fn order_of(m: &StopCharging) -> Option<u64> {
    m.reason.as_deref()?.strip_prefix(ORDER)?.parse().ok()
}

/// When each session of one side started.
type Starts = Arc<Mutex<Vec<Instant>>>;

fn record(starts: &Starts) {
    starts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Instant::now());
}

/// Runs the lab: starts the server and the cabinet, sends both ways,
/// waits for the acknowledgements, counts.
pub async fn run(config: &LabConfig) -> Result<LabReport, LabError> {
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let (up_book, down_book) = (Ledger::default(), Ledger::default());
    let (up_starts, down_starts) = (Starts::default(), Starts::default());

    let starts = down_starts.clone();
    let book = up_book.clone();
    let mut server = Server::builder()
        .listen(match config.transport {
            LabTransport::Mem => format!("mem://link-lab-{run}"),
            LabTransport::Tcp => "tcp://127.0.0.1:0".to_owned(),
        })
        // Every reconnection comes from the same address; and the handshake
        // rate limiter keeps time by the wall clock, not tokio's, so that on
        // the paused clock it would refuse reconnections seconds apart.
        .handshake_rate(None)
        .types(AnyMessage::TYPES)
        .unacked_bytes(config.window)
        .session_expiry(Duration::from_secs(300))
        .on_open(move |s| {
            if s.device_id() == DEVICE {
                record(&starts);
            }
        })
        .dispatcher(Dispatcher::new().on::<MeterReading, _, _>(move |_ctx, m| {
            book.delivered(m.energy_wh);
            async { Ok(()) }
        }));
    if let Some(d) = config.ack_delay {
        server = server.ack_delay(d);
    }
    let server = server
        .start()
        .await
        .map_err(|e| LabError::new("starting the server", e))?;

    let url = config.url(run, &server.urls()[0]);
    let endpoint: Endpoint = url
        .parse()
        .map_err(|e| LabError::new("the link's URL", e))?;
    // The link starts now: the origin of its cut schedule and of the run's times.
    let link = impair::Link::shared(&endpoint)
        .ok_or_else(|| LabError::new("the link's URL", "not an impaired link"))?;
    let epoch = Instant::now() - link.elapsed();
    let since = move |t: Instant| t.saturating_duration_since(epoch);

    let starts = up_starts.clone();
    let book = down_book.clone();
    let mut client = Client::builder(&url)
        .device_id(DEVICE)
        .types(AnyMessage::TYPES)
        .resume(true)
        .reconnect(config.reconnect)
        .unacked_bytes(config.window)
        .on_connect(move |_| record(&starts))
        .dispatcher(Dispatcher::new().on::<StopCharging, _, _>(move |_ctx, m| {
            match order_of(&m) {
                Some(n) => book.delivered(n),
                None => book.unknown(),
            }
            async { Ok(()) }
        }));
    if let Some(d) = config.ack_delay {
        client = client.ack_delay(d);
    }
    let client = client
        .connect()
        .await
        .map_err(|e| LabError::new("connecting the cabinet", e))?;
    // Sends through the session's reliable state, whichever connection
    // carries it at the time.
    let session = server
        .session_by_device(DEVICE)
        .ok_or_else(|| LabError::new("the server", "it has no session of the cabinet"))?;

    // The window's worth of messages (by the size of the first one), and
    // a few queued behind it.
    let places = |frame: u32| config.window / frame.max(1) as usize + QUEUE_BEHIND_WINDOW;
    let up = {
        let first = stream_frame_len(
            MeterReading::TYPE_ID,
            1,
            reading(0, Duration::ZERO).encoded_len(),
        );
        let (book, client, budget) = (up_book.clone(), client.clone(), config.up);
        let window = Arc::new(Semaphore::new(places(first)));
        tokio::spawn(async move {
            send_all(&book, &window, budget, |n| {
                let m = reading(n, since(Instant::now()));
                let client = client.clone();
                let sizes = (
                    stream_frame_len(MeterReading::TYPE_ID, n + 1, m.encoded_len()),
                    m.encoded_len() as u32,
                );
                (sizes, async move {
                    client.send_with(&m, Delivery::AtLeastOnce).await
                })
            })
            .await
        })
    };
    let down = {
        let first = stream_frame_len(StopCharging::TYPE_ID, 1, command(0).encoded_len());
        let (book, budget) = (down_book.clone(), config.down);
        let window = Arc::new(Semaphore::new(places(first)));
        tokio::spawn(async move {
            send_all(&book, &window, budget, |n| {
                let m = command(n);
                let session = session.clone();
                let sizes = (
                    stream_frame_len(StopCharging::TYPE_ID, n + 1, m.encoded_len()),
                    m.encoded_len() as u32,
                );
                (sizes, async move {
                    session.send_with(&m, Delivery::AtLeastOnce).await
                })
            })
            .await
        })
    };
    let up = up
        .await
        .map_err(|e| LabError::new("the cabinet's sender", e))?;
    let down = down
        .await
        .map_err(|e| LabError::new("the server's sender", e))?;
    up.map_err(|e| LabError::new("the cabinet sending", e))?;
    down.map_err(|e| LabError::new("the server sending", e))?;

    // What is still in flight: waited for, up to the drain time; what is
    // not settled by then shows as unacknowledged.
    let _ = tokio::time::timeout(config.drain, async {
        while !(up_book.settled() && down_book.settled()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let elapsed = link.elapsed();
    let cabinet = client.link_stats().unwrap_or_default();
    let fleet = server.link_stats(DEVICE).unwrap_or_default();
    let resumes = server.resume_stats();
    let wire = link.stats();
    client.close("link lab done").await;
    server.shutdown().await;

    let rate = config.link.bytes_per_second().unwrap_or(0.0);
    let direction = |book: &Ledger, starts: &Starts, link_bytes: u64| {
        let t = book.totals();
        let first = t.first_send.map_or(Duration::ZERO, since);
        let last = t.last_delivery.map_or(first, since);
        let up_time = last.saturating_sub(first) - cut_between(&config.link, first, last);
        let starts: Vec<Duration> = starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|&s| since(s))
            .collect();
        let session_time = session_between(&config.link, &starts, first, last);
        DirectionReport {
            sent: t.sent,
            acked: t.acked,
            delivered: t.delivered,
            lost: t.lost,
            duplicated: t.duplicated + t.unknown,
            failed: t.failed,
            unacked: t.sent - t.acked - t.failed,
            frame_bytes: t.frame_bytes,
            payload_bytes: t.payload_bytes,
            capacity: rate * up_time.as_secs_f64(),
            session_capacity: rate * session_time.as_secs_f64(),
            first_send: first,
            last_delivery: last,
            latencies: t.latencies,
            link_bytes,
            ..DirectionReport::default()
        }
    };
    let mut up = direction(&up_book, &up_starts, wire.bytes_out);
    up.resent = cabinet.resent;
    up.dropped_duplicates = fleet.duplicates;
    up.acks = fleet.acks_sent;
    let mut down = direction(&down_book, &down_starts, wire.bytes_in);
    down.resent = fleet.resent;
    down.dropped_duplicates = cabinet.duplicates;
    down.acks = cabinet.acks_sent;
    Ok(LabReport {
        link: config.link.clone(),
        transport: config.transport,
        up,
        down,
        elapsed,
        cut_time: cut_between(&config.link, Duration::ZERO, elapsed),
        connections: wire.connections,
        dropped: wire.dropped,
        resumes: resumes.resumed,
        new_states: resumes.not_found,
    })
}

/// Sends numbered messages until the budget is spent, each once a place in
/// the window is free; `make(n)` gives message `n`'s frame and payload
/// bytes, and its sending.
async fn send_all<F, Fut>(
    book: &Ledger,
    window: &Arc<Semaphore>,
    budget: Budget,
    mut make: F,
) -> Result<(), SendError>
where
    F: FnMut(u64) -> ((u32, u32), Fut),
    Fut: Future<Output = Result<Delivered, SendError>>,
{
    let until = match budget {
        Budget::For(d) => Some(Instant::now() + d),
        Budget::Messages(_) => None,
    };
    loop {
        if let Budget::Messages(max) = budget
            && book.sent() >= max
        {
            return Ok(());
        }
        let place = window.clone().acquire_owned();
        let place = match until {
            Some(t) => match tokio::time::timeout_at(t, place).await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            None => place.await,
        };
        let Ok(place) = place else { return Ok(()) };
        if until.is_some_and(|t| Instant::now() >= t) {
            return Ok(());
        }
        let n = book.sent();
        let ((frame, payload), send) = make(n);
        book.next(frame, payload);
        let handle = send.await?;
        book.watch(n, handle, place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_follow_the_wire_format() {
        // Length byte, lead byte (type 3), extension byte (SEQ), seq 1, payload.
        assert_eq!(stream_frame_len(3, 1, 20), 1 + 1 + 1 + 1 + 20);
        // Seq 300 takes two bytes, a 200-byte frame a two-byte length.
        assert_eq!(stream_frame_len(3, 300, 196), 2 + 1 + 1 + 2 + 196);
    }

    #[test]
    fn commands_carry_their_number() {
        assert_eq!(order_of(&command(9_999)), Some(9_999));
        assert_eq!(order_of(&StopCharging::default()), None);
    }

    #[test]
    fn urls_spell_out_the_link() {
        let mut c = LabConfig::new(Profile::TwoG, 7, 1);
        assert_eq!(
            c.url(0, "tcp://127.0.0.1:9"),
            "impair+tcp://127.0.0.1:9?latency=300000us&jitter=200000us&byte_bits=8&seed=7\
             &rate=20000&cut_every=10000000us&cut_for=3000000us&cut_mode=drop"
        );
        c.transport = LabTransport::Mem;
        let url = c.url(3, "");
        assert!(url.starts_with("impair+mem://link-lab-3?"));
        let endpoint: Endpoint = url.parse().unwrap();
        let Endpoint::Impair { link, .. } = endpoint else {
            panic!("{url} is not impaired");
        };
        let mut expected = Profile::TwoG.config();
        expected.seed = 7;
        expected.profile = None;
        assert_eq!(link, expected);
        assert_eq!(default_window(&link), 16 * 1024);
    }
}
