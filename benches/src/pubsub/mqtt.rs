//! The load generator's MQTT side (mosquitto and rumqttd): rumqttc clients,
//! MQTT 3.1.1, one topic per run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::oneshot;

use super::{Handle, Plan, Qos, Sink, payload};

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

fn options(port: u16, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_max_packet_size(64 * 1024, 64 * 1024);
    // rumqttc's default window of unacknowledged QoS 1 publications.
    o.set_inflight(100);
    o.set_clean_session(true);
    o
}

/// Connects a client and drives its event loop in a task; `on_publish` sees
/// every incoming publication. Returns once the broker acknowledged the
/// connection (and the subscription, when `subscribe` is given).
async fn connect(
    port: u16,
    id: &str,
    subscribe: Option<(&str, Qos)>,
    on_publish: Option<Sink>,
) -> Result<(AsyncClient, tokio::task::JoinHandle<()>), String> {
    let (client, mut eventloop) = AsyncClient::new(options(port, id), 1024);
    // Nagle off, as isml's transport and mosquitto's configuration have it:
    // otherwise QoS 1 acknowledgements wait for delayed ACKs.
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(30);
    eventloop.set_network_options(net);
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    if let Some((topic, q)) = subscribe {
        client
            .subscribe(topic, qos(q))
            .await
            .map_err(|e| format!("mqtt subscribe: {e}"))?;
    }
    let task = tokio::spawn(drive(eventloop, subscribe.is_some(), ready_tx, on_publish));
    match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok((client, task)),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(format!("mqtt client {id}: event loop ended")),
        Err(_) => Err(format!("mqtt client {id}: not ready within 20 s")),
    }
}

async fn drive(
    mut eventloop: EventLoop,
    wait_suback: bool,
    ready: oneshot::Sender<Result<(), String>>,
    sink: Option<Sink>,
) {
    let mut ready = Some(ready);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(s) = &sink {
                    s.record(&p.payload);
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) if !wait_suback => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(format!("mqtt connection: {e}")));
                }
                return;
            }
        }
    }
}

/// A subscriber to `topic` that records into `sink`.
pub(crate) async fn subscriber(
    port: u16,
    id: &str,
    topic: &str,
    q: Qos,
    sink: Sink,
) -> Result<Handle, String> {
    let (client, task) = connect(port, id, Some((topic, q)), Some(sink)).await?;
    Ok(Handle::new(vec![task.abort_handle()], client))
}

/// A publisher to `topic` that starts at once and runs until `stop`.
pub(crate) async fn publisher(
    port: u16,
    id: &str,
    topic: &str,
    q: Qos,
    size: usize,
    plan: Plan,
    stop: Arc<AtomicBool>,
) -> Result<Handle, String> {
    let (client, driver) = connect(port, id, None, None).await?;
    let topic = topic.to_owned();
    let c = client.clone();
    let task = tokio::spawn(async move {
        let mut pacer = plan.pacer();
        while !stop.load(Ordering::Relaxed) {
            pacer.wait().await;
            if c.publish_bytes(topic.as_str(), qos(q), false, payload(size))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Handle::new(
        vec![task.abort_handle(), driver.abort_handle()],
        client,
    ))
}
