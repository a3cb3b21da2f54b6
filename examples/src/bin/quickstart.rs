//! The quick start of the README and `docs/runtime.md`, runnable: a server and
//! a cabinet on loopback TCP; the cabinet sends a one-way meter reading, the
//! server commands the cabinet with a request and prints the typed reply.
//!
//! `cargo run -p isml-examples --bin quickstart`

use isml_examples::charging::v1::{AnyMessage, ChargeStarted, MeterReading, StartCharging};
use isml_runtime::{Client, Dispatcher, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server prints meter readings.
    let server_side = Dispatcher::new().on::<MeterReading, _, _>(|ctx, reading| async move {
        let device = ctx.session().device_id().to_string();
        println!("server: {device} reports {} Wh", reading.energy_wh);
        Ok(())
    });
    // The cabinet answers StartCharging.
    let cabinet = Dispatcher::new().on_request::<StartCharging, ChargeStarted, _, _>(
        |_ctx, cmd| async move {
            Ok(ChargeStarted {
                slot: cmd.slot,
                eta_s: Some(900),
                refused: None,
            })
        },
    );
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::TYPES)
        .dispatcher(server_side)
        .start()
        .await?;
    let client = Client::builder(&server.urls()[0])
        .device_id("cab-017")
        .types(AnyMessage::TYPES)
        .dispatcher(cabinet)
        .connect()
        .await?;

    // The cabinet sends a one-way message.
    client
        .send(&MeterReading {
            energy_wh: 1_234_567,
            ..Default::default()
        })
        .await?;

    // The server commands the cabinet by device id and awaits the typed reply.
    let session = server
        .session_by_device("cab-017")
        .ok_or("the server lists every connected client")?;
    let started: ChargeStarted = session
        .request(&StartCharging {
            slot: 2,
            target_soc_percent: 80,
            max_current_ma: None,
        })
        .await?;
    println!(
        "server: slot {} charging, eta {:?} s",
        started.slot, started.eta_s
    );

    client.close("bye").await;
    server.shutdown().await;
    Ok(())
}
