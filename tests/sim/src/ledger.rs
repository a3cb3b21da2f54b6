//! The ledger: what every host did, as the simulation saw it, and the
//! checks made on it at the end of a run.
//!
//! It lives outside the simulated hosts, so it survives their restarts.
//! Every entry carries the simulated time, and the log of entries is what
//! two runs of one seed are compared by.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The four kinds of traffic, each numbered per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// One-way, device to server, at least once.
    Reading,
    /// Request, device to server, at least once.
    Call,
    /// One-way, server to device, at least once.
    Command,
    /// Request, server to device, at least once.
    Query,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Reading => "reading",
            Kind::Call => "call",
            Kind::Command => "command",
            Kind::Query => "query",
        }
    }
}

/// One kind of traffic of one device.
#[derive(Debug, Default)]
struct Flow {
    /// The next number to send.
    next: u64,
    /// Numbers whose send (or request) was accepted.
    sent: BTreeSet<u64>,
    /// Of them, those a durable outbox had stored when the send returned.
    durable: BTreeSet<u64>,
    /// The handle resolved `Ok` (one-way), or the reply came (request).
    acked: BTreeSet<u64>,
    /// The handle or request failed: why.
    failed: BTreeMap<u64, String>,
    /// When a handler started, in order of starting (first starts only).
    first_starts: Vec<u64>,
    /// When each handler run finished.
    runs: BTreeMap<u64, Vec<Duration>>,
}

/// What the ledger knows about one device.
#[derive(Debug, Default)]
struct Device {
    flows: BTreeMap<Kind, Flow>,
    /// When the device's reliable state was lost: a connection that did not
    /// resume its session, or a restart of the device's process.
    losses: Vec<Duration>,
    /// The device process's current incarnation (0 until it first starts).
    incarnation: u32,
    /// The incarnation that finished its work, if the current one has.
    done: Option<u32>,
    /// The highest status version the device's subscription delivered.
    status: u64,
    connects: u64,
    resumed: u64,
    /// The client's reliable state, as last seen.
    link: String,
}

#[derive(Debug, Default)]
struct Book {
    /// The simulated time as the driver last saw it (for entries made
    /// outside the hosts).
    clock: Duration,
    devices: Vec<Device>,
    server_incarnation: u32,
    server_done: Option<u32>,
    /// The last status version published.
    status: u64,
    /// Set by the driver when the traffic is done: the version every
    /// device must see.
    final_status: Option<u64>,
    /// Unexpected outcomes seen while running (checked again at the end).
    errors: Vec<String>,
    log: Vec<String>,
}

/// The shared ledger; clone it freely.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Book>>);

/// The current simulated time: the host's, or the driver's.
fn now(book: &Book) -> Duration {
    turmoil::sim_elapsed().unwrap_or(book.clock)
}

impl Ledger {
    /// A ledger for `devices` devices.
    pub fn new(devices: u32) -> Ledger {
        let book = Book {
            devices: (0..devices).map(|_| Device::default()).collect(),
            ..Book::default()
        };
        Ledger(Arc::new(Mutex::new(book)))
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding it is itself a failure of the run.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver's clock moved on.
    pub fn tick(&self, now: Duration) {
        self.book().clock = now;
    }

    fn log(book: &mut Book, line: String) {
        let line = format!("{:>7} ms  {line}", now(book).as_millis());
        book.log.push(line);
    }

    /// Logs a line.
    pub fn note(&self, line: impl Into<String>) {
        Self::log(&mut self.book(), line.into());
    }

    /// Records an outcome that the runtime's guarantees exclude.
    pub fn error(&self, what: impl Into<String>) {
        let mut b = self.book();
        let what = what.into();
        Self::log(&mut b, format!("ERROR {what}"));
        let t = now(&b);
        b.errors.push(format!("at {} ms: {what}", t.as_millis()));
    }

    /// The next number of `kind` for `device`, below `total`; `None` when
    /// all are taken.
    pub fn take(&self, device: u32, kind: Kind, total: u64) -> Option<u64> {
        let mut b = self.book();
        let flow = b.devices[device as usize].flows.entry(kind).or_default();
        (flow.next < total).then(|| {
            flow.next += 1;
            flow.next - 1
        })
    }

    /// The send (or request) was accepted; `durable`: stored on disk.
    pub fn sent(&self, device: u32, kind: Kind, n: u64, durable: bool) {
        let mut b = self.book();
        let flow = b.devices[device as usize].flows.entry(kind).or_default();
        flow.sent.insert(n);
        if durable {
            flow.durable.insert(n);
        }
        Self::log(&mut b, format!("d{device} {} {n} sent", kind.name()));
    }

    /// The handle resolved `Ok`, or the reply came.
    pub fn acked(&self, device: u32, kind: Kind, n: u64) {
        let mut b = self.book();
        b.devices[device as usize]
            .flows
            .entry(kind)
            .or_default()
            .acked
            .insert(n);
        Self::log(&mut b, format!("d{device} {} {n} acked", kind.name()));
    }

    /// The handle or the request failed.
    pub fn failed(&self, device: u32, kind: Kind, n: u64, why: String) {
        let mut b = self.book();
        Self::log(
            &mut b,
            format!("d{device} {} {n} failed: {why}", kind.name()),
        );
        b.devices[device as usize]
            .flows
            .entry(kind)
            .or_default()
            .failed
            .insert(n, why);
    }

    /// A handler for message `n` started.
    pub fn started(&self, device: u32, kind: Kind, n: u64) {
        let mut b = self.book();
        let flow = b.devices[device as usize].flows.entry(kind).or_default();
        if !flow.runs.contains_key(&n) && !flow.first_starts.contains(&n) {
            flow.first_starts.push(n);
        }
    }

    /// A handler for message `n` finished.
    pub fn handled(&self, device: u32, kind: Kind, n: u64) {
        let mut b = self.book();
        let t = now(&b);
        let runs = b.devices[device as usize]
            .flows
            .entry(kind)
            .or_default()
            .runs
            .entry(n)
            .or_default();
        runs.push(t);
        let times = runs.len();
        Self::log(
            &mut b,
            format!("d{device} {} {n} handled (run {times})", kind.name()),
        );
    }

    /// A device's session came up.
    pub fn connected(&self, device: u32, resumed: bool) {
        let mut b = self.book();
        let t = now(&b);
        let d = &mut b.devices[device as usize];
        d.connects += 1;
        if resumed {
            d.resumed += 1;
        } else {
            d.losses.push(t);
        }
        Self::log(&mut b, format!("d{device} connected, resumed: {resumed}"));
    }

    /// The device's client reports its reliable state (shown in the report
    /// of a run that does not finish; not logged).
    pub fn link_stats(&self, device: u32, stats: String) {
        self.book().devices[device as usize].link = stats;
    }

    /// A device process starts: returns its incarnation number.
    pub fn device_starts(&self, device: u32) -> u32 {
        let mut b = self.book();
        let t = now(&b);
        let d = &mut b.devices[device as usize];
        d.incarnation += 1;
        d.done = None;
        let i = d.incarnation;
        if i > 1 {
            d.losses.push(t);
        }
        Self::log(
            &mut b,
            format!("d{device} process starts (incarnation {i})"),
        );
        i
    }

    /// A device incarnation has sent everything and had it acknowledged.
    pub fn device_done(&self, device: u32, incarnation: u32) {
        let mut b = self.book();
        if b.devices[device as usize].incarnation == incarnation {
            b.devices[device as usize].done = Some(incarnation);
            Self::log(&mut b, format!("d{device} done"));
        }
    }

    /// The server process starts: returns its incarnation number.
    pub fn server_starts(&self) -> u32 {
        let mut b = self.book();
        b.server_incarnation += 1;
        b.server_done = None;
        let i = b.server_incarnation;
        Self::log(&mut b, format!("server process starts (incarnation {i})"));
        i
    }

    /// A server incarnation has sent everything and had it acknowledged.
    pub fn server_done(&self, incarnation: u32) {
        let mut b = self.book();
        if b.server_incarnation == incarnation {
            b.server_done = Some(incarnation);
            Self::log(&mut b, "server done".into());
        }
    }

    /// The next status version to publish (and, once the driver asked for
    /// it, whether it is the final one).
    pub fn next_status(&self) -> u64 {
        let mut b = self.book();
        b.status += 1;
        b.status
    }

    /// The final version the driver asked for, if it has.
    pub fn final_status(&self) -> Option<u64> {
        self.book().final_status
    }

    /// A device's subscription delivered `version`.
    pub fn status_seen(&self, device: u32, version: u64) {
        let mut b = self.book();
        let d = &mut b.devices[device as usize];
        d.status = d.status.max(version);
    }

    /// Whether every device's current incarnation and the server's are done.
    pub fn traffic_done(&self) -> bool {
        let b = self.book();
        b.server_done == Some(b.server_incarnation).filter(|&i| i > 0)
            && b.devices
                .iter()
                .all(|d| d.done == Some(d.incarnation).filter(|&i| i > 0))
    }

    /// Asks for a final status publication; returns its version.
    pub fn ask_final_status(&self) -> u64 {
        let mut b = self.book();
        if let Some(v) = b.final_status {
            return v;
        }
        let v = b.status + 1;
        b.final_status = Some(v);
        Self::log(&mut b, format!("final status {v} asked for"));
        v
    }

    /// Whether every device has seen the final status.
    pub fn final_status_seen(&self) -> bool {
        let b = self.book();
        b.final_status
            .is_some_and(|v| b.devices.iter().all(|d| d.status >= v))
    }

    /// What is still open, for a report of a run that did not finish.
    pub fn pending(&self) -> String {
        let b = self.book();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "server incarnation {} done: {:?}; final status {:?}",
            b.server_incarnation, b.server_done, b.final_status
        );
        for (k, d) in b.devices.iter().enumerate() {
            let _ = write!(
                out,
                "device {k}: incarnation {} done {:?}, status seen {}, connects {} (resumed {});",
                d.incarnation, d.done, d.status, d.connects, d.resumed
            );
            let _ = write!(out, " link: {};", d.link);
            for (kind, f) in &d.flows {
                let open: Vec<_> = f
                    .sent
                    .iter()
                    .filter(|n| !f.acked.contains(n) && !f.failed.contains_key(n))
                    .collect();
                let _ = write!(
                    out,
                    " {}: next {}, sent {}, acked {}, open {:?};",
                    kind.name(),
                    f.next,
                    f.sent.len(),
                    f.acked.len(),
                    open
                );
            }
            out.push('\n');
        }
        out
    }

    /// The log's last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        let b = self.book();
        let from = b.log.len().saturating_sub(n);
        b.log[from..].join("\n")
    }

    /// A digest of the whole log: equal for two runs of one seed.
    pub fn digest(&self) -> u64 {
        let b = self.book();
        // FNV-1a: stable across processes and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for line in &b.log {
            for byte in line.bytes().chain(std::iter::once(b'\n')) {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// Lines in the log.
    pub fn entries(&self) -> usize {
        self.book().log.len()
    }

    /// Totals over the run: (handled, duplicates allowed by a loss, losses).
    pub fn totals(&self) -> Totals {
        let b = self.book();
        let mut t = Totals::default();
        for d in &b.devices {
            t.losses += d.losses.len() as u64;
            t.resumes += d.resumed;
            for f in d.flows.values() {
                t.acked += f.acked.len() as u64;
                t.handled += f.runs.len() as u64;
                t.duplicates += f.runs.values().map(|r| r.len() as u64 - 1).sum::<u64>();
            }
        }
        t
    }

    /// Checks the run's guarantees (see `docs/reliability.md`, Simulation);
    /// returns what does not hold.
    pub fn check(&self, durable: bool) -> Vec<String> {
        let b = self.book();
        let mut v = b.errors.clone();
        for (k, d) in b.devices.iter().enumerate() {
            for (&kind, f) in &d.flows {
                // The server's sends fail only when it expired the device's
                // state (a restart drops them with the process instead).
                if matches!(kind, Kind::Command | Kind::Query) {
                    for (n, why) in &f.failed {
                        if !why.contains("expired") {
                            v.push(format!("device {k}: {} {n} failed: {why}", kind.name()));
                        }
                    }
                }
                let kind = kind.name();
                // Acknowledged (or answered) means handled.
                for n in &f.acked {
                    if !f.runs.contains_key(n) {
                        v.push(format!(
                            "device {k}: {kind} {n} was acknowledged but never handled"
                        ));
                    }
                }
                // A handler sees a message twice only when the reliable
                // state was lost in between (the server restarted or
                // expired the session, or the device restarted).
                for (n, runs) in &f.runs {
                    for pair in runs.windows(2) {
                        let allowed = d.losses.iter().any(|l| pair[0] <= *l && *l <= pair[1]);
                        if !allowed {
                            v.push(format!(
                                "device {k}: {kind} {n} handled again at {} ms (first at {} ms) without a loss of the session state in between",
                                pair[1].as_millis(),
                                pair[0].as_millis()
                            ));
                        }
                    }
                }
                // In the order sent.
                if let Some(w) = f.first_starts.windows(2).find(|w| w[0] >= w[1]) {
                    v.push(format!(
                        "device {k}: {kind} {} handled before {}",
                        w[1], w[0]
                    ));
                }
                // What a durable outbox stored is delivered, restarts or not.
                if durable {
                    for n in &f.durable {
                        if !f.runs.contains_key(n) {
                            v.push(format!(
                                "device {k}: {kind} {n} was stored in the durable outbox but never handled"
                            ));
                        }
                    }
                }
            }
        }
        v
    }
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Messages and requests acknowledged or answered.
    pub acked: u64,
    /// Distinct messages and requests handled.
    pub handled: u64,
    /// Handler runs beyond the first (each after a loss of state).
    pub duplicates: u64,
    /// Losses of a device's reliable state.
    pub losses: u64,
    /// Reconnections that resumed the session.
    pub resumes: u64,
}
