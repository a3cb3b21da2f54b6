//! The shaper on tokio: one task per connection moves bytes between the
//! application's end of an in-memory pipe and the real I/O object, each
//! direction through its own [`LinkModel`].

use std::collections::VecDeque;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};

use super::config::{CutMode, LinkConfig};
use super::model::{Admit, LinkModel, LinkState, link_state, stream_seed};

/// Largest read from either side at once.
const READ_SIZE: usize = 8 * 1024;
/// Bytes on the wire (sent, not arrived) in one direction, at most; reading
/// from the sender pauses beyond it. Matters only for fast links with long
/// delays: a capped link holds no more than its rate times the delay.
const MAX_IN_FLIGHT: usize = 256 * 1024;

/// The time base of a link: durations since its start.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) epoch: Instant,
}

impl Clock {
    pub(super) fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn at(&self, t: Duration) -> Instant {
        self.epoch + t
    }
}

/// Counters of one link, over all its connections.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) connections: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) bits_flipped: AtomicU64,
}

/// Which way bytes go, seen from the side that wraps its I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the application to the real I/O object.
    Out,
    /// From the real I/O object to the application.
    In,
}

/// Everything one connection's task needs.
pub(super) struct Connection<IO, G> {
    pub(super) io: IO,
    pub(super) app: DuplexStream,
    pub(super) config: LinkConfig,
    pub(super) number: u64,
    pub(super) clock: Clock,
    pub(super) counters: Arc<Counters>,
    /// Resolves when the application dropped its end.
    pub(super) app_gone: oneshot::Receiver<()>,
    /// Held until the task ends (a serial listener's permit to reopen the line).
    pub(super) guard: G,
}

impl<IO, G> Connection<IO, G>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    G: Send + 'static,
{
    /// Runs the connection until both directions have ended, the link drops
    /// it, or the application went away and the outbound bytes drained.
    pub(super) async fn run(self) {
        let Connection {
            io,
            app,
            config,
            number,
            clock,
            counters,
            mut app_gone,
            guard: _guard,
        } = self;
        let (io_r, io_w) = tokio::io::split(io);
        let (app_r, app_w) = tokio::io::split(app);
        let seed = config.seed;
        let mut out = pin!(pump(
            app_r,
            io_w,
            LinkModel::new(&config, stream_seed(seed, number, 0)),
            clock,
            &counters,
            Way::Out,
        ));
        let mut inward = pin!(pump(
            io_r,
            app_w,
            LinkModel::new(&config, stream_seed(seed, number, 1)),
            clock,
            &counters,
            Way::In,
        ));
        let (mut out_done, mut in_done, mut gone) = (false, false, false);
        // Once the application has gone, what it wrote still crosses the
        // link (its close frame, say), for no longer than the slowest byte
        // can take.
        let drain = config.latency
            + config.jitter
            + config.cuts.map_or(Duration::ZERO, |c| c.duration)
            + Duration::from_secs(5);
        let mut deadline: Option<Instant> = None;
        loop {
            let cut = next_drop(&config, clock);
            tokio::select! {
                r = &mut out, if !out_done => {
                    out_done = true;
                    if r.is_err() {
                        count_cut(&config, clock, &counters, number);
                        break;
                    }
                }
                r = &mut inward, if !in_done => {
                    in_done = true;
                    if r.is_err() {
                        count_cut(&config, clock, &counters, number);
                        break;
                    }
                }
                _ = &mut app_gone, if !gone => {
                    gone = true;
                    in_done = true;
                    deadline = Some(Instant::now() + drain);
                }
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => break,
                () = sleep_until(clock.at(cut.unwrap_or_default())), if cut.is_some() => {
                    if count_cut(&config, clock, &counters, number) {
                        break;
                    }
                }
            }
            if out_done && in_done {
                break;
            }
        }
    }
}

/// Counts the connection as dropped by a cut if the link is cut now (a
/// direction may meet the cut before the schedule's timer fires: its
/// shaper is refused by the model); whether it is.
fn count_cut(config: &LinkConfig, clock: Clock, counters: &Counters, number: u64) -> bool {
    let LinkState::Cut {
        mode: CutMode::Drop,
        ..
    } = link_state(config.cuts.as_ref(), clock.now())
    else {
        return false;
    };
    counters.dropped.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(connection = number, "impaired link cut: connection dropped");
    true
}

/// When the next cut that drops connections starts.
fn next_drop(config: &LinkConfig, clock: Clock) -> Option<Duration> {
    let cuts = config.cuts.filter(|c| c.mode == CutMode::Drop)?;
    match cuts.state(clock.now()) {
        LinkState::Cut { .. } => Some(clock.now()),
        LinkState::Up { next_cut } => next_cut,
    }
}

/// Moves bytes from `src` to `dst` through `model` until `src` ends and
/// everything has arrived (then shuts `dst` down), or an error.
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    mut model: LinkModel,
    clock: Clock,
    counters: &Counters,
    way: Way,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_SIZE];
    let mut staged = BytesMut::new();
    let mut flight: VecDeque<(Duration, Bytes)> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut eof = false;
    let delivered = match way {
        Way::Out => &counters.bytes_out,
        Way::In => &counters.bytes_in,
    };
    loop {
        let now = clock.now();
        let mut wrote = false;
        while let Some((_, chunk)) = flight.pop_front_if(|(at, _)| *at <= now) {
            in_flight -= chunk.len();
            dst.write_all(&chunk).await?;
            delivered.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            wrote = true;
        }
        if wrote {
            dst.flush().await?;
        }
        let mut wake = flight.front().map(|&(at, _)| at);
        if !staged.is_empty() {
            match model.admit(clock.now(), staged.len()) {
                Admit::Send { len, arrives } => {
                    let mut chunk = staged.split_to(len);
                    let flipped = model.corrupt(&mut chunk);
                    if flipped > 0 {
                        counters.bits_flipped.fetch_add(flipped, Ordering::Relaxed);
                    }
                    in_flight += len;
                    flight.push_back((arrives, chunk.freeze()));
                    continue;
                }
                Admit::Wait { until } => wake = Some(wake.map_or(until, |w| w.min(until))),
                Admit::Down { .. } => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the impaired link is cut",
                    ));
                }
            }
        }
        if eof && staged.is_empty() && flight.is_empty() {
            dst.shutdown().await?;
            return Ok(());
        }
        let room = !eof && staged.is_empty() && in_flight < MAX_IN_FLIGHT;
        tokio::select! {
            biased;
            r = src.read(&mut buf), if room => match r? {
                0 => eof = true,
                n => staged.extend_from_slice(&buf[..n]),
            },
            () = sleep_until(clock.at(wake.unwrap_or_default())), if wake.is_some() => {}
            else => {
                // Not reached: with nothing to read, bytes are staged or in
                // flight, and either gives a time to wake at.
                return Err(io::Error::other("impaired link shaper has nothing to wait for"));
            }
        }
    }
}
