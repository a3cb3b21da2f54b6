//! The link model: given the time and the bytes offered, when may they go on
//! the wire and when do they arrive. Pure: no clock, no I/O, no runtime.
//! Time is a [`Duration`] since the link's start, chosen by the caller, so
//! the tokio shaper ([`super::Link`]) and a deterministic simulator drive
//! the same model.
//!
//! ```
//! use std::time::Duration;
//! use isml_runtime::transport::impair::{Admit, LinkConfig, LinkModel};
//!
//! let mut config = LinkConfig::default();
//! config.rate = Some(80_000); // 10,000 bytes/s
//! config.latency = Duration::from_millis(100);
//! let mut link = LinkModel::new(&config, 1);
//! let Admit::Send { len, arrives } = link.admit(Duration::ZERO, 100_000) else { panic!() };
//! assert_eq!(len, 500); // the bucket's depth: 50 ms of the rate
//! assert_eq!(arrives, Duration::from_millis(100));
//! let Admit::Wait { until } = link.admit(Duration::ZERO, 100_000) else { panic!() };
//! assert_eq!(until, Duration::from_millis(5)); // the next 5 ms of the rate
//! ```

use std::time::Duration;

use super::config::{CutMode, Cuts, LinkConfig};

/// Nanoseconds per second.
const NS: u128 = 1_000_000_000;

/// What the link does with bytes offered at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The first `len` bytes go on the wire now and arrive at `arrives`.
    Send {
        /// How many of the offered bytes go.
        len: usize,
        /// When they arrive at the other end (never before earlier bytes).
        arrives: Duration,
    },
    /// Nothing may go before `until` (the bucket is empty, or the link stalls).
    Wait {
        /// When to offer again.
        until: Duration,
    },
    /// The link is cut in [`CutMode::Drop`]: the connection is gone.
    Down {
        /// When the link comes back up.
        until: Duration,
    },
}

/// Whether the link is up at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Up; `next_cut` is when the next cut starts.
    Up {
        /// Start of the next cut (`None` without cuts).
        next_cut: Option<Duration>,
    },
    /// Cut until `until`.
    Cut {
        /// When the link comes back.
        until: Duration,
        /// What the cut does to connections.
        mode: CutMode,
    },
}

impl Cuts {
    /// The state of the link at `now` (time since the link's start).
    pub fn state(&self, now: Duration) -> LinkState {
        let every = self.every.as_nanos().max(1);
        let t = now.as_nanos();
        let k = t / every;
        let start = k * every;
        if k >= 1 && t - start < self.duration.as_nanos() {
            LinkState::Cut {
                until: nanos(start + self.duration.as_nanos()),
                mode: self.mode,
            }
        } else {
            LinkState::Up {
                next_cut: Some(nanos(start + every)),
            }
        }
    }
}

/// The state of a link with optional cuts at `now`.
pub fn link_state(cuts: Option<&Cuts>, now: Duration) -> LinkState {
    match cuts {
        Some(c) => c.state(now),
        None => LinkState::Up { next_cut: None },
    }
}

fn nanos(n: u128) -> Duration {
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    Duration::from_nanos(n)
}

/// One direction of a shaped link: a token bucket for the rate, a delay
/// line for latency and jitter that never reorders, the cut schedule, and
/// bit errors.
#[derive(Debug, Clone)]
pub struct LinkModel {
    bucket: Option<TokenBucket>,
    latency: u128,
    jitter: u128,
    cuts: Option<Cuts>,
    last_arrival: Duration,
    delays: Rng,
    errors: BitErrors,
}

impl LinkModel {
    /// One direction of `config`, its random draws seeded by `seed` (see
    /// [`stream_seed`] for deriving one per connection and direction).
    pub fn new(config: &LinkConfig, seed: u64) -> LinkModel {
        let bucket = config.rate.map(|rate| {
            let cost = u128::from(config.byte_bits.max(1)) * NS;
            let depth_bytes = config.burst_bytes().unwrap_or(1);
            // Wake-ups of about 5 ms of the rate: often enough to keep the
            // line busy, rarely enough to keep timers cheap.
            let quantum = ((rate as f64 / f64::from(config.byte_bits.max(1)) * 0.005) as usize)
                .clamp(1, depth_bytes);
            TokenBucket {
                rate: u128::from(rate.max(1)),
                cost,
                depth: depth_bytes as u128 * cost,
                tokens: depth_bytes as u128 * cost,
                last: Duration::ZERO,
                quantum,
            }
        });
        let mut seeds = Rng::new(seed);
        LinkModel {
            bucket,
            latency: config.latency.as_nanos(),
            jitter: config.jitter.as_nanos(),
            cuts: config.cuts,
            last_arrival: Duration::ZERO,
            delays: Rng::new(seeds.next_u64()),
            errors: BitErrors::new(config.ber, seeds.next_u64()),
        }
    }

    /// Offers `offered` bytes at `now` (never earlier than a previous call's
    /// `now`).
    pub fn admit(&mut self, now: Duration, offered: usize) -> Admit {
        if offered == 0 {
            return Admit::Wait { until: now };
        }
        match link_state(self.cuts.as_ref(), now) {
            LinkState::Cut {
                until,
                mode: CutMode::Drop,
            } => return Admit::Down { until },
            LinkState::Cut {
                until,
                mode: CutMode::Stall,
            } => return Admit::Wait { until },
            LinkState::Up { .. } => {}
        }
        let len = match &mut self.bucket {
            None => offered,
            Some(b) => match b.take(now, offered) {
                Ok(n) => n,
                Err(until) => return Admit::Wait { until },
            },
        };
        let arrives = self.arrival(now);
        Admit::Send { len, arrives }
    }

    /// When bytes sent at `now` arrive: a delay drawn from latency ± jitter,
    /// no earlier than the bytes ahead, and after the stall they meet.
    fn arrival(&mut self, now: Duration) -> Duration {
        let low = self.latency.saturating_sub(self.jitter);
        let high = self.latency + self.jitter;
        let delay = if high > low {
            low + self.delays.below(high - low + 1)
        } else {
            low
        };
        let mut at = (now + nanos(delay)).max(self.last_arrival);
        if let LinkState::Cut {
            until,
            mode: CutMode::Stall,
        } = link_state(self.cuts.as_ref(), at)
        {
            at = until;
        }
        self.last_arrival = at;
        at
    }

    /// Flips bits of `bytes` (about to go on the wire) at the bit-error
    /// rate; gives how many were flipped. Where errors fall depends only on
    /// the seed and the position in the byte stream, not on how the stream
    /// was cut into chunks.
    pub fn corrupt(&mut self, bytes: &mut [u8]) -> u64 {
        self.errors.apply(bytes)
    }
}

/// Derives the seed of one direction of one connection from a link's seed.
pub fn stream_seed(seed: u64, connection: u64, direction: u64) -> u64 {
    let mut r = Rng::new(seed ^ connection.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let a = r.next_u64();
    Rng::new(a ^ direction.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

/// Tokens in bit-nanoseconds, so that integer arithmetic is exact: a byte
/// costs `byte_bits * 1e9`, and each nanosecond adds `rate`.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: u128,
    cost: u128,
    depth: u128,
    tokens: u128,
    last: Duration,
    quantum: usize,
}

impl TokenBucket {
    /// Takes tokens for up to `offered` bytes: how many, or when a
    /// quantum's worth (or all of `offered`, if less) will be there.
    fn take(&mut self, now: Duration, offered: usize) -> Result<usize, Duration> {
        if now > self.last {
            let add = (now - self.last).as_nanos() * self.rate;
            self.tokens = (self.tokens + add).min(self.depth);
            self.last = now;
        }
        let want = offered.min(self.quantum) as u128;
        let need = want * self.cost;
        if self.tokens < need {
            let missing = need - self.tokens;
            return Err(self.last + nanos(missing.div_ceil(self.rate)));
        }
        let n = (self.tokens / self.cost).min(offered as u128);
        self.tokens -= n * self.cost;
        Ok(n as usize)
    }
}

/// Independent bit errors at a rate `p`: the gaps between flipped bits are
/// drawn from the geometric distribution.
#[derive(Debug, Clone)]
struct BitErrors {
    /// `ln(1 - p)`; zero when `p` is zero.
    log_q: f64,
    /// Bits to pass before the next flipped one.
    gap: u64,
    rng: Rng,
}

impl BitErrors {
    fn new(p: f64, seed: u64) -> BitErrors {
        let mut e = BitErrors {
            log_q: if p > 0.0 { (1.0 - p).ln() } else { 0.0 },
            gap: u64::MAX,
            rng: Rng::new(seed),
        };
        e.gap = e.draw();
        e
    }

    fn draw(&mut self) -> u64 {
        if self.log_q == 0.0 {
            return u64::MAX;
        }
        // u in (0, 1]: the number of bits before the next error is
        // floor(ln(u) / ln(1 - p)).
        let u = 1.0 - self.rng.unit();
        let g = (u.ln() / self.log_q).floor();
        if g >= u64::MAX as f64 {
            u64::MAX
        } else {
            g as u64
        }
    }

    fn apply(&mut self, bytes: &mut [u8]) -> u64 {
        let bits = bytes.len() as u64 * 8;
        let mut pos = 0u64;
        let mut flipped = 0;
        while self.gap < bits - pos {
            pos += self.gap;
            bytes[(pos / 8) as usize] ^= 1 << (pos % 8);
            flipped += 1;
            pos += 1;
            self.gap = self.draw();
        }
        if self.gap != u64::MAX {
            self.gap -= bits - pos;
        }
        flipped
    }
}

/// SplitMix64: small, fast, and the same on every platform and version, so
/// that a seed names a run for good.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) for n >= 1 (the bias of the modulo is below 2^-64 * n).
    fn below(&mut self, n: u128) -> u128 {
        let wide = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        wide % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(f: impl FnOnce(&mut LinkConfig)) -> LinkConfig {
        let mut c = LinkConfig::default();
        f(&mut c);
        c
    }

    /// Offers `total` bytes as fast as the model takes them; gives the
    /// (send time, len, arrival) of every chunk.
    fn drain(m: &mut LinkModel, total: usize) -> Vec<(Duration, usize, Duration)> {
        let (mut now, mut left, mut out) = (Duration::ZERO, total, Vec::new());
        while left > 0 {
            match m.admit(now, left) {
                Admit::Send { len, arrives } => {
                    out.push((now, len, arrives));
                    left -= len;
                }
                Admit::Wait { until } => {
                    assert!(until > now, "waits move time forward");
                    now = until;
                }
                Admit::Down { until } => now = until,
            }
        }
        out
    }

    #[test]
    fn the_rate_holds_over_a_long_transfer() {
        // 115,200 baud 8N1: 11,520 bytes/s; one megabyte takes 91.0 s.
        let c = config(|c| {
            c.rate = Some(115_200);
            c.byte_bits = 10;
        });
        let mut m = LinkModel::new(&c, 1);
        let chunks = drain(&mut m, 1_048_576);
        let last = chunks.last().unwrap().0.as_secs_f64();
        let burst = c.burst_bytes().unwrap() as f64;
        let expected = (1_048_576.0 - burst) / 11_520.0;
        assert!(
            (last - expected).abs() < 0.001,
            "{last} s for 1 MiB, expected {expected}"
        );
        // Chunks between the first (the bucket's depth) and the last are
        // 5 ms of the rate.
        let middle = &chunks[1..chunks.len() - 1];
        assert!(
            middle.iter().all(|&(_, len, _)| len == 57),
            "{:?}",
            &chunks[..3]
        );
    }

    #[test]
    fn a_late_caller_gets_the_tokens_it_missed_up_to_the_depth() {
        let c = config(|c| c.rate = Some(80_000)); // 10,000 B/s, depth 500 B
        let mut m = LinkModel::new(&c, 1);
        assert!(matches!(
            m.admit(Duration::ZERO, 10_000),
            Admit::Send { len: 500, .. }
        ));
        // Woken 30 ms late: 300 bytes' worth of tokens are there.
        assert!(matches!(
            m.admit(ms(30), 10_000),
            Admit::Send { len: 300, .. }
        ));
        // After a long idle time, no more than the depth.
        assert!(matches!(
            m.admit(ms(10_000), 10_000),
            Admit::Send { len: 500, .. }
        ));
    }

    #[test]
    fn delays_stay_within_latency_and_jitter_and_never_reorder() {
        let c = config(|c| {
            c.latency = ms(300);
            c.jitter = ms(200);
            c.rate = Some(20_000);
        });
        let mut m = LinkModel::new(&c, 42);
        let chunks = drain(&mut m, 50_000);
        let mut prev = Duration::ZERO;
        let mut low = Duration::MAX;
        for &(sent, _, arrives) in &chunks {
            assert!(arrives >= prev, "reordered");
            let d = arrives - sent;
            assert!(d >= ms(100) && d <= ms(500), "delay {d:?}");
            low = low.min(d);
            prev = arrives;
        }
        // Some chunks after an idle line see the short end of the range.
        let mut idle = LinkModel::new(&c, 42);
        let mut shortest = Duration::MAX;
        for i in 0..200u64 {
            let now = Duration::from_secs(i);
            if let Admit::Send { arrives, .. } = idle.admit(now, 1) {
                shortest = shortest.min(arrives - now);
            }
        }
        assert!(shortest < ms(120), "{shortest:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let c = config(|c| {
            c.latency = ms(50);
            c.jitter = ms(40);
            c.rate = Some(50_000);
            c.ber = 1e-3;
        });
        let run = |seed| {
            let mut m = LinkModel::new(&c, seed);
            let mut bytes = vec![0u8; 10_000];
            m.corrupt(&mut bytes);
            (drain(&mut m, 20_000), bytes)
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        assert_ne!(stream_seed(1, 0, 0), stream_seed(1, 0, 1));
        assert_ne!(stream_seed(1, 0, 0), stream_seed(1, 1, 0));
    }

    #[test]
    fn cuts_follow_the_schedule() {
        let cuts = Cuts {
            every: Duration::from_secs(10),
            duration: Duration::from_secs(3),
            mode: CutMode::Drop,
        };
        let s = Duration::from_secs;
        assert_eq!(
            cuts.state(s(0)),
            LinkState::Up {
                next_cut: Some(s(10))
            }
        );
        assert_eq!(
            cuts.state(s(9)),
            LinkState::Up {
                next_cut: Some(s(10))
            }
        );
        assert_eq!(
            cuts.state(s(10)),
            LinkState::Cut {
                until: s(13),
                mode: CutMode::Drop
            }
        );
        assert!(matches!(cuts.state(ms(12_999)), LinkState::Cut { .. }));
        assert_eq!(
            cuts.state(s(13)),
            LinkState::Up {
                next_cut: Some(s(20))
            }
        );
        let mut m = LinkModel::new(&config(|c| c.cuts = Some(cuts)), 1);
        assert_eq!(m.admit(s(11), 5), Admit::Down { until: s(13) });
        assert!(matches!(m.admit(s(13), 5), Admit::Send { len: 5, .. }));
    }

    #[test]
    fn a_stall_holds_bytes_until_it_ends() {
        let c = config(|c| {
            c.latency = ms(100);
            c.cuts = Some(Cuts {
                every: Duration::from_secs(1),
                duration: ms(400),
                mode: CutMode::Stall,
            });
        });
        let mut m = LinkModel::new(&c, 1);
        // Sent just before the stall, would arrive inside it: arrives as it ends.
        assert_eq!(
            m.admit(ms(950), 10),
            Admit::Send {
                len: 10,
                arrives: ms(1400)
            }
        );
        // Offered during the stall: wait for its end.
        assert_eq!(m.admit(ms(1100), 10), Admit::Wait { until: ms(1400) });
        assert_eq!(
            m.admit(ms(1400), 10),
            Admit::Send {
                len: 10,
                arrives: ms(1500)
            }
        );
    }

    #[test]
    fn bit_errors_match_the_rate_and_ignore_chunking() {
        let c = config(|c| c.ber = 1e-4);
        let mut whole = LinkModel::new(&c, 9);
        let mut a = vec![0u8; 1_000_000];
        let flipped = whole.corrupt(&mut a);
        // 8e6 bits at 1e-4: 800 expected, standard deviation about 28.
        assert!((650..=950).contains(&flipped), "{flipped}");
        assert_eq!(
            a.iter().map(|b| u64::from(b.count_ones())).sum::<u64>(),
            flipped
        );
        let mut pieces = LinkModel::new(&c, 9);
        let mut b = vec![0u8; 1_000_000];
        let mut at = 0;
        for size in [1, 7, 300, 4096, 13].iter().cycle() {
            if at >= b.len() {
                break;
            }
            let end = (at + size).min(b.len());
            pieces.corrupt(&mut b[at..end]);
            at = end;
        }
        assert_eq!(a, b);
        let mut clean = LinkModel::new(&LinkConfig::default(), 9);
        let mut c0 = vec![0u8; 100_000];
        assert_eq!(clean.corrupt(&mut c0), 0);
    }
}
