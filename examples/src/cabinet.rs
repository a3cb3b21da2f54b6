//! A simulated charging cabinet, shared by the `charger` and `fleet-demo`
//! examples: it reports its status, and serves the `Charger` service the
//! fleet server calls (start, stop, a watch stream of readings, reboot).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, Sink, Status};
use isml_runtime::session::Session;

use crate::charging::v1::channels::{Telemetry, Variables};
use crate::charging::v1::{
    ChargeStarted, ChargeStopped, Charger, ChargerServer, Command, FirmwareReport, GetFirmware,
    Reboot, RefusalReason, Slot, SlotReading, SlotState, StartCharging, StatusReport, StopCharging,
    Variable, VariableValue, WatchSlot,
};
use crate::common::{FirmwareInfo, Timestamp, Version};

/// Number of slots of a simulated cabinet.
pub const SLOTS: u8 = 8;

/// The mutable state of one simulated cabinet.
#[derive(Debug, Default)]
pub struct Cabinet {
    /// The station id reported in telemetry.
    pub station_id: String,
    /// Bit `i` set: slot `i` is charging.
    charging: AtomicU8,
    /// Commands handled.
    pub commands: AtomicU64,
}

impl Cabinet {
    /// A cabinet with every slot idle.
    pub fn new(station_id: impl Into<String>) -> Arc<Cabinet> {
        Arc::new(Cabinet {
            station_id: station_id.into(),
            ..Default::default()
        })
    }

    /// The periodic status report at `uptime`.
    pub fn status(&self, uptime: Duration) -> StatusReport {
        let charging = self.charging.load(Ordering::Relaxed);
        StatusReport {
            station_id: self.station_id.clone(),
            slots: (0..SLOTS)
                .map(|i| Slot {
                    index: i,
                    state: if charging & (1 << i) != 0 {
                        SlotState::Charging
                    } else {
                        SlotState::Full
                    },
                    battery: None,
                    current_limit_ma: if charging & (1 << i) != 0 { 16_000 } else { 0 },
                })
                .collect(),
            temperature_c: 23.5,
            uptime_s: uptime.as_secs(),
            ..Default::default()
        }
    }

    /// Serves the `Charger` service to the server.
    pub fn dispatcher(self: &Arc<Self>) -> Dispatcher {
        Dispatcher::new().service(ChargerServer::from_arc(self.clone()))
    }

    fn start(&self, m: &StartCharging) -> Result<ChargeStarted, Status> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        if m.slot >= SLOTS {
            return Err(Status::not_found(format!("no slot {}", m.slot)));
        }
        let before = self.charging.fetch_or(1 << m.slot, Ordering::Relaxed);
        Ok(ChargeStarted {
            slot: m.slot,
            eta_s: Some(u32::from(100 - m.target_soc_percent.min(100)) * 36),
            refused: (before & (1 << m.slot) != 0).then_some(RefusalReason::Busy),
        })
    }

    fn stop(&self, m: &StopCharging) -> ChargeStopped {
        self.commands.fetch_add(1, Ordering::Relaxed);
        self.charging
            .fetch_and(!(1 << (m.slot % SLOTS)), Ordering::Relaxed);
        ChargeStopped {
            slot: m.slot,
            delivered_wh: 1_250,
            refused: None,
        }
    }

    /// Sends a status report every `period` until the session ends.
    pub async fn report(self: Arc<Self>, session: Session, period: Duration) {
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = session.closed() => return,
                _ = tick.tick() => {
                    if session.send(&self.status(started.elapsed())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

impl Cabinet {
    /// The slots charging now, as text (`"0,3"`, or `"none"`).
    pub fn charging_slots(&self) -> String {
        let bits = self.charging.load(Ordering::Relaxed);
        let slots: Vec<String> = (0..SLOTS)
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| i.to_string())
            .collect();
        if slots.is_empty() {
            "none".to_owned()
        } else {
            slots.join(",")
        }
    }

    /// Publishes on the server's broker every `period` until the session
    /// ends: the status on `charging.v1.telemetry`, and the slots charging
    /// on `charging.v1.variables` under the key `<device id>/charging` (for
    /// servers that broker those channels, such as `isml serve`).
    pub async fn publish(self: Arc<Self>, session: Session, period: Duration) {
        let started = tokio::time::Instant::now();
        let key = format!("{}/charging", session.device_id());
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = session.closed() => return,
                _ = tick.tick() => {
                    let status = self.status(started.elapsed());
                    let slots = Variable {
                        value: VariableValue::Text(self.charging_slots()),
                        unit: None,
                    };
                    let sent = session.publish::<Telemetry>(&status).await.is_ok()
                        && session.publish_keyed::<Variables>(&key, &slots).await.is_ok();
                    if !sent && session.is_closed() {
                        return;
                    }
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The cabinet's side of the `Charger` service.
impl Charger for Cabinet {
    async fn start_charging(
        &self,
        _call: Call,
        req: StartCharging,
    ) -> Result<ChargeStarted, Status> {
        self.start(&req)
    }

    async fn stop_charging(&self, _call: Call, req: StopCharging) -> Result<ChargeStopped, Status> {
        Ok(self.stop(&req))
    }

    /// Readings every `interval_ms` until the server cancels the stream.
    async fn watch_slot(
        &self,
        _call: Call,
        req: WatchSlot,
        out: Sink<SlotReading>,
    ) -> Result<(), Status> {
        if req.slot >= SLOTS {
            return Err(Status::not_found(format!("no slot {}", req.slot)));
        }
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(req.interval_ms)));
        loop {
            tick.tick().await;
            let charging = self.charging.load(Ordering::Relaxed) & (1 << req.slot) != 0;
            let reading = SlotReading {
                at: Timestamp { millis: now_ms() },
                slot: Slot {
                    index: req.slot,
                    state: if charging {
                        SlotState::Charging
                    } else {
                        SlotState::Full
                    },
                    battery: None,
                    current_limit_ma: if charging { 16_000 } else { 0 },
                },
                power_w: if charging { 3_680.0 } else { 0.0 },
            };
            if out.send(reading).await.is_err() {
                // The server cancelled the watch.
                return Ok(());
            }
        }
    }

    async fn reboot(&self, _call: Call, _req: Reboot) {
        self.charging.store(0, Ordering::Relaxed);
    }

    async fn execute(&self, call: Call, req: Command) -> Result<StatusReport, Status> {
        match req {
            Command::Start(m) => {
                self.start(&m)?;
            }
            Command::Stop(m) => {
                self.stop(&m);
            }
            Command::Reboot(r) => self.reboot(call, r).await,
            Command::Door(_) => {}
            other => {
                return Err(Status::invalid_argument(format!(
                    "unsupported command {other:?}"
                )));
            }
        }
        Ok(self.status(Duration::ZERO))
    }

    async fn firmware(&self, _call: Call, _req: GetFirmware) -> Result<FirmwareReport, Status> {
        Ok(FirmwareReport {
            main: FirmwareInfo {
                image: "cabinet-main".into(),
                version: Version {
                    major: 1,
                    minor: 4,
                    patch: 2,
                },
                ..Default::default()
            },
            ..Default::default()
        })
    }
}
