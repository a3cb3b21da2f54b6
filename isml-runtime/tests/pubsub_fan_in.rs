//! Fan-in over TCP: 100 publishers that never wait for the broker's answer,
//! one subscriber. The broker's slow-subscriber policy may drop deliveries,
//! but a subscriber that reads as fast as it can must get most of them: the
//! queue of deliveries waiting for its session has to drain at the pace
//! the session writes, however many publishers keep the broker busy.
#![cfg(all(feature = "tcp", feature = "store"))]

mod common;

use std::time::Duration;

use isml_runtime::client::Client;
use isml_runtime::pubsub::{Channel, PublishError};
use isml_runtime::server::Server;

use common::StatusReport;

struct Events;
impl Channel for Events {
    type Message = StatusReport;
    const ID: u32 = 3;
    const NAME: &'static str = "charging.v1.events";
    const RETAIN: bool = false;
    const KEYED: bool = false;
}

const PUBLISHERS: usize = 100;
const EACH: u64 = 300;
/// The server's own publication after everybody else's: the subscriber
/// reads until it comes.
const MARKER: u64 = u64::MAX;

fn report(uptime_s: u64) -> StatusReport {
    StatusReport {
        station_id: "cab".into(),
        uptime_s,
        ..Default::default()
    }
}

async fn client(url: &str, device: &str) -> Client {
    Client::builder(url)
        .device_id(device)
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_subscriber_gets_most_of_what_100_publishers_publish_at_qos_0() {
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .channel::<Events>()
        .handshake_rate(None)
        .max_unauthenticated_per_address(256)
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let dash = client(&url, "dash").await;
    let mut sub = dash.subscribe::<Events>().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        while let Some(p) = sub.next().await {
            if p.value.uptime_s == MARKER {
                break;
            }
            received += 1;
        }
        (received, sub.dropped())
    });
    let mut publishers = Vec::new();
    for i in 0..PUBLISHERS {
        publishers.push(client(&url, &format!("pub-{i}")).await);
    }
    let tasks: Vec<_> = publishers
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                for seq in 1..EACH {
                    // QoS 0: queued without waiting for an answer; a full
                    // outbound queue is the only thing that holds it back.
                    loop {
                        match c.try_publish::<Events>(&report(seq)) {
                            Ok(()) => break,
                            Err(PublishError::Send(_)) => tokio::task::yield_now().await,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                // Answered once the broker has handled everything before it.
                c.publish::<Events>(&report(EACH)).await.unwrap();
                c
            })
        })
        .collect();
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    server.publish::<Events>(&report(MARKER)).await.unwrap();
    let (received, client_dropped) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the marker arrives")
        .unwrap();

    let published = PUBLISHERS as u64 * EACH;
    let channel = server.channel_stats(Events::ID).unwrap();
    assert_eq!(channel.published, published + 1);
    let id = server.session_by_device("dash").unwrap().id();
    let broker = server.subscriber_stats(id).unwrap();
    // Every publication is accounted for: received, or dropped and counted
    // by the broker or by the subscription.
    assert_eq!(
        received + broker.dropped + client_dropped,
        published,
        "{broker:?}, {client_dropped} dropped by the subscription"
    );
    assert!(
        received * 10 >= published * 9,
        "{received} of {published} received; {broker:?}, {client_dropped} dropped by the subscription"
    );
    drop(clients);
    server.shutdown().await;
}
