//! Prints isml against prost side by side, measured in one run so that the
//! ratios hold on a noisy machine: encode, owned decode, zero-copy view reads and
//! encoded size, for three kinds of message.
//!
//! `cargo run --release -p isml-benches --bin compare`

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
    println!(
        "isml vs prost — {MESSAGES} messages per workload, median of {ROUNDS} alternating rounds (ns per message; ratio = median of per-round ratios)\n"
    );
    println!(
        "{:<27} {:>12} {:>9} {:>9} {:>9}   target",
        "workload / operation", "", "isml", "prost", "ratio"
    );
    let mut buf_a = Vec::with_capacity(4096);
    let mut buf_b = Vec::with_capacity(4096);
    for kind in Kind::ALL {
        let w = Workload::new(kind, MESSAGES);
        let n = w.len();
        let (isml_size, pb_size) = w.sizes();
        // The two sides alternate round by round (see `measure_pair`).
        let enc = measure_pair(
            || w.isml_encode(&mut buf_a) as u64,
            || w.pb_encode(&mut buf_b) as u64,
            n,
        );
        let dec = measure_pair(|| w.isml_decode() as u64, || w.pb_decode() as u64, n);
        let view = measure_pair(|| w.isml_view(), || w.pb_decode() as u64, n);
        let size_target = if kind == Kind::Telemetry { 0.8 } else { 1.0 };
        println!("{}", kind.name());
        row("  encode", enc, ">= 2x");
        row("  decode (owned)", dec, ">= 1.5x");
        row("  view read vs prost decode", view, ">= 5x");
        println!(
            "  {:<25} {:>12} {:>9.1} {:>9.1} {:>8.2}x   <= {size_target}x",
            "bytes per message",
            "",
            isml_size,
            pb_size,
            isml_size / pb_size
        );
    }
}

fn row(name: &str, (isml, pb, ratio): (f64, f64, f64), target: &str) {
    println!(
        "{name:<27} {:>12} {isml:>9.1} {pb:>9.1} {ratio:>8.2}x faster   {target}",
        ""
    );
}
