//! A simulated charging cabinet: connects to a server by URL, reports its
//! status every second, serves the `Charger` service the server calls
//! (start, stop, watch a slot), reports a fault through the server's `Fleet`
//! service once connected, and reconnects with backoff when the connection
//! drops.
//!
//! ```text
//! cargo run -p isml-examples --bin charging-server &
//! cargo run -p isml-examples --bin charger -- tcp://127.0.0.1:7000 cab-017
//! ```
//!
//! With `--publish` after the device id it also publishes its status and
//! the slots it charges on the `telemetry` and `variables` channels, for
//! servers that broker them (`isml serve schemas/charging.isml`).

use std::time::Duration;

use isml_examples::cabinet::Cabinet;
use isml_examples::charging::v1::{AnyMessage, Fault, FaultCode, FleetClient};
use isml_examples::common::{Severity, Timestamp};
use isml_runtime::client::{Backoff, Client};
use isml_runtime::handshake::Credentials;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "tcp://127.0.0.1:7000".into());
    let device = args.next().unwrap_or_else(|| "cab-001".into());
    let publish = args.next().is_some_and(|a| a == "--publish");
    let cabinet = Cabinet::new(device.to_uppercase());
    let client = Client::builder(&url)
        .device_id(&device)
        .credentials(Credentials::Token("demo-token".into()))
        .types(AnyMessage::TYPES)
        .dispatcher(cabinet.dispatcher())
        .keepalive(Some(Duration::from_secs(10)))
        .reconnect(Backoff::default())
        .connect()
        .await?;
    println!("{device} connected to {url}");
    let fleet = FleetClient::new(&client);
    let fault = Fault {
        code: FaultCode::OverTemperature,
        severity: Severity::Warning,
        message: "slot 3 fan slow".into(),
        slot: Some(3),
        raised_at: Timestamp { millis: 0 },
    };
    match fleet.report_fault(&fault).await {
        Ok(t) => println!("fault reported, ticket {}", t.ticket),
        Err(e) => println!("fault report failed: {e}"),
    }
    loop {
        let session = tokio::select! {
            s = client.wait_session() => s?,
            _ = tokio::signal::ctrl_c() => break,
        };
        println!("session {} as {}", session.id(), session.device_id());
        if publish {
            tokio::spawn(
                cabinet
                    .clone()
                    .publish(session.clone(), Duration::from_secs(1)),
            );
        }
        tokio::select! {
            () = cabinet.clone().report(session.clone(), Duration::from_secs(1)) => {
                println!("session ended: {}", session.closed().await);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close("charger stopped").await;
    Ok(())
}
