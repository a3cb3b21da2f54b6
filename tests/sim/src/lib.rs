//! Deterministic simulation of isml's reliable sessions.
//!
//! A run takes a seed and plays, in simulated time under
//! [turmoil](https://docs.rs/turmoil), one server and one to three devices
//! speaking isml over simulated TCP, while the network partitions, holds
//! and delays their segments and their processes restart. Everything that
//! varies comes from the seed: the plan (devices, settings, traffic,
//! faults: [`Plan::from_seed`]), turmoil's network, and the runtime's own
//! randomness (fastrand's generator on the simulation thread), so that a
//! failing seed fails again when run alone. `docs/reliability.md`
//! (Simulation) lists the checks; [`Ledger::check`] makes them.
//!
//! - [`plan`]: what a seed means.
//! - [`net`]: the isml transport over turmoil's TCP.
//! - `server`, `device`: the hosts' software.
//! - [`ledger`]: what happened, and the checks.
//! - [`run`]: one seed, start to end; [`run_many`]: many, on all cores.
//!
//! ```no_run
//! let report = isml_sim::run(42).unwrap_or_else(|failure| panic!("{failure}"));
//! println!("{} messages acknowledged", report.totals.acked);
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

mod device;
pub mod ledger;
pub mod messages;
pub mod net;
pub mod plan;
mod server;

pub use ledger::{Ledger, Totals};
pub use plan::{Fault, FaultKind, Plan};

/// Simulated time per step of the simulation.
pub const TICK: Duration = Duration::from_millis(5);

/// How long a run may take, in simulated time, after the faults end: the
/// network is healthy then, so everything sent must be acknowledged and
/// answered well within it. Beyond it the run has hung.
pub const DRAIN: Duration = Duration::from_secs(120);

/// How long a finished run goes on, quietly, before it is checked: late
/// duplicates would show up in it.
const QUIET: Duration = Duration::from_secs(2);

/// The command that runs one seed alone.
pub fn reproduce(seed: u64) -> String {
    format!("ISML_SIM_SEED={seed} cargo test -p isml-sim --test seeds -- --exact seeds --nocapture")
}

/// A run that held every check.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// What it meant.
    pub plan: Plan,
    /// What happened, in totals.
    pub totals: Totals,
    /// The digest of the run's log: two runs of one seed have the same.
    pub digest: u64,
    /// Entries in the log.
    pub entries: usize,
    /// Simulated time the run took.
    pub simulated: Duration,
}

/// A run that broke a check, hung or panicked.
#[derive(Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What it meant.
    pub plan: Plan,
    /// What went wrong.
    pub problems: Vec<String>,
    /// What was still open when the run ended.
    pub pending: String,
    /// The end of the run's log.
    pub tail: String,
    /// The whole log.
    pub log: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} failed:", self.seed)?;
        for p in self.problems.iter().take(20) {
            writeln!(f, "  - {p}")?;
        }
        if self.problems.len() > 20 {
            writeln!(f, "  ... and {} more", self.problems.len() - 20)?;
        }
        write!(f, "{:?}", self.plan)?;
        writeln!(f, "still open:\n{}", self.pending)?;
        writeln!(f, "end of the log:\n{}", self.tail)?;
        writeln!(f, "reproduce with: {}", reproduce(self.seed))
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Panics anywhere on the simulation's thread (the runtime's tasks catch
/// their own panics, so a hook is the only place to see them).
mod panics {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn install() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = SEEN.try_with(|s| s.borrow_mut().push(info.to_string()));
                previous(info);
            }));
        });
    }

    pub(crate) fn take() -> Vec<String> {
        SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}

/// Runs seed `seed` from start to end, on this thread.
pub fn run(seed: u64) -> Result<Report, Box<Failure>> {
    panics::install();
    let _ = panics::take();
    // The runtime's draws (reconnection jitter, resume tokens) come from
    // this thread's generator: every host runs on this thread.
    fastrand::seed(seed);
    let plan = Plan::from_seed(seed);
    let ledger = Ledger::new(plan.devices);
    let fail = |problems: Vec<String>| {
        Box::new(Failure {
            seed,
            plan: plan.clone(),
            problems,
            pending: ledger.pending(),
            tail: ledger.tail(80),
            log: ledger.tail(usize::MAX),
        })
    };
    let dir = match plan.durable.then(tempfile::tempdir).transpose() {
        Ok(d) => d,
        Err(e) => return Err(fail(vec![format!("no directory for the outboxes: {e}")])),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        simulate(&plan, &ledger, dir.as_ref().map(|d| d.path()))
    }));
    let mut problems = panics::take()
        .into_iter()
        .map(|p| format!("panic: {p}"))
        .collect::<Vec<_>>();
    let simulated = match outcome {
        Ok(Ok(t)) => t,
        Ok(Err(mut p)) => {
            problems.append(&mut p);
            Duration::ZERO
        }
        Err(_) => {
            problems.push("the simulation panicked".into());
            Duration::ZERO
        }
    };
    problems.extend(ledger.check(plan.durable));
    if std::env::var_os("ISML_SIM_LOG").is_some() {
        println!("log of seed {seed}:\n{}", ledger.tail(usize::MAX));
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(Report {
        seed,
        totals: ledger.totals(),
        digest: ledger.digest(),
        entries: ledger.entries(),
        simulated,
        plan,
    })
}

fn start(sim: &mut turmoil::Sim<'_>, f: &plan::Fault) {
    let host = net::device_host(f.device);
    match f.kind {
        FaultKind::Partition => sim.partition(net::SERVER, host),
        FaultKind::Hold => sim.hold(net::SERVER, host),
        FaultKind::Latency { ms } => {
            sim.set_link_max_message_latency(net::SERVER, host, Duration::from_millis(ms))
        }
        FaultKind::RestartDevice => sim.crash(host),
        FaultKind::RestartServer => sim.crash(net::SERVER),
    }
}

fn end(sim: &mut turmoil::Sim<'_>, plan: &Plan, f: &plan::Fault) {
    let host = net::device_host(f.device);
    match f.kind {
        FaultKind::Partition => sim.repair(net::SERVER, host),
        FaultKind::Hold => sim.release(net::SERVER, host),
        FaultKind::Latency { .. } => {
            sim.set_link_max_message_latency(net::SERVER, host, plan.latency.1)
        }
        FaultKind::RestartDevice => sim.bounce(host),
        FaultKind::RestartServer => sim.bounce(net::SERVER),
    }
}

/// Where a run is.
enum Phase {
    /// Traffic flows; faults until `plan.chaos`.
    Traffic,
    /// The traffic is done; the final status is on its way to every device.
    Final,
    /// Everything is done; running on quietly until then.
    Quiet(Duration),
}

/// Steps the simulation through the plan; the simulated time it took, or
/// why it did not finish.
fn simulate(plan: &Plan, ledger: &Ledger, dir: Option<&Path>) -> Result<Duration, Vec<String>> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(plan.seed)
        .tick_duration(TICK)
        .simulation_duration(plan.chaos + DRAIN + QUIET + Duration::from_secs(10))
        .min_message_latency(plan.latency.0)
        .max_message_latency(plan.latency.1)
        // Connection attempts held by a fault arrive together when it ends.
        .tcp_capacity(4096)
        .build();
    {
        let (plan, ledger) = (plan.clone(), ledger.clone());
        sim.host(net::SERVER, move || {
            server::run(plan.clone(), ledger.clone())
        });
    }
    for k in 0..plan.devices {
        let (plan, ledger) = (plan.clone(), ledger.clone());
        let outbox = dir
            .map(|d| d.join(format!("device-{k}.redb")))
            .unwrap_or_default();
        sim.host(net::device_host(k), move || {
            device::run(plan.clone(), ledger.clone(), k, outbox.clone())
        });
    }
    let mut due: VecDeque<plan::Fault> = plan.faults.iter().copied().collect();
    let mut active: Vec<plan::Fault> = Vec::new();
    let mut phase = Phase::Traffic;
    loop {
        let now = sim.elapsed();
        ledger.tick(now);
        // Faults end on time, and all of them when the chaos is over.
        let mut i = 0;
        while i < active.len() {
            if now >= active[i].at + active[i].lasts || now >= plan.chaos {
                let f = active.swap_remove(i);
                ledger.note(format!("fault ends: {:?} (device {})", f.kind, f.device));
                end(&mut sim, plan, &f);
            } else {
                i += 1;
            }
        }
        while due.front().is_some_and(|f| f.at <= now) {
            let Some(f) = due.pop_front() else { break };
            if now < plan.chaos {
                ledger.note(format!("fault starts: {:?} (device {})", f.kind, f.device));
                start(&mut sim, &f);
                active.push(f);
            }
        }
        if let Err(e) = sim.step() {
            return Err(vec![format!("a host's software failed: {e}")]);
        }
        match phase {
            Phase::Traffic if now >= plan.chaos && ledger.traffic_done() => {
                ledger.ask_final_status();
                phase = Phase::Final;
            }
            Phase::Final if ledger.final_status_seen() => phase = Phase::Quiet(now + QUIET),
            Phase::Quiet(until) if now >= until => return Ok(now),
            _ => {}
        }
        if now > plan.chaos + DRAIN {
            return Err(vec![format!(
                "not finished {:?} of simulated time after the faults ended",
                DRAIN
            )]);
        }
    }
}

/// How long one seed may take in wall-clock time before the run is taken
/// for hung (a task that spins without letting simulated time move): the
/// process then prints the seed and stops.
pub const WALL_LIMIT: Duration = Duration::from_secs(120);

/// Runs seeds `seeds` on `threads` threads (each seed on one thread, from
/// start to end); the reports, and the failures, by seed. A seed that runs
/// longer than [`WALL_LIMIT`] stops the process, after printing how to run
/// it alone.
pub fn run_many(seeds: std::ops::Range<u64>, threads: usize) -> (Vec<Report>, Vec<Box<Failure>>) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    let threads = threads.max(1);
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new((Vec::new(), Vec::new()));
    let running: Mutex<Vec<Option<(u64, Instant)>>> = Mutex::new(vec![None; threads]);
    let finished = AtomicBool::new(false);
    let lock = |m: &Mutex<Vec<Option<(u64, Instant)>>>| {
        m.lock().unwrap_or_else(|e| e.into_inner()).clone()
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                for (seed, since) in lock(&running).into_iter().flatten() {
                    if since.elapsed() > WALL_LIMIT {
                        eprintln!(
                            "seed {seed} has run for {:?} of wall time: hung; reproduce with: {}",
                            since.elapsed(),
                            reproduce(seed)
                        );
                        std::process::abort();
                    }
                }
            }
        });
        let workers: Vec<_> = (0..threads)
            .map(|slot| {
                let (next, results, running, seeds) = (&next, &results, &running, &seeds);
                s.spawn(move || {
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= seeds.end {
                            return;
                        }
                        running.lock().unwrap_or_else(|e| e.into_inner())[slot] =
                            Some((seed, Instant::now()));
                        let r = run(seed);
                        running.lock().unwrap_or_else(|e| e.into_inner())[slot] = None;
                        let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
                        match r {
                            Ok(report) => results.0.push(report),
                            Err(failure) => results.1.push(failure),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        finished.store(true, Ordering::Relaxed);
    });
    let (mut reports, mut failures) = results.into_inner().unwrap_or_else(|e| e.into_inner());
    reports.sort_by_key(|r: &Report| r.seed);
    failures.sort_by_key(|f| f.seed);
    (reports, failures)
}
