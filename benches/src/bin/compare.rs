//! Prints isml against prost side by side, measured in one run so that the
//! ratios hold on a noisy machine: encode, owned decode, zero-copy view reads and
//! encoded size, for three kinds of message.
//!
//! `cargo run --release -p isml-benches --bin compare`

use std::time::Instant;

use isml_benches::{Kind, Workload};

const MESSAGES: usize = 1_000;
const ROUNDS: usize = 31;

/// Median ns per message of `f` over `ROUNDS` rounds, each long enough to time.
fn measure(mut f: impl FnMut() -> u64, per_round: usize) -> f64 {
    // Calibrate repetitions so a round takes about 5 ms.
    let start = Instant::now();
    std::hint::black_box(f());
    let once = start.elapsed().as_nanos().max(1) as f64;
    let reps = ((5_000_000.0 / once) as usize).clamp(1, 10_000);
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(f());
            }
            t.elapsed().as_nanos() as f64 / (reps * per_round) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn main() {
    println!(
        "isml vs prost — {MESSAGES} messages per workload, median of {ROUNDS} rounds (ns per message)\n"
    );
    println!(
        "{:<27} {:>12} {:>9} {:>9} {:>9}   target",
        "workload / operation", "", "isml", "prost", "ratio"
    );
    let mut buf = Vec::with_capacity(4096);
    for kind in Kind::ALL {
        let w = Workload::new(kind, MESSAGES);
        let n = w.len();
        let (isml_size, pb_size) = w.sizes();
        // Interleave the two sides round by round: each number below is a median
        // taken while the other side ran in between.
        let isml_enc = measure(|| w.isml_encode(&mut buf) as u64, n);
        let pb_enc = measure(|| w.pb_encode(&mut buf) as u64, n);
        let isml_dec = measure(|| w.isml_decode() as u64, n);
        let pb_dec = measure(|| w.pb_decode() as u64, n);
        let isml_view = measure(|| w.isml_view(), n);
        let size_target = if kind == Kind::Telemetry { 0.8 } else { 1.0 };
        println!("{}", kind.name());
        row(
            "  encode",
            isml_enc,
            pb_enc,
            pb_enc / isml_enc,
            "x faster",
            ">= 2x",
        );
        row(
            "  decode (owned)",
            isml_dec,
            pb_dec,
            pb_dec / isml_dec,
            "x faster",
            ">= 1.5x",
        );
        row(
            "  view read vs prost decode",
            isml_view,
            pb_dec,
            pb_dec / isml_view,
            "x faster",
            ">= 5x",
        );
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

fn row(name: &str, isml: f64, pb: f64, ratio: f64, unit: &str, target: &str) {
    println!(
        "{name:<27} {:>12} {isml:>9.1} {pb:>9.1} {ratio:>8.2}{unit}   {target}",
        ""
    );
}
