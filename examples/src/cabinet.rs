//! A simulated charging cabinet, shared by the `charger` and `fleet-demo`
//! examples: it reports its status, and answers the server's commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use isml_runtime::dispatch::{Dispatcher, HandlerError};
use isml_runtime::session::Session;

use crate::charging::v1::{
    ChargeStarted, ChargeStopped, RefusalReason, Slot, SlotState, StartCharging, StatusReport,
    StopCharging,
};

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

    /// Handlers for the server's commands.
    pub fn dispatcher(self: &Arc<Self>) -> Dispatcher {
        let start = self.clone();
        let stop = self.clone();
        Dispatcher::new()
            .on_request::<StartCharging, ChargeStarted, _, _>(move |_ctx, m| {
                let cab = start.clone();
                async move {
                    cab.commands.fetch_add(1, Ordering::Relaxed);
                    if m.slot >= SLOTS {
                        return Err(HandlerError::new(1000, format!("no slot {}", m.slot)));
                    }
                    let before = cab.charging.fetch_or(1 << m.slot, Ordering::Relaxed);
                    Ok(ChargeStarted {
                        slot: m.slot,
                        eta_s: Some(u32::from(100 - m.target_soc_percent.min(100)) * 36),
                        refused: (before & (1 << m.slot) != 0).then_some(RefusalReason::Busy),
                    })
                }
            })
            .on_request::<StopCharging, ChargeStopped, _, _>(move |_ctx, m| {
                let cab = stop.clone();
                async move {
                    cab.commands.fetch_add(1, Ordering::Relaxed);
                    cab.charging
                        .fetch_and(!(1 << (m.slot % SLOTS)), Ordering::Relaxed);
                    Ok(ChargeStopped {
                        slot: m.slot,
                        delivered_wh: 1_250,
                        refused: None,
                    })
                }
            })
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
