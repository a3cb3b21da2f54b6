//! The simulation's seeds (see `docs/reliability.md`, Simulation).
//!
//! `seeds` runs 500 seeds on every core (`ISML_SIM_SEEDS=N` for another
//! count, `ISML_SIM_FIRST=K` to start elsewhere), or the one seed
//! `ISML_SIM_SEED=N` alone, printing its plan and log. A failing seed
//! prints the command that runs it alone.

use std::time::Instant;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a number")),
    )
}

#[test]
fn seeds() {
    if let Some(seed) = env_u64("ISML_SIM_SEED") {
        let started = Instant::now();
        match isml_sim::run(seed) {
            Ok(r) => {
                println!("{:?}", r.plan);
                println!(
                    "seed {seed}: ok in {:?} of simulated time ({:?} of wall time): {:?}, log digest {:016x} over {} entries",
                    r.simulated,
                    started.elapsed(),
                    r.totals,
                    r.digest,
                    r.entries
                );
            }
            Err(failure) => panic!("{failure}"),
        }
        return;
    }
    let first = env_u64("ISML_SIM_FIRST").unwrap_or(0);
    let count = env_u64("ISML_SIM_SEEDS").unwrap_or(500);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let (reports, failures) = isml_sim::run_many(first..first + count, threads);
    let simulated: std::time::Duration = reports.iter().map(|r| r.simulated).sum();
    let acked: u64 = reports.iter().map(|r| r.totals.acked).sum();
    println!(
        "{} seeds from {first} on {threads} threads in {:?}: {} passed, {} failed; {acked} messages and requests acknowledged over {:?} of simulated time",
        count,
        started.elapsed(),
        reports.len(),
        failures.len(),
        simulated
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        let seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
        panic!(
            "{} of {count} seeds failed: {seeds:?}; each one's report and command are above",
            failures.len()
        );
    }
}
