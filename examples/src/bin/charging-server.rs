//! A fleet server: accepts cabinets on the URLs given (default
//! `tcp://127.0.0.1:7000`), prints their telemetry, serves the `Fleet`
//! service cabinets call (fault tickets, reading uploads), and every five
//! seconds calls each cabinet's `Charger` service: starts charging a random
//! slot and watches it for three readings. It brokers the retained
//! `telemetry` channel (the last report, kept in `./isml-data` across
//! restarts) and the keyed `variables` channel, on which it publishes each
//! cabinet's uptime under `<device>.uptime`. Ctrl-C shuts it down gracefully.
//!
//! ```text
//! cargo run -p isml-examples --bin charging-server -- tcp://0.0.0.0:7000 ws://0.0.0.0:7001/isml
//! ```

use std::time::Duration;

use std::sync::atomic::{AtomicU32, Ordering};

use isml_examples::charging::v1::{
    AnyMessage, ChargerClient, Fault, FaultTicket, Fleet, FleetServer, MeterReading, StartCharging,
    StatusReport, UploadSummary, Variable, VariableValue, WatchSlot, channels,
};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::handshake::TokenAuthenticator;
use isml_runtime::rpc::{Call, Status, Streaming};
use isml_runtime::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        urls.push("tcp://127.0.0.1:7000".into());
    }
    // Set once the server runs: the handler republishes what cabinets report.
    let broker: std::sync::Arc<std::sync::OnceLock<Server>> = Default::default();
    let b = broker.clone();
    let dispatcher = Dispatcher::new()
        .service(FleetServer::new(Tickets::default()))
        .on::<StatusReport, _, _>(move |ctx, report| {
            let b = b.clone();
            async move {
                if let Some(server) = b.get() {
                    let _ = server.publish::<channels::Telemetry>(&report).await;
                    let uptime = Variable {
                        value: VariableValue::Int(report.uptime_s as i64),
                        unit: Some("s".into()),
                    };
                    let key = format!("{}.uptime", ctx.session().device_id());
                    let _ = server
                        .publish_keyed::<channels::Variables>(&key, &uptime)
                        .await;
                }
                let charging = report
                    .slots
                    .iter()
                    .filter(|s| s.current_limit_ma > 0)
                    .count();
                println!(
                    "{:>10} {}: {} slots, {charging} charging, {:.1} degC, up {} s",
                    ctx.session().device_id(),
                    report.station_id,
                    report.slots.len(),
                    report.temperature_c,
                    report.uptime_s
                );
                Ok(())
            }
        });
    let mut builder = Server::builder()
        .types(AnyMessage::TYPES)
        .channel::<channels::Telemetry>()
        .channel::<channels::Variables>()
        .data_dir(std::env::var("ISML_DATA_DIR").unwrap_or_else(|_| "isml-data".into()))
        .dispatcher(dispatcher)
        .authenticator(TokenAuthenticator::new(["demo-token"]))
        .keepalive(Some(Duration::from_secs(10)))
        .on_open(|s| println!("+ session {} {} from {}", s.id(), s.device_id(), s.peer()))
        .on_close(|s, reason| println!("- session {} {}: {reason}", s.id(), s.device_id()));
    for url in &urls {
        builder = builder.listen(url);
    }
    let server = builder.start().await?;
    let _ = broker.set(server.clone());
    println!("listening on {}", server.urls().join(", "));

    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                for s in server.sessions() {
                    let slot = fastrand_slot();
                    tokio::spawn(async move {
                        let device = s.device_id().to_owned();
                        let cabinet = ChargerClient::new(s).with_timeout(Duration::from_secs(5));
                        let cmd = StartCharging { slot, target_soc_percent: 90, max_current_ma: Some(16_000) };
                        match cabinet.start_charging(&cmd).await {
                            Ok(r) => println!("{device:>10} slot {slot}: started, eta {:?} s, refused {:?}", r.eta_s, r.refused),
                            Err(e) => println!("{device:>10} slot {slot}: {e}"),
                        }
                        // Three readings, then the watch is dropped: cancelled at the cabinet.
                        match cabinet.watch_slot(&WatchSlot { slot, interval_ms: 200 }).await {
                            Ok(mut readings) => {
                                for _ in 0..3 {
                                    match readings.next().await {
                                        Some(Ok(r)) => println!("{device:>10} slot {slot}: {:.0} W", r.power_w),
                                        Some(Err(e)) => { println!("{device:>10} watch: {e}"); break; }
                                        None => break,
                                    }
                                }
                            }
                            Err(e) => println!("{device:>10} watch: {e}"),
                        }
                    });
                }
            }
        }
    }
    println!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// The server's side of the `Fleet` service.
#[derive(Default)]
struct Tickets {
    next: AtomicU32,
}

impl Fleet for Tickets {
    async fn report_fault(&self, call: Call, req: Fault) -> Result<FaultTicket, Status> {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        println!(
            "{:>10} fault {:?}: {} (ticket {ticket})",
            call.device_id(),
            req.code,
            req.message
        );
        Ok(FaultTicket { ticket })
    }

    async fn upload_readings(
        &self,
        call: Call,
        mut req: Streaming<MeterReading>,
    ) -> Result<UploadSummary, Status> {
        let mut summary = UploadSummary::default();
        while let Some(reading) = req.next().await {
            summary.readings += 1;
            summary.total_wh += reading?.energy_wh;
        }
        println!(
            "{:>10} uploaded {} readings",
            call.device_id(),
            summary.readings
        );
        Ok(summary)
    }
}

/// A slot number from the clock: good enough to vary the demo.
fn fastrand_slot() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos % 8) as u8
}
