//! A device host's software: an isml client that resumes its session,
//! handlers that record what they see, and the device's own traffic
//! (readings and calls to the server, a subscription to the status).
//! Started again from scratch when the simulation restarts the host: what
//! it had not had acknowledged is lost with it, unless the outbox is kept
//! on disk.

use std::path::PathBuf;
use std::time::Duration;

use isml_runtime::client::{Backoff, Client, ClientEvent};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::outbox::Outbox;
use isml_runtime::session::Delivery;

use crate::ledger::{Kind, Ledger};
use crate::messages::{Answer, Call, Command, Query, Reading, StatusChannel};
use crate::net;
use crate::plan::Plan;
use crate::server::{pace, slow};

fn dispatcher(plan: &Plan, ledger: &Ledger, device: u32) -> Dispatcher {
    let every = plan.traffic.slow_every;
    let (l1, l2) = (ledger.clone(), ledger.clone());
    Dispatcher::new()
        .on::<Command, _, _>(move |_ctx, m| {
            let ledger = l1.clone();
            async move {
                if m.device != device {
                    ledger.error(format!(
                        "device {device} got a command of device {}",
                        m.device
                    ));
                }
                ledger.started(m.device, Kind::Command, m.n);
                if let Some(d) = slow(every, m.n) {
                    tokio::time::sleep(d).await;
                }
                ledger.handled(m.device, Kind::Command, m.n);
                Ok(())
            }
        })
        .on_request::<Query, Answer, _, _>(move |_ctx, m| {
            let ledger = l2.clone();
            async move {
                ledger.started(m.device, Kind::Query, m.n);
                if let Some(d) = slow(every, m.n) {
                    tokio::time::sleep(d).await;
                }
                ledger.handled(m.device, Kind::Query, m.n);
                Ok(Answer {
                    device: m.device,
                    n: m.n,
                })
            }
        })
}

/// Opens the device's outbox on disk, committing inline: a writer thread
/// would finish each commit at a wall-clock moment, and the simulated step
/// in which a send learns that its message is durable would depend on the
/// machine's load (a seed then ran differently twice in a row on a busy
/// CI machine). Should the previous process's database not be closed yet,
/// wait for it in wall-clock time, which does not move the simulation.
fn open_outbox(path: &PathBuf) -> Result<Outbox, String> {
    let started = std::time::Instant::now();
    loop {
        match Outbox::open_inline(path) {
            Ok(o) => return Ok(o),
            Err(e) if started.elapsed() > Duration::from_secs(10) => {
                return Err(format!("outbox {}: {e}", path.display()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// The device process: runs until the simulation stops or restarts it.
pub(crate) async fn run(
    plan: Plan,
    ledger: Ledger,
    device: u32,
    outbox: PathBuf,
) -> turmoil::Result {
    let incarnation = ledger.device_starts(device);
    let t = &plan.tuning;
    let builder = Client::builder(format!("tcp://{}:{}", net::SERVER, net::PORT))
        .device_id(net::device_id(device))
        .connector(net::connect)
        .dispatcher(dispatcher(&plan, &ledger, device))
        .reconnect(Backoff {
            initial: t.backoff.0,
            max: t.backoff.1,
            jitter: 0.5,
        })
        .resume(true)
        .keepalive(Some(t.keepalive))
        .unacked_bytes(t.unacked_bytes)
        .ack_delay(t.ack_delay)
        .max_inflight(t.max_inflight)
        .request_timeout(Duration::from_secs(600))
        .handshake_timeout(t.handshake_timeout);
    // The first connection must succeed for `connect` to return; the
    // process tries until it does, as a device's firmware would.
    let client = loop {
        let attempt = if plan.durable {
            builder.clone().outbox(open_outbox(&outbox)?)
        } else {
            builder.clone()
        };
        match attempt.connect().await {
            Ok(c) => break c,
            Err(e) => {
                ledger.note(format!("d{device} first connection failed: {e}"));
                tokio::time::sleep(t.backoff.0).await;
            }
        }
    };
    // The first session's event went out before anyone listened.
    let resumed = client.link_stats().is_some_and(|s| s.resumes > 0);
    ledger.connected(device, resumed);
    let Some(mut events) = client.events() else {
        return Err("a resuming client has events".into());
    };
    {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ClientEvent::Connected { resumed, .. }) => ledger.connected(device, resumed),
                    Ok(ClientEvent::Disconnected { reason }) => {
                        ledger.note(format!("d{device} disconnected: {reason}"));
                    }
                    Ok(ClientEvent::Resubscribed {
                        subscriptions,
                        failed,
                    }) => ledger.note(format!(
                        "d{device} subscribed again: {subscriptions} ({failed} failed)"
                    )),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        ledger.error(format!("device {device}: {n} client events missed"));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    tokio::spawn(subscribe(client.clone(), ledger.clone(), device));
    {
        // For the report of a run that does not finish.
        let (c, l) = (client.clone(), ledger.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                l.link_stats(device, format!("{:?}", c.link_stats()));
            }
        });
    }
    let readings = tokio::spawn(readings(
        client.clone(),
        plan.clone(),
        ledger.clone(),
        device,
    ));
    let calls = tokio::spawn(calls(client.clone(), plan.clone(), ledger.clone(), device));
    readings.await?;
    calls.await?;
    ledger.device_done(device, incarnation);
    std::future::pending::<()>().await;
    Ok(())
}

/// Subscribes to the status (once: the runtime keeps the subscription
/// across resumed sessions, and makes it again after a lost one).
async fn subscribe(client: Client, ledger: Ledger, device: u32) {
    let mut sub = loop {
        match client.subscribe::<StatusChannel>().await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    while let Some(p) = sub.next().await {
        ledger.status_seen(device, p.value.version);
    }
    ledger.error(format!("device {device}: the status subscription ended"));
}

async fn readings(client: Client, plan: Plan, ledger: Ledger, device: u32) {
    let total = plan.traffic.readings;
    let mut handles = Vec::new();
    while let Some(n) = ledger.take(device, Kind::Reading, total) {
        let body = vec![n as u8; fastrand::usize(..=plan.traffic.reading_body)];
        match client
            .send_with(&Reading { device, n, body }, Delivery::AtLeastOnce)
            .await
        {
            Ok(handle) => {
                ledger.sent(device, Kind::Reading, n, plan.durable);
                let ledger = ledger.clone();
                handles.push(tokio::spawn(async move {
                    match handle.await {
                        Ok(()) => ledger.acked(device, Kind::Reading, n),
                        Err(e) => {
                            ledger.failed(device, Kind::Reading, n, e.to_string());
                            ledger.error(format!("device {device}: reading {n} failed: {e}"));
                        }
                    }
                }));
            }
            Err(e) => ledger.error(format!("device {device}: reading {n} not sent: {e}")),
        }
        tokio::time::sleep(pace(&plan, total)).await;
    }
    for h in handles {
        let _ = h.await;
    }
}

async fn calls(client: Client, plan: Plan, ledger: Ledger, device: u32) {
    let total = plan.traffic.calls;
    while let Some(n) = ledger.take(device, Kind::Call, total) {
        ledger.sent(device, Kind::Call, n, false);
        match client
            .request_with::<Answer, Call>(&Call { device, n }, Delivery::AtLeastOnce)
            .await
        {
            Ok(a) if a.device == device && a.n == n => ledger.acked(device, Kind::Call, n),
            Ok(a) => ledger.error(format!("call {n} of device {device} answered with {a:?}")),
            Err(e) => {
                ledger.failed(device, Kind::Call, n, e.to_string());
                ledger.error(format!("device {device}: call {n} failed: {e}"));
            }
        }
        tokio::time::sleep(pace(&plan, total)).await;
    }
}
