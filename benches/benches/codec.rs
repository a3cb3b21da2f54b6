//! Criterion benchmarks: isml and prost on the same data, in one group per
//! workload and operation so the report shows them side by side.
//!
//! `cargo bench -p isml-benches`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use isml_benches::{Kind, Workload};

fn codec(c: &mut Criterion) {
    for kind in Kind::ALL {
        let w = Workload::new(kind, 1_000);
        let mut buf = Vec::with_capacity(4096);
        let mut g = c.benchmark_group(format!("{kind:?}"));
        g.throughput(Throughput::Elements(w.len() as u64));
        g.bench_function("encode_to_vec/isml", |b| b.iter(|| w.isml_encode_to_vec()));
        g.bench_function("encode_to_vec/prost", |b| b.iter(|| w.pb_encode_to_vec()));
        g.bench_function("encode/isml", |b| b.iter(|| w.isml_encode(&mut buf)));
        g.bench_function("encode/prost", |b| b.iter(|| w.pb_encode(&mut buf)));
        g.bench_function("decode/isml", |b| b.iter(|| w.isml_decode()));
        g.bench_function("decode/prost", |b| b.iter(|| w.pb_decode()));
        g.bench_function("view/isml", |b| b.iter(|| w.isml_view()));
        g.bench_function("lazy/isml", |b| b.iter(|| w.isml_lazy()));
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
