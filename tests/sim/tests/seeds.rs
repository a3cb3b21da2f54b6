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

/// Two runs of one seed are the same run: the log of everything the hosts
/// did, with its simulated times, is equal to the byte. Seeds with
/// restarts of the server and of devices, and with a durable outbox.
#[test]
fn a_seed_replays_exactly() {
    for seed in [1, 5, 7, 38] {
        let a = isml_sim::run(seed).unwrap_or_else(|f| panic!("{f}"));
        let b = isml_sim::run(seed).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(
            (a.digest, a.entries, a.simulated),
            (b.digest, b.entries, b.simulated),
            "seed {seed} ran differently the second time"
        );
    }
    let plans: Vec<_> = [1, 5, 7, 38]
        .map(isml_sim::Plan::from_seed)
        .into_iter()
        .collect();
    assert!(plans.iter().any(|p| p.durable) && plans.iter().any(|p| p.restarts_server()));
}

/// The seeds that found faults in the reliable sessions (see
/// `docs/reliability.md`, Simulation, and the commits that fixed them).
/// They are among the 500 as well; here they run even when fewer are
/// asked for. A change to how plans are drawn gives these numbers other
/// plans: the real-TCP regression tests in
/// `isml-runtime/tests/reliability_regressions.rs` keep the faults covered.
#[test]
fn seeds_that_found_faults() {
    // 7: numbering after a restart from a durable outbox; 29, 51, 59: a
    // keep-alive's close frame after a stall; 38: a stale reply answering
    // a new request; 176, 295, 312, 351: a handler dropped with its session,
    // or acknowledged before it ended; 424, 468: a request acknowledged and
    // never answered after the peer lost its state; 3, 352: a late hello of
    // an abandoned attempt replacing the live session; 311: subscribing
    // again cut short, then a resumed session without the subscription;
    // 381: a session of an earlier server detaching the state from the
    // current one with the same session id; 1680: a device restarted from
    // its durable outbox numbering its requests from 1 again.
    for seed in [
        3, 7, 29, 38, 51, 59, 176, 295, 311, 312, 351, 352, 381, 424, 468, 1680,
    ] {
        if let Err(f) = isml_sim::run(seed) {
            panic!("{f}");
        }
    }
}
