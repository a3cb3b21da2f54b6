//! Publication rates per channel: the broker's counters sampled once a
//! second, the last minute kept for the dashboard's charts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::api::State;

/// Samples kept per channel (one a second).
pub(crate) const HISTORY: usize = 60;
const PERIOD: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Channel {
    last: u64,
    /// Publications per second, oldest first.
    history: VecDeque<f64>,
}

/// Rates of every channel.
#[derive(Default)]
pub(crate) struct Rates {
    channels: Mutex<HashMap<u32, Channel>>,
}

impl Rates {
    fn sample(&self, counts: impl Iterator<Item = (u32, u64)>, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for (id, published) in counts {
            let c = map.entry(id).or_insert_with(|| Channel {
                last: published,
                history: VecDeque::new(),
            });
            let rate = published.saturating_sub(c.last) as f64 / secs;
            c.last = published;
            if c.history.len() == HISTORY {
                c.history.pop_front();
            }
            c.history.push_back((rate * 100.0).round() / 100.0);
        }
    }

    /// The last rate and the history of a channel.
    pub(crate) fn of(&self, id: u32) -> (f64, Vec<f64>) {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&id).map_or((0.0, Vec::new()), |c| {
            (
                c.history.back().copied().unwrap_or(0.0),
                c.history.iter().copied().collect(),
            )
        })
    }
}

/// Samples until the gateway is dropped or shut down.
pub(crate) fn spawn_sampler(state: &Arc<State>) {
    let weak: Weak<State> = Arc::downgrade(state);
    let token = state.shutdown.clone();
    let first = Instant::now();
    if let Some(s) = weak.upgrade() {
        let stats = s.server.broker_stats();
        s.rates
            .sample(stats.channels.iter().map(|c| (c.id, c.published)), PERIOD);
        // The first sample only records the counters.
        s.rates
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
            .for_each(|c| c.history.clear());
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(first + PERIOD, PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = first;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                now = tick.tick() => {
                    let Some(s) = weak.upgrade() else { return };
                    let stats = s.server.broker_stats();
                    s.rates.sample(stats.channels.iter().map(|c| (c.id, c.published)), now - last);
                    last = now;
                }
            }
        }
    });
}
