//! Runs one isml operation on one workload in a loop, for profilers
//! (`perf record`, callgrind):
//!
//! `cargo run --release -p isml-benches --bin profile -- [encode_to_vec|encode|decode|view|lazy] [telemetry|log|station|config] [iterations]`
use isml_benches::{Kind, Workload};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let op = args.first().map_or("decode", String::as_str);
    let kind = match args.get(1).map_or("telemetry", String::as_str) {
        "telemetry" => Kind::Telemetry,
        "log" => Kind::LogRecord,
        "station" => Kind::Station,
        "config" => Kind::Config,
        other => panic!("unknown workload {other}"),
    };
    let iterations: usize = args.get(2).map_or(2_000, |n| n.parse().expect("a number"));
    let w = Workload::new(kind, 1_000);
    let mut buf = Vec::with_capacity(4096);
    let mut acc = 0u64;
    for _ in 0..iterations {
        acc = acc.wrapping_add(match op {
            "encode_to_vec" => w.isml_encode_to_vec() as u64,
            "encode" => w.isml_encode(&mut buf) as u64,
            "decode" => w.isml_decode() as u64,
            "view" => w.isml_view(),
            "lazy" => w.isml_lazy(),
            other => panic!("unknown operation {other}"),
        });
    }
    println!("{acc}");
}
