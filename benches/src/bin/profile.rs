//! Runs one operation on one workload in a loop, for profilers (`perf
//! record`, callgrind): isml's, or prost's with a `pb_` prefix, so that
//! instruction counts of both sides come from the same loop:
//!
//! `cargo run --release -p isml-benches --bin profile -- [encode_to_vec|encode|decode|view|lazy|pb_encode_to_vec|pb_encode|pb_decode] [telemetry|log|station|config] [iterations]`
//!
//! `benches/icount.sh` runs it under callgrind and prints instructions per
//! message.
use isml_benches::{Kind, Workload};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let op = args.first().map_or("decode", String::as_str);
    let name = args.get(1).map_or("telemetry", String::as_str);
    let kind = Kind::from_arg(name).unwrap_or_else(|| panic!("unknown workload {name}"));
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
            "pb_encode_to_vec" => w.pb_encode_to_vec() as u64,
            "pb_encode" => w.pb_encode(&mut buf) as u64,
            "pb_decode" => w.pb_decode() as u64,
            other => panic!("unknown operation {other}"),
        });
    }
    println!("{acc}");
}
