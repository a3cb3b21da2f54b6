//! Prints isml against prost side by side, measured in one run so that the
//! ratios hold on a noisy machine: `encode_to_vec`, encode into a reused
//! buffer, owned decode (`decode_slice`), zero-copy view reads and encoded
//! size, for three kinds of message. The last line sums it up:
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

/// Times `a` and `b` alternately, round by round, so both see the same machine
/// load: returns the median ns per message of each and the median of the
/// per-round ratios b / a (how many times faster `a` is).
fn measure_pair(
    mut a: impl FnMut() -> u64,
    mut b: impl FnMut() -> u64,
    per_round: usize,
) -> (f64, f64, f64) {
    let (ra, rb) = (calibrate(&mut a), calibrate(&mut b));
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let x = time(&mut a, ra, per_round);
        let y = time(&mut b, rb, per_round);
        ta.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    (median(ta), median(tb), median(ratios))
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
        "isml vs prost — {MESSAGES} messages per workload, median of {ROUNDS} alternating rounds (ns per message; ratio = median of per-round ratios)\n"
    );
    println!(
        "{:<27} {:>12} {:>9} {:>9} {:>9}   target",
        "workload / operation", "", "isml", "prost", "ratio"
    );
    let mut buf_a = Vec::with_capacity(4096);
    let mut buf_b = Vec::with_capacity(4096);
    let (mut to_vec_min, mut decode_min, mut view_min, mut size_max) =
        (f64::INFINITY, f64::INFINITY, f64::INFINITY, 0f64);
    for kind in kinds {
        let w = Workload::new(kind, MESSAGES);
        let n = w.len();
        let (isml_size, pb_size) = w.sizes();
        // The two sides alternate round by round (see `measure_pair`).
        let to_vec = measure_pair(
            || w.isml_encode_to_vec() as u64,
            || w.pb_encode_to_vec() as u64,
            n,
        );
        let floor = measure_pair(|| w.alloc_floor() as u64, || w.pb_encode_to_vec() as u64, n);
        let enc = measure_pair(
            || w.isml_encode(&mut buf_a) as u64,
            || w.pb_encode(&mut buf_b) as u64,
            n,
        );
        let dec = measure_pair(|| w.isml_decode() as u64, || w.pb_decode() as u64, n);
        let view = measure_pair(|| w.isml_view(), || w.pb_decode() as u64, n);
        let lazy = measure_pair(|| w.isml_lazy(), || w.pb_decode() as u64, n);
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
        row("  lazy view, every field", lazy, ">= 5x");
        row("  validated view, every field", view, "");
        to_vec_min = to_vec_min.min(to_vec.2);
        decode_min = decode_min.min(dec.2);
        if kind != Kind::Telemetry {
            view_min = view_min.min(lazy.2);
        }
        size_max = size_max.max(isml_size / pb_size);
        println!(
            "  {:<25} {:>12} {:>9.1} {:>9.1} {:>8.2}x   <= {size_target}x",
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
        "{name:<27} {:>12} {isml:>9.1} {pb:>9.1} {ratio:>8.2}x faster   {target}",
        ""
    );
}
