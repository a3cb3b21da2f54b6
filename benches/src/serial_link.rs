//! The serial-link measurement: 16-byte messages from a device to a server
//! over a real pseudo-terminal pair, the server listening on
//! `impair+serial://` at 115,200 baud (8N1, 11,520 bytes/s), optionally with
//! bit errors. It measures how full the sender keeps the line, the bytes
//! each message takes on the wire, and, with bit errors, that no corrupt
//! frame reaches the application. Used by `src/bin/serial-link.rs` (prints
//! the figures) and `tests/serial_link.rs` (asserts them in CI).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::transport::Endpoint;
use isml_runtime::transport::impair::{LinkConfig, LinkModel, stream_seed};
use isml_runtime::transport::serial::PtyPair;
use isml_runtime::{Message, TopLevel};

use crate::bench::{AnyMessage, Blob};

/// Payload bytes of each message: a `bench.Blob` whose `data` is 14 bytes
/// (a sequence number and 6 check bytes) encodes to 16.
pub const MESSAGE_SIZE: usize = 16;
/// Bytes at the start of each direction that the chosen seed leaves clean,
/// so that the handshake crosses (a corrupted `hello` would cost a timeout
/// and a new pseudo-terminal, and the handshake is not what is measured).
const CLEAN_START: usize = 512;

// The type id fits the frame's lead byte, so the header is one byte.
const _: () = assert!(Blob::TYPE_ID < 16);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Baud rate of the line (10 bits per byte).
    pub baud: u32,
    /// Messages to send.
    pub messages: u64,
    /// Bit-error rate on the line, both directions.
    pub ber: f64,
    /// The first seed to try: the run uses the first from here whose first
    /// 512 bytes each way cross clean, and reports it.
    pub seed: u64,
}

impl Options {
    /// Enough messages to keep a `baud` line busy for `seconds`.
    pub fn for_seconds(baud: u32, seconds: f64, ber: f64) -> Options {
        let per_message = (MESSAGE_SIZE + 7) as f64;
        Options {
            baud,
            messages: (f64::from(baud) / 10.0 * seconds / per_message) as u64,
            ber,
            seed: 1,
        }
    }
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options run.
    pub options: Options,
    /// The lab URL the server listened on.
    pub url: String,
    /// Messages sent.
    pub sent: u64,
    /// Messages the server's handler received intact and in order.
    pub delivered: u64,
    /// Messages the handler received whose content was wrong or out of order
    /// (must be 0: CRC-32C drops corrupt frames).
    pub wrong: u64,
    /// Corrupt frames the server's serial decoder dropped.
    pub dropped_frames: u64,
    /// Bytes the device wrote while sending.
    pub wire_bytes: u64,
    /// From the first send to the last delivery.
    pub span: Duration,
    /// The link's capacity in bytes per second.
    pub capacity: f64,
    /// The token bucket's depth in bytes (capacity a link grants at once).
    pub burst: usize,
}

impl Report {
    /// Bytes on the wire per message.
    pub fn bytes_per_message(&self) -> f64 {
        self.wire_bytes as f64 / self.sent as f64
    }

    /// Framing bytes per message beyond its 16-byte payload.
    pub fn overhead_per_message(&self) -> f64 {
        self.bytes_per_message() - MESSAGE_SIZE as f64
    }

    /// Bytes on the wire over what the link could carry in the sending
    /// period: a token bucket carries at most its depth plus the rate times
    /// the time, so a line kept busy scores 1.
    pub fn utilisation(&self) -> f64 {
        self.wire_bytes as f64 / (self.capacity * self.span.as_secs_f64() + self.burst as f64)
    }

    /// Payload bytes delivered over the link's capacity in the period.
    pub fn goodput(&self) -> f64 {
        (self.delivered as usize * MESSAGE_SIZE) as f64
            / (self.capacity * self.span.as_secs_f64() + self.burst as f64)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "link             {}", self.url)?;
        writeln!(
            f,
            "sent             {} messages of {MESSAGE_SIZE} bytes in {:.3} s",
            self.sent,
            self.span.as_secs_f64()
        )?;
        writeln!(
            f,
            "on the wire      {} bytes, {:.2} per message ({:.2} bytes of framing)",
            self.wire_bytes,
            self.bytes_per_message(),
            self.overhead_per_message()
        )?;
        writeln!(
            f,
            "utilisation      {:.2} % of {:.0} bytes/s",
            self.utilisation() * 100.0,
            self.capacity
        )?;
        writeln!(
            f,
            "goodput          {:.2} % of the link",
            self.goodput() * 100.0
        )?;
        writeln!(f, "delivered        {}", self.delivered)?;
        writeln!(f, "dropped (CRC)    {} corrupt frames", self.dropped_frames)?;
        write!(f, "corrupt in app   {}", self.wrong)
    }
}

/// Why the measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The pseudo-terminal pair could not be opened.
    #[error("pty: {0}")]
    Pty(#[from] std::io::Error),
    /// The server did not start.
    #[error("server: {0}")]
    Server(#[from] isml_runtime::server::ServerError),
    /// The device did not connect.
    #[error("connect: {0}")]
    Connect(#[from] isml_runtime::client::ConnectError),
    /// A send failed.
    #[error("send: {0}")]
    Send(#[from] isml_runtime::session::SendError),
    /// The URL was refused.
    #[error("url: {0}")]
    Url(#[from] isml_runtime::transport::TransportError),
    /// The bytes sent did not all arrive in time.
    #[error("{0}")]
    Stuck(String),
}

fn check_bytes(seq: u64) -> [u8; 6] {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let b = z.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

fn message(seq: u64) -> Blob {
    let mut data = seq.to_le_bytes().to_vec();
    data.extend_from_slice(&check_bytes(seq));
    Blob { data: data.into() }
}

/// The first seed from `from` under which the first [`CLEAN_START`] bytes
/// of both directions of the link's first connection cross without errors.
fn clean_start_seed(config: &LinkConfig, from: u64) -> u64 {
    (from..)
        .find(|&seed| {
            (0..2).all(|direction| {
                let mut c = config.clone();
                c.seed = seed;
                let mut m = LinkModel::new(&c, stream_seed(seed, 0, direction));
                m.corrupt(&mut [0u8; CLEAN_START]) == 0
            })
        })
        .expect("a seed exists")
}

#[derive(Default)]
struct Tally {
    delivered: AtomicU64,
    wrong: AtomicU64,
    next: AtomicU64,
    last: Mutex<Option<Instant>>,
}

/// Runs the measurement.
pub async fn run(options: &Options) -> Result<Report, LinkError> {
    let pty = PtyPair::open()?;
    let mut url = format!("impair+{}", pty.url(options.baud));
    if options.ber > 0.0 {
        url.push_str(&format!("&ber={}", options.ber));
    }
    let Endpoint::Impair { link, .. } = url.parse::<Endpoint>()? else {
        unreachable!("an impair+ URL")
    };
    let seed = clean_start_seed(&link, options.seed);
    url.push_str(&format!("&seed={seed}"));
    let capacity = link.bytes_per_second().expect("serial links are capped");
    let burst = link.burst_bytes().expect("serial links are capped");

    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let dispatcher = Dispatcher::new().on::<Blob, _, _>(move |_ctx, m| {
        let t = t.clone();
        async move {
            let ok = m.data.len() == 14 && {
                let seq = u64::from_le_bytes(m.data[..8].try_into().unwrap_or_default());
                // Sequence numbers only grow (frames are dropped, never
                // reordered or repeated), and the check bytes match.
                let fresh = seq >= t.next.load(Ordering::Relaxed);
                if fresh {
                    t.next.store(seq + 1, Ordering::Relaxed);
                }
                fresh && m.data[8..] == check_bytes(seq)
            };
            if ok {
                t.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                t.wrong.fetch_add(1, Ordering::Relaxed);
            }
            *t.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            Ok(())
        }
    });
    let server = Server::builder()
        .listen(&url)
        .types(AnyMessage::TYPES)
        .dispatcher(dispatcher)
        .start()
        .await?;
    let device = pty.into_transport(None)?;
    let counters = device.info().counters.clone();
    let session = Client::builder(&url)
        .types(AnyMessage::TYPES)
        .handshake_timeout(Duration::from_secs(10))
        .connect_over(device)
        .await?;
    assert_eq!(message(0).encoded_len(), MESSAGE_SIZE);

    let start = Instant::now();
    let before = counters.bytes_out();
    let frames_before = session.stats().frames_out;
    for seq in 0..options.messages {
        session.send(&message(seq)).await?;
    }
    // Wait until every byte written has been read by the server.
    let server_session = loop {
        if let Some(s) = server.sessions().into_iter().next() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let deadline =
        Instant::now() + Duration::from_secs_f64(options.messages as f64 * 30.0 / capacity + 10.0);
    // Every message written to the line first (`send` only queues them: on
    // a loaded machine the connection task can be behind, and the bytes
    // written so far would already be read), then every byte read.
    while session.stats().frames_out < frames_before + options.messages {
        if Instant::now() > deadline {
            return Err(LinkError::Stuck(format!(
                "the device wrote {} of {} messages",
                session.stats().frames_out - frames_before,
                options.messages
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut written = counters.bytes_out();
    while server_session.stats().bytes_in < written {
        if Instant::now() > deadline {
            return Err(LinkError::Stuck(format!(
                "the server read {} of {written} bytes",
                server_session.stats().bytes_in
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        written = counters.bytes_out();
    }
    let last = tally
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(start);
    let report = Report {
        options: Options {
            seed,
            ..options.clone()
        },
        url: url.clone(),
        sent: options.messages,
        delivered: tally.delivered.load(Ordering::Relaxed),
        wrong: tally.wrong.load(Ordering::Relaxed),
        dropped_frames: server_session.stats().errors,
        wire_bytes: written - before,
        span: last - start,
        capacity,
        burst,
    };
    session.close("done").await;
    server.shutdown().await;
    Ok(report)
}
