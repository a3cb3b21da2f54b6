//! Prints isml against prost side by side, measured in one run so that the
//! ratios hold on a noisy machine: `encode_to_vec`, encode into a reused
//! buffer, owned decode (`decode_slice`), zero-copy view reads and encoded
//! size, for four kinds of message, each with the cost of its allocations
//! alone beside `encode_to_vec` and `decode_slice`. The last line sums it up:
//!
//! `codec: encode_to_vec min X.XXx, decode_slice min Y.YYx, view min Z.ZZx, size max S.SSx vs prost`
//!
//! (minimum speed-up and maximum size ratio over the workloads; the view
//! minimum is the lazy view's, read field by field, only over workloads with
//! strings, lists or maps; the validated view is printed beside it). Views
//! are compared with prost's decode, the only way prost reads a message.
//!
//! `cargo run --release -p isml-benches --bin compare [workload ...]`
//!
//! With workload names (`telemetry`, `log`, `station`, `config`) only those
//! run, and the last line sums up those; without, all four.

use std::time::Instant;

use isml_benches::{Kind, Workload};

const MESSAGES: usize = 1_000;
const ROUNDS: usize = 31;

/// Repetitions of `f` that take about 2 ms.
fn calibrate(f: &mut impl FnMut() -> u64) -> usize {
    let start = Instant::now();
    std::hint::black_box(f());
    let once = start.elapsed().as_nanos().max(1) as f64;
    ((2_000_000.0 / once) as usize).clamp(1, 10_000)
}

fn time(f: &mut impl FnMut() -> u64, reps: usize, per_round: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    t.elapsed().as_nanos() as f64 / (reps * per_round) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One row of the table: `a` (isml) against `b` (prost), timed alternately
/// round by round so that both see the same machine load.
struct Pair<'w> {
    a: Box<dyn FnMut() -> u64 + 'w>,
    b: Box<dyn FnMut() -> u64 + 'w>,
    per_round: usize,
    reps: (usize, usize),
    times: (Vec<f64>, Vec<f64>),
    ratios: Vec<f64>,
}

impl<'w> Pair<'w> {
    fn new(
        mut a: impl FnMut() -> u64 + 'w,
        mut b: impl FnMut() -> u64 + 'w,
        per_round: usize,
    ) -> Self {
        let reps = (calibrate(&mut a), calibrate(&mut b));
        Pair {
            a: Box::new(a),
            b: Box::new(b),
            per_round,
            reps,
            times: (Vec::new(), Vec::new()),
            ratios: Vec::new(),
        }
    }

    /// One round: `a`, then `b`, each after one untimed pass over the
    /// workload (the row before left the caches holding its own data).
    fn round(&mut self) {
        std::hint::black_box((self.a)());
        let x = time(&mut self.a, self.reps.0, self.per_round);
        std::hint::black_box((self.b)());
        let y = time(&mut self.b, self.reps.1, self.per_round);
        self.times.0.push(x);
        self.times.1.push(y);
        self.ratios.push(y / x);
    }

    /// The median ns per message of each side and the median of the
    /// per-round ratios b / a (how many times faster `a` is).
    fn result(&self) -> (f64, f64, f64) {
        (
            median(self.times.0.clone()),
            median(self.times.1.clone()),
            median(self.ratios.clone()),
        )
    }
}

/// Runs `ROUNDS` rounds of every pair, each round going once through all
/// of them: a row's rounds are spread over the whole run, so a burst of
/// load from elsewhere on the machine lands in a few rounds of many rows
/// (which the medians discard) rather than in every round of one row.
fn measure_all(pairs: &mut [Pair<'_>]) {
    for _ in 0..ROUNDS {
        for p in pairs.iter_mut() {
            p.round();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kinds: Vec<Kind> = if args.is_empty() {
        Kind::ALL.to_vec()
    } else {
        let mut kinds = Vec::new();
        for a in &args {
            match Kind::from_arg(a) {
                Some(k) => kinds.push(k),
                None => {
                    eprintln!("compare: unknown workload `{a}` (telemetry, log, station, config)");
                    std::process::exit(2);
                }
            }
        }
        kinds
    };
    println!(
        "isml vs prost — {MESSAGES} messages per workload, median of {ROUNDS} rounds, isml and prost alternating, each round through every row (ns per message; ratio = median of per-round ratios)\n"
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9}   target",
        "workload / operation", "", "isml", "prost", "ratio"
    );
    let workloads: Vec<Workload> = kinds
        .iter()
        .map(|&kind| Workload::new(kind, MESSAGES))
        .collect();
    // Seven rows per workload, in the order printed below.
    const ROWS: usize = 7;
    let mut pairs = Vec::new();
    for w in &workloads {
        let n = w.len();
        let (mut buf_a, mut buf_b) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
        pairs.push(Pair::new(
            || w.isml_encode_to_vec() as u64,
            || w.pb_encode_to_vec() as u64,
            n,
        ));
        pairs.push(Pair::new(
            || w.alloc_floor() as u64,
            || w.pb_encode_to_vec() as u64,
            n,
        ));
        pairs.push(Pair::new(
            move || w.isml_encode(&mut buf_a) as u64,
            move || w.pb_encode(&mut buf_b) as u64,
            n,
        ));
        pairs.push(Pair::new(
            || w.isml_decode() as u64,
            || w.pb_decode() as u64,
            n,
        ));
        pairs.push(Pair::new(
            || w.decode_floor() as u64,
            || w.pb_decode() as u64,
            n,
        ));
        pairs.push(Pair::new(|| w.isml_lazy(), || w.pb_decode() as u64, n));
        pairs.push(Pair::new(|| w.isml_view(), || w.pb_decode() as u64, n));
    }
    measure_all(&mut pairs);
    let (mut to_vec_min, mut decode_min, mut view_min, mut size_max) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY, 0f64);
    for (w, rows) in workloads.iter().zip(pairs.chunks(ROWS)) {
        let kind = w.kind;
        let (isml_size, pb_size) = w.sizes();
        let [to_vec, floor, enc, dec, dec_floor, lazy, view] =
            [0, 1, 2, 3, 4, 5, 6].map(|i| rows[i].result());
        let size_target = if kind == Kind::Telemetry { 0.8 } else { 1.0 };
        println!("{}", kind.name());
        row("  encode_to_vec", to_vec, ">= 2.5x");
        row(
            "    its allocation alone",
            floor,
            "(the most any encoder can reach)",
        );
        row("  encode (reused buffer)", enc, ">= 2x");
        row("  decode_slice (owned)", dec, ">= 1.8x");
        row(
            "    its allocations alone",
            dec_floor,
            "(a clone: the most any owned decode can reach)",
        );
        row("  lazy view, every field", lazy, ">= 5x");
        row("  validated view, every field", view, "");
        to_vec_min = to_vec_min.min(to_vec.2);
        decode_min = decode_min.min(dec.2);
        if kind != Kind::Telemetry {
            view_min = view_min.min(lazy.2);
        }
        size_max = size_max.max(isml_size / pb_size);
        println!(
            "  {:<28} {:>9} {:>9.1} {:>9.1} {:>8.2}x   <= {size_target}x",
            "bytes per message",
            "",
            isml_size,
            pb_size,
            isml_size / pb_size
        );
    }
    println!(
        "codec: encode_to_vec min {to_vec_min:.2}x, decode_slice min {decode_min:.2}x, \
         view min {view_min:.2}x, size max {size_max:.2}x vs prost"
    );
}

fn row(name: &str, (isml, pb, ratio): (f64, f64, f64), target: &str) {
    println!(
        "{name:<30} {:>9} {isml:>9.1} {pb:>9.1} {ratio:>8.2}x faster   {target}",
        ""
    );
}
