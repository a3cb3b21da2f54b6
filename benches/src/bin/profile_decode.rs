//! Decodes telemetry in a loop, for profilers (`perf record`, callgrind).
use isml_benches::{Kind, Workload};
fn main() {
    let w = Workload::new(Kind::Telemetry, 1_000);
    let mut acc = 0;
    for _ in 0..2_000 {
        acc += w.isml_decode();
    }
    println!("{acc}");
}
