//! The serial link's figures: utilisation, bytes per 16-byte message and,
//! with bit errors, corrupt frames dropped and delivered, over a real
//! pseudo-terminal pair shaped to 115,200 baud by `impair+serial://`.
//!
//! `cargo run --release -p isml-benches --bin serial-link -- [seconds] [ber]`
//! (defaults: 20 s, and two runs: no errors, then a bit-error rate of 1e-4).
use isml_benches::serial_link::{Options, run};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().map_or(20.0, |s| s.parse().expect("seconds"));
    let bers: Vec<f64> = match args.get(1) {
        Some(b) => vec![b.parse().expect("a bit-error rate")],
        None => vec![0.0, 1e-4],
    };
    let mut failed = false;
    for ber in bers {
        let report = run(&Options::for_seconds(115_200, seconds, ber))
            .await
            .unwrap_or_else(|e| panic!("serial link at ber {ber}: {e}"));
        println!("== 115200 baud, ber {ber:e}, seed {}", report.options.seed);
        println!("{report}");
        println!();
        failed |= report.wrong > 0 || (ber == 0.0 && report.utilisation() < 0.95);
    }
    if failed {
        std::process::exit(1);
    }
}
