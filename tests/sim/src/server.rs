//! The server host's software: an isml server on the simulated network,
//! handlers that record what they see, and producers of the server's own
//! traffic (commands and queries to each device, status publications).
//! Started again from scratch when the simulation restarts the host.

use std::time::Duration;

use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::{Delivery, Session, SessionConfig};

use crate::ledger::{Kind, Ledger};
use crate::messages::{Answer, Call, Command, Query, Reading, Status, StatusChannel};
use crate::net;
use crate::plan::Plan;

/// How long a handler that takes a while waits, at most.
const SLOW: u64 = 40;

/// Whether the handler of message `n` takes a while (drawn from `n`, so
/// that a resent message takes as long as the first time).
pub(crate) fn slow(every: u64, n: u64) -> Option<Duration> {
    (every > 0 && n % every == every - 1).then(|| Duration::from_millis(1 + n * 7 % SLOW))
}

fn dispatcher(plan: &Plan, ledger: &Ledger) -> Dispatcher {
    let every = plan.traffic.slow_every;
    let (l1, l2) = (ledger.clone(), ledger.clone());
    Dispatcher::new()
        .on::<Reading, _, _>(move |ctx, m| {
            let ledger = l1.clone();
            let from = ctx.session().device_id().to_owned();
            async move {
                if from != net::device_id(m.device) {
                    ledger.error(format!("reading of device {} came from {from}", m.device));
                }
                ledger.started(m.device, Kind::Reading, m.n);
                if let Some(d) = slow(every, m.n) {
                    tokio::time::sleep(d).await;
                }
                ledger.handled(m.device, Kind::Reading, m.n);
                Ok(())
            }
        })
        .on_request::<Call, Answer, _, _>(move |_ctx, m| {
            let ledger = l2.clone();
            async move {
                ledger.started(m.device, Kind::Call, m.n);
                if let Some(d) = slow(every, m.n) {
                    tokio::time::sleep(d).await;
                }
                ledger.handled(m.device, Kind::Call, m.n);
                Ok(Answer {
                    device: m.device,
                    n: m.n,
                })
            }
        })
}

/// The server process: runs until the simulation stops or restarts it.
pub(crate) async fn run(plan: Plan, ledger: Ledger) -> turmoil::Result {
    let incarnation = ledger.server_starts();
    let t = &plan.tuning;
    // Requests wait for their reply across any outage the plan has.
    let mut config = SessionConfig::default();
    config.request_timeout = Duration::from_secs(600);
    let server = Server::builder()
        .session_config(config)
        .listener(net::listener().await?)
        .dispatcher(dispatcher(&plan, &ledger))
        .channel::<StatusChannel>()
        .session_expiry(t.session_expiry)
        // Every reconnection in simulated time would otherwise be counted
        // against a limit that runs on the wall clock.
        .handshake_rate(None)
        .handshake_timeout(t.handshake_timeout)
        .keepalive(Some(t.keepalive))
        .unacked_bytes(t.unacked_bytes)
        .ack_delay(t.ack_delay)
        .max_inflight(t.max_inflight)
        .start()
        .await?;
    let mut producers = Vec::new();
    for device in 0..plan.devices {
        producers.push(tokio::spawn(commands(
            server.clone(),
            plan.clone(),
            ledger.clone(),
            device,
        )));
        producers.push(tokio::spawn(queries(
            server.clone(),
            plan.clone(),
            ledger.clone(),
            device,
        )));
    }
    tokio::spawn(publish(server.clone(), plan.clone(), ledger.clone()));
    for p in producers {
        p.await?;
    }
    ledger.server_done(incarnation);
    std::future::pending::<()>().await;
    Ok(())
}

/// A session of `device`, waiting for one to come up.
async fn session_of(server: &Server, device: u32) -> Session {
    let id = net::device_id(device);
    loop {
        if let Some(s) = server.session_by_device(&id) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pause between two sends, so that the traffic spreads over the run.
pub(crate) fn pace(plan: &Plan, total: u64) -> Duration {
    let mean = plan.chaos.as_millis() as u64 / (total + 1);
    Duration::from_millis(fastrand::u64(0..=2 * mean))
}

/// Sends the device its commands at least once, each to whichever session
/// of the device is up.
async fn commands(server: Server, plan: Plan, ledger: Ledger, device: u32) {
    let total = plan.traffic.commands;
    let mut handles = Vec::new();
    while let Some(n) = ledger.take(device, Kind::Command, total) {
        loop {
            let session = session_of(&server, device).await;
            match session
                .send_with(&Command { device, n }, Delivery::AtLeastOnce)
                .await
            {
                Ok(handle) => {
                    ledger.sent(device, Kind::Command, n, false);
                    let ledger = ledger.clone();
                    handles.push(tokio::spawn(async move {
                        match handle.await {
                            Ok(()) => ledger.acked(device, Kind::Command, n),
                            Err(e) => ledger.failed(device, Kind::Command, n, e.to_string()),
                        }
                    }));
                    break;
                }
                // The device's state ended (expired) under this session:
                // the next session takes the command.
                Err(e) => {
                    ledger.note(format!("d{device} command {n} not queued: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tokio::time::sleep(pace(&plan, total)).await;
    }
    for h in handles {
        let _ = h.await;
    }
}

/// Asks the device its queries at least once, one after the other.
async fn queries(server: Server, plan: Plan, ledger: Ledger, device: u32) {
    let total = plan.traffic.queries;
    while let Some(n) = ledger.take(device, Kind::Query, total) {
        let session = session_of(&server, device).await;
        ledger.sent(device, Kind::Query, n, false);
        match session
            .request_with::<Answer, Query>(&Query { device, n }, Delivery::AtLeastOnce)
            .await
        {
            Ok(a) if a.device == device && a.n == n => ledger.acked(device, Kind::Query, n),
            Ok(a) => ledger.error(format!("query {n} of device {device} answered with {a:?}")),
            Err(e) => ledger.failed(device, Kind::Query, n, e.to_string()),
        }
        tokio::time::sleep(pace(&plan, total)).await;
    }
}

/// Publishes a new status every 300 ms while faults are injected, then the
/// final one when the driver asks for it.
async fn publish(server: Server, plan: Plan, ledger: Ledger) {
    let mut published_final = false;
    loop {
        let version = match ledger.final_status() {
            Some(v) if !published_final => {
                published_final = true;
                Some(v)
            }
            Some(_) => None,
            None if turmoil::sim_elapsed().unwrap_or_default() < plan.chaos => {
                Some(ledger.next_status())
            }
            None => None,
        };
        if let Some(version) = version
            && let Err(e) = server.publish::<StatusChannel>(&Status { version }).await
        {
            ledger.error(format!("status {version} not published: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
