//! A run's plan, drawn from its seed: how many devices, the runtime's
//! settings, the traffic, the network's latency, and the faults with their
//! times. The same seed always gives the same plan.

use std::fmt;
use std::time::Duration;

/// Settings of the runtime under test (both sides use the same).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Keep-alive interval: a connection stalled by a partition is declared
    /// dead after 1.5 times this.
    pub keepalive: Duration,
    /// How long the server keeps a device's state after its connection broke.
    pub session_expiry: Duration,
    /// Bytes sent at least once and not acknowledged, per reliable state.
    pub unacked_bytes: usize,
    /// How long an acknowledgement may wait for company.
    pub ack_delay: Duration,
    /// Requests the server handles at once per session.
    pub max_inflight: usize,
    /// The client's reconnection backoff: first and largest delay.
    pub backoff: (Duration, Duration),
    /// The transport and isml handshakes' deadline.
    pub handshake_timeout: Duration,
}

/// What each device does over the run.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Readings sent at least once, device to server.
    pub readings: u64,
    /// Bytes of padding per reading, at most.
    pub reading_body: usize,
    /// Calls (requests at least once), device to server.
    pub calls: u64,
    /// Commands sent at least once, server to device.
    pub commands: u64,
    /// Queries (requests at least once), server to device.
    pub queries: u64,
    /// Handlers that take a while (they wait on a timer before they finish):
    /// every `slow_every`-th one, 0 for none.
    pub slow_every: u64,
}

/// One fault injected into the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Every segment between the server and the device is dropped; the
    /// TCP connection stalls (turmoil does not retransmit), and later
    /// segments stay stuck behind the lost ones.
    Partition,
    /// Segments between the server and the device are held, then delivered
    /// in order: a delay without loss.
    Hold,
    /// The link's latency rises to up to `ms` milliseconds per segment.
    Latency { ms: u64 },
    /// The device's process stops (its tasks and sockets are dropped) and
    /// starts again after the fault's duration.
    RestartDevice,
    /// The server's process stops and starts again after the fault's
    /// duration, without the state it kept in memory.
    RestartServer,
}

/// A fault, its target and its time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// When it starts, from the start of the run.
    pub at: Duration,
    /// How long it lasts.
    pub lasts: Duration,
    /// The device whose link or process it hits (unused for the server).
    pub device: u32,
    /// What it does.
    pub kind: FaultKind,
}

/// A run's plan (see the module documentation).
#[derive(Clone)]
pub struct Plan {
    /// The seed it was drawn from.
    pub seed: u64,
    /// Devices, each on a host of its own.
    pub devices: u32,
    /// Faults are injected until this time; then the network heals and the
    /// run drains.
    pub chaos: Duration,
    /// The network's latency per segment: at least, at most.
    pub latency: (Duration, Duration),
    /// The runtime's settings.
    pub tuning: Tuning,
    /// What each device does.
    pub traffic: Traffic,
    /// Devices keep their outbox on disk (redb): what they sent survives
    /// their restarts.
    pub durable: bool,
    /// The faults, by start time.
    pub faults: Vec<Fault>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, options: &[T]) -> T {
    options[rng.usize(..options.len())]
}

impl Plan {
    /// The plan of `seed`.
    pub fn from_seed(seed: u64) -> Plan {
        // A generator of the plan's own: the runtime's draws (seeded from
        // the same number) do not shift the plan, and the other way round.
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x005e_ed0f_1511);
        let devices = rng.u32(1..=3);
        let chaos = ms(rng.u64(6_000..=14_000));
        let min_latency = ms(rng.u64(0..=5));
        let latency = (min_latency, min_latency + ms(rng.u64(1..=120)));
        let keepalive = ms(pick(&mut rng, &[400, 800, 1_500]));
        let tuning = Tuning {
            keepalive,
            session_expiry: ms(pick(&mut rng, &[700, 2_500, 8_000, 60_000])),
            unacked_bytes: pick(&mut rng, &[120, 600, 4_000, 1 << 20]),
            ack_delay: ms(pick(&mut rng, &[0, 5, 20, 80])),
            max_inflight: pick(&mut rng, &[1, 2, 256]),
            backoff: (
                ms(pick(&mut rng, &[20, 100, 300])),
                ms(pick(&mut rng, &[500, 1_500])),
            ),
            handshake_timeout: ms(pick(&mut rng, &[500, 2_000])),
        };
        let traffic = Traffic {
            readings: rng.u64(10..=80),
            reading_body: pick(&mut rng, &[0, 16, 100]),
            calls: rng.u64(0..=20),
            commands: rng.u64(0..=40),
            queries: rng.u64(0..=10),
            slow_every: pick(&mut rng, &[0, 0, 3, 7]),
        };
        let durable = rng.u32(0..5) == 0;
        let restarts_devices = rng.bool();
        let restarts_server = rng.u32(0..3) == 0;
        let mut faults = Vec::new();
        // Each device's link gets a sequence of faults that do not overlap.
        for device in 0..devices {
            let mut t = ms(rng.u64(0..=1_500));
            while t < chaos {
                let kind = match rng.u32(0..100) {
                    0..40 => FaultKind::Partition,
                    40..65 => FaultKind::Hold,
                    65..85 => FaultKind::Latency {
                        ms: rng.u64(150..=1_500),
                    },
                    _ if restarts_devices => FaultKind::RestartDevice,
                    _ => FaultKind::Partition,
                };
                let lasts = match kind {
                    FaultKind::Partition => ms(rng.u64(50..=4_000)),
                    FaultKind::Hold => ms(rng.u64(20..=2_500)),
                    FaultKind::Latency { .. } => ms(rng.u64(300..=3_000)),
                    FaultKind::RestartDevice => ms(rng.u64(0..=1_500)),
                    FaultKind::RestartServer => unreachable!("drawn below"),
                };
                faults.push(Fault {
                    at: t,
                    lasts,
                    device,
                    kind,
                });
                t += lasts + ms(rng.u64(100..=2_500));
            }
        }
        if restarts_server {
            let mut t = ms(rng.u64(500..=4_000));
            while t < chaos {
                let lasts = ms(rng.u64(0..=1_500));
                faults.push(Fault {
                    at: t,
                    lasts,
                    device: 0,
                    kind: FaultKind::RestartServer,
                });
                t += lasts + ms(rng.u64(2_000..=8_000));
            }
        }
        faults.sort_by_key(|f| (f.at, f.device));
        Plan {
            seed,
            devices,
            chaos,
            latency,
            tuning,
            traffic,
            durable,
            faults,
        }
    }

    /// Whether any fault restarts the server.
    pub fn restarts_server(&self) -> bool {
        self.faults
            .iter()
            .any(|f| f.kind == FaultKind::RestartServer)
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan of seed {}:", self.seed)?;
        writeln!(
            f,
            "  {} device(s), chaos for {:?}, latency {:?}..{:?}, durable outbox: {}",
            self.devices, self.chaos, self.latency.0, self.latency.1, self.durable
        )?;
        writeln!(f, "  {:?}", self.tuning)?;
        writeln!(f, "  {:?}", self.traffic)?;
        for fault in &self.faults {
            writeln!(
                f,
                "  at {:>6} ms for {:>5} ms: {:?}{}",
                fault.at.as_millis(),
                fault.lasts.as_millis(),
                fault.kind,
                match fault.kind {
                    FaultKind::RestartServer => String::new(),
                    _ => format!(" (device {})", fault.device),
                }
            )?;
        }
        Ok(())
    }
}
