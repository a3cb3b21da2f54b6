//! Publish/subscribe end to end: real sessions over TCP and the in-memory
//! transport, the broker's retained values, ordering, slow subscribers,
//! unsubscribing, deletes, device-to-device messages, filters and the ACL.
#![cfg(all(feature = "tcp", feature = "store"))]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use isml_runtime::Message;
use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::handshake::{Hello, PROTOCOL_VERSION};
use isml_runtime::pubsub::{
    Ack, Acl, Channel, DenyDevices, MaxFrameSize, PublishError, RateLimit, Reason, Rule,
    SubscribeError,
};
use isml_runtime::server::Server;
use isml_runtime::session::{Session, codes};
use isml_runtime::transport::{self, ConnectOptions, Endpoint};
use isml_runtime::wire::{ControlOp, Frame, FrameHeader, FrameKind};
use tokio::sync::mpsc;

use common::{Fault, StatusReport};

/// Retained, unkeyed: the last status of a cabinet.
struct Telemetry;
impl Channel for Telemetry {
    type Message = StatusReport;
    const ID: u32 = 1;
    const NAME: &'static str = "charging.v1.telemetry";
    const RETAIN: bool = true;
    const KEYED: bool = false;
}

/// Retained and keyed: named variables.
struct Variables;
impl Channel for Variables {
    type Message = Fault;
    const ID: u32 = 2;
    const NAME: &'static str = "charging.v1.variables";
    const RETAIN: bool = true;
    const KEYED: bool = true;
}

/// Not retained: a stream of events.
struct Events;
impl Channel for Events {
    type Message = StatusReport;
    const ID: u32 = 3;
    const NAME: &'static str = "charging.v1.events";
    const RETAIN: bool = false;
    const KEYED: bool = false;
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn mem_url() -> String {
    format!(
        "mem://pubsub-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn builder(url: &str) -> isml_runtime::server::ServerBuilder {
    Server::builder()
        .listen(url)
        .channel::<Telemetry>()
        .channel::<Variables>()
        .channel::<Events>()
}

async fn client(url: &str, device: &str) -> Client {
    Client::builder(url)
        .device_id(device)
        .connect()
        .await
        .expect("connect")
}

fn report(station: &str, uptime_s: u64) -> StatusReport {
    StatusReport {
        station_id: station.into(),
        temperature_c: 21.5,
        uptime_s,
        ..Default::default()
    }
}

fn fault(code: u32, message: &str) -> Fault {
    Fault {
        code,
        message: message.into(),
        ..Default::default()
    }
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within 10 s"))
}

/// Publishes without waiting for the broker's answer (QoS 0): a full
/// outbound queue is the only thing that holds it back.
async fn publish_now<C: Channel>(c: &Client, m: &C::Message) {
    loop {
        match c.try_publish::<C>(m) {
            Ok(()) => return,
            Err(PublishError::Send(_)) => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Waits until `cond` holds (the broker acts on frames in its own tasks).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_values_survive_a_restart_with_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = builder("tcp://127.0.0.1:0")
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let cab = client(&url, "cab-7").await;
    assert_eq!(
        cab.publish::<Telemetry>(&report("cab-7", 1)).await.unwrap(),
        Ack::Persisted
    );
    assert_eq!(
        cab.publish::<Telemetry>(&report("cab-7", 2)).await.unwrap(),
        Ack::Persisted
    );
    cab.publish_keyed::<Variables>("door", &fault(1, "open"))
        .await
        .unwrap();
    cab.publish_keyed::<Variables>("light", &fault(2, "on"))
        .await
        .unwrap();
    // Not retained: nothing to keep.
    assert_eq!(
        cab.publish::<Events>(&report("cab-7", 3)).await.unwrap(),
        Ack::Accepted
    );
    cab.close("done").await;
    server.shutdown().await;
    drop(server);

    let server = builder("tcp://127.0.0.1:0")
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let dash = client(&url, "dashboard").await;
    let mut t = dash.subscribe::<Telemetry>().await.unwrap();
    let p = within("retained telemetry", t.next()).await.unwrap();
    assert!(p.retained);
    assert_eq!(p.value, report("cab-7", 2));
    assert_eq!(p.publisher, "cab-7");
    assert_eq!(p.key, None);
    assert!(p.timestamp_ms > 1_600_000_000_000);
    let mut v = dash.subscribe::<Variables>().await.unwrap();
    let mut seen = HashMap::new();
    for _ in 0..2 {
        let p = within("retained variables", v.next()).await.unwrap();
        assert!(p.retained);
        seen.insert(p.key.clone().unwrap(), p.value);
    }
    assert_eq!(seen["door"], fault(1, "open"));
    assert_eq!(seen["light"], fault(2, "on"));
    // A live publication after the retained ones is not marked retained.
    server
        .publish::<Telemetry>(&report("server", 9))
        .await
        .unwrap();
    let p = within("live telemetry", t.next()).await.unwrap();
    assert!(!p.retained);
    assert_eq!(p.publisher, "");
    assert_eq!(p.value.uptime_s, 9);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_value_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = builder("tcp://127.0.0.1:0")
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let cab = client(&url, "cab-1").await;
    cab.publish_keyed::<Variables>("door", &fault(1, "open"))
        .await
        .unwrap();
    cab.publish_keyed::<Variables>("light", &fault(2, "on"))
        .await
        .unwrap();
    cab.publish::<Telemetry>(&report("cab-1", 5)).await.unwrap();
    assert!(server.retained_raw(Variables::ID, Some("light")).is_some());
    cab.delete_retained::<Variables>(Some("light"))
        .await
        .unwrap();
    cab.delete_retained::<Telemetry>(None).await.unwrap();
    assert!(server.retained_raw(Variables::ID, Some("light")).is_none());
    assert!(server.retained_raw(Telemetry::ID, None).is_none());
    assert!(server.retained_raw(Variables::ID, Some("door")).is_some());
    // A key on an unkeyed channel is an error before anything is sent.
    assert!(matches!(
        cab.delete_retained::<Telemetry>(Some("x")).await,
        Err(PublishError::Key { .. })
    ));
    cab.close("done").await;
    server.shutdown().await;
    drop(server);

    // Gone from the store too: after a restart only "door" comes back.
    let server = builder("tcp://127.0.0.1:0")
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    assert!(server.retained_raw(Variables::ID, Some("light")).is_none());
    assert!(server.retained_raw(Telemetry::ID, None).is_none());
    let url = server.urls()[0].clone();
    let dash = client(&url, "dash").await;
    let mut v = dash.subscribe::<Variables>().await.unwrap();
    server
        .publish_keyed::<Variables>("marker", &fault(0, "end"))
        .await
        .unwrap();
    let mut keys = Vec::new();
    loop {
        let p = within("variables", v.next()).await.unwrap();
        if p.key.as_deref() == Some("marker") {
            break;
        }
        keys.push((p.key.unwrap(), p.retained));
    }
    assert_eq!(keys, [("door".to_owned(), true)]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_publishers_order_holds_with_50_concurrent_publishers() {
    const PUBLISHERS: usize = 50;
    const EACH: u64 = 100;
    let server = builder("tcp://127.0.0.1:0")
        .handshake_rate(None)
        .max_unauthenticated_per_address(64)
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let dash = client(&url, "dash").await;
    let mut sub = dash.subscribe::<Events>().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut received = 0u64;
        while received < PUBLISHERS as u64 * EACH {
            let Some(p) = sub.next().await else { break };
            let seq = p.value.uptime_s;
            if let Some(prev) = last.insert(p.publisher.clone(), seq) {
                assert!(seq > prev, "{}: {seq} after {prev}", p.publisher);
            }
            received += 1;
        }
        (received, sub.dropped(), last)
    });
    let mut tasks = Vec::new();
    for i in 0..PUBLISHERS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = client(&url, &format!("pub-{i}")).await;
            for seq in 1..=EACH {
                let m = report(&format!("pub-{i}"), seq);
                // Pipelined: most publications do not wait for their answer.
                if seq % 10 == 0 {
                    c.publish::<Events>(&m).await.unwrap();
                } else {
                    publish_now::<Events>(&c, &m).await;
                }
            }
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let (received, dropped, last) = within("all publications", reader).await.unwrap();
    let stats = server.channel_stats(Events::ID).unwrap();
    assert_eq!(stats.published, PUBLISHERS as u64 * EACH);
    // Everything arrived, and each publisher's in order (checked above).
    assert_eq!(
        (received, dropped, stats.dropped),
        (PUBLISHERS as u64 * EACH, 0, 0)
    );
    assert_eq!(last.len(), PUBLISHERS);
    assert!(last.values().all(|&s| s == EACH));
    server.shutdown().await;
}

/// A subscriber that completes the handshake, subscribes with a raw frame,
/// and then never reads again.
async fn stalled_subscriber(url: &str, channel: u32) -> Box<dyn std::any::Any + Send> {
    let endpoint: Endpoint = url.parse().unwrap();
    let t = transport::connect(&endpoint, &ConnectOptions::default())
        .await
        .unwrap();
    let (mut rx, mut tx, info) = t.split();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        device_id: "slow".into(),
        agent: "test".into(),
        credentials: Default::default(),
        types: vec![],
        stream_window: 16,
        services: vec![],
    };
    tx.send(Frame::new(
        FrameHeader::control(ControlOp::Hello),
        hello.encode(),
    ))
    .await
    .unwrap();
    let welcome = rx.next().await.unwrap().unwrap();
    assert_eq!(welcome.header.kind, FrameKind::Control(ControlOp::Welcome));
    // subscribe (§2.8): correlation 1, operation 0, the channel, no key.
    let payload = Bytes::from(vec![1, 0, channel as u8, 0]);
    tx.send(Frame::new(
        FrameHeader::control(ControlOp::Subscribe),
        payload,
    ))
    .await
    .unwrap();
    Box::new((rx, tx, info))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_never_holds_more_than_its_bound() {
    const BOUND: usize = 16 * 1024;
    let url = mem_url();
    let server = builder(&url)
        .outbound_queue(8)
        .outbound_bytes(4 * 1024)
        .subscriber_queue(64, BOUND)
        .start()
        .await
        .unwrap();
    let _slow = stalled_subscriber(&url, Events::ID).await;
    eventually("subscribed", || {
        server.channel_stats(Events::ID).unwrap().subscribers == 1
    })
    .await;
    let id = server.session_by_device("slow").unwrap().id();
    let big = StatusReport {
        firmware: Some("x".repeat(200)),
        ..report("server", 0)
    };
    for i in 0..5_000u64 {
        let m = StatusReport {
            uptime_s: i,
            ..big.clone()
        };
        server.publish::<Events>(&m).await.unwrap();
        if i % 500 == 0 {
            let s = server.subscriber_stats(id).unwrap();
            assert!(s.queued_bytes <= BOUND, "{s:?}");
        }
    }
    let s = server.subscriber_stats(id).unwrap();
    assert_eq!(s.bound_bytes, BOUND);
    assert!(s.max_queued_bytes <= BOUND, "{s:?}");
    assert!(s.queued_bytes <= BOUND && s.queued <= 64, "{s:?}");
    // The policy: the oldest are dropped, and counted, here and per channel.
    assert!(s.dropped > 4_000, "{s:?}");
    assert_eq!(server.channel_stats(Events::ID).unwrap().dropped, s.dropped);
    server.shutdown().await;
}

/// Publications from a client session fan out from its read bursts: small
/// ones copied already encoded into each subscriber's outbound queue, large
/// ones (over 1 KiB) shared. Mixed in one burst, they arrive whole and in
/// order (or are dropped by the slow-subscriber policy, and counted), and a
/// stalled subscriber of the same channel stays within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_publications_of_a_burst_arrive_in_order_within_the_bound() {
    const N: u64 = 6_000;
    const BOUND: usize = 16 * 1024;
    let server = builder("tcp://127.0.0.1:0")
        .outbound_queue(64)
        .outbound_bytes(16 * 1024)
        .subscriber_queue(64, BOUND)
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let _slow = stalled_subscriber(&url, Events::ID).await;
    let dash = client(&url, "dash").await;
    let mut sub = dash.subscribe::<Events>().await.unwrap();
    eventually("subscribed", || {
        server.channel_stats(Events::ID).unwrap().subscribers == 2
    })
    .await;
    let slow = server.session_by_device("slow").unwrap().id();
    let dash_id = server.session_by_device("dash").unwrap().id();
    // Every third publication is larger than the encoded lane takes.
    let firmware = |i: u64| (i % 3 == 1).then(|| format!("{i:05}:").repeat(300));
    let reader = tokio::spawn(async move {
        let mut received = 0;
        let mut next = 0;
        while let Some(p) = sub.next().await {
            let i = p.value.uptime_s;
            if i == N {
                break;
            }
            assert!(i >= next, "{i} after {}", next - 1);
            assert_eq!(p.value.firmware, firmware(i), "publication {i}");
            assert_eq!(p.publisher, "pub");
            received += 1;
            next = i + 1;
        }
        (received, sub.dropped())
    });
    let publisher = client(&url, "pub").await;
    for i in 0..N {
        let m = StatusReport {
            firmware: firmware(i),
            ..report("pub", i)
        };
        publish_now::<Events>(&publisher, &m).await;
        if i % 500 == 0 {
            let s = server.subscriber_stats(slow).unwrap();
            assert!(s.queued_bytes <= BOUND, "{s:?}");
        }
    }
    // A marker, once everything before it has been delivered or dropped
    // for the reader (it then finds room in the broker's queue), ends it.
    eventually("every publication handed over", || {
        let d = server.subscriber_stats(dash_id).unwrap();
        d.delivered + d.dropped == N
    })
    .await;
    publisher
        .publish::<Events>(&report("pub", N))
        .await
        .unwrap();
    let (received, dropped) = within("the marker", reader).await.unwrap();
    let d = server.subscriber_stats(dash_id).unwrap();
    assert_eq!(dropped, 0);
    assert_eq!(received + d.dropped, N, "{d:?}");
    assert!(received > N / 2, "{received} of {N}");
    let s = server.subscriber_stats(slow).unwrap();
    assert!(s.max_queued_bytes <= BOUND && s.queued <= 64, "{s:?}");
    assert!(s.dropped > 0, "{s:?}");
    server.shutdown().await;
}

/// A subscription whose reader is slower for moments (here: it sleeps
/// every 500 deliveries) loses nothing on the client: the connection
/// waits for it to take rather than dropping what its queue has no room for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_pauses_briefly_loses_nothing() {
    const N: u64 = 5_000;
    let server = builder("tcp://127.0.0.1:0").start().await.unwrap();
    let url = server.urls()[0].clone();
    let dash = client(&url, "dash").await;
    let mut sub = dash.subscribe::<Events>().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut next = 0;
        while next < N {
            let p = within("a publication", sub.next()).await.unwrap();
            assert_eq!(p.value.uptime_s, next);
            next += 1;
            if next % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        sub.dropped()
    });
    let publisher = client(&url, "pub").await;
    for i in 0..N {
        publish_now::<Events>(&publisher, &report("pub", i)).await;
    }
    assert_eq!(within("the reader", reader).await.unwrap(), 0);
    let id = server.session_by_device("dash").unwrap().id();
    assert_eq!(server.subscriber_stats(id).unwrap().dropped, 0);
    server.shutdown().await;
}

/// Deliveries that found their subscription's queue full do not wait for
/// the next frame to arrive: after the last publication of a burst the link
/// is silent (no frame until the keep-alive, 30 s later), and the last
/// ones still reach the reader once it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_burst_reaches_a_busy_reader_without_another_frame() {
    const N: u64 = 3_000;
    let server = builder("tcp://127.0.0.1:0").start().await.unwrap();
    let url = server.urls()[0].clone();
    let dash = client(&url, "dash").await;
    let mut sub = dash.subscribe::<Events>().await.unwrap();
    let publisher = client(&url, "pub").await;
    for i in 0..N {
        publish_now::<Events>(&publisher, &report("pub", i)).await;
    }
    // Everything has reached the broker (answered in order), and the
    // reader has not read yet: the client's queue is full.
    publisher
        .publish::<Events>(&report("pub", N))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = 0;
    while next <= N {
        let p = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap_or_else(|_| panic!("publication {next} of {N} did not come within 5 s"))
            .unwrap();
        assert_eq!(p.value.uptime_s, next);
        next += 1;
    }
    assert_eq!(sub.dropped(), 0);
    server.shutdown().await;
}

/// The client's `subscription_queue` and `subscription_patience` settings
/// bound a subscription and the wait for its reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_queue_and_patience_are_the_clients_settings() {
    const N: u64 = 200;
    let server = builder("tcp://127.0.0.1:0").start().await.unwrap();
    let url = server.urls()[0].clone();
    let dash = Client::builder(&url)
        .device_id("dash")
        .subscription_queue(8)
        .subscription_patience(Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    let mut sub = dash.subscribe::<Events>().await.unwrap();
    let publisher = client(&url, "pub").await;
    for i in 0..N {
        publisher
            .publish::<Events>(&report("pub", i))
            .await
            .unwrap();
    }
    // Nobody reads: everything but the queue's 8 newest is dropped once
    // the reader has been waited for.
    eventually("all but 8 dropped", || sub.dropped() == N - 8).await;
    for i in N - 8..N {
        assert_eq!(
            within("a queued one", sub.next())
                .await
                .unwrap()
                .value
                .uptime_s,
            i
        );
    }
    server.shutdown().await;
}

/// A subscription nobody reads holds its session up once, for a moment;
/// then its oldest deliveries are dropped and counted, and the session's
/// other subscriptions and requests go on at full pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_nobody_reads_drops_its_oldest_and_holds_nothing_up() {
    const N: u64 = 3_000;
    let server = builder("tcp://127.0.0.1:0").start().await.unwrap();
    let url = server.urls()[0].clone();
    let dash = client(&url, "dash").await;
    let mut unread = dash.subscribe::<Events>().await.unwrap();
    let mut read = dash.subscribe::<Variables>().await.unwrap();
    let publisher = client(&url, "pub").await;
    for i in 0..N {
        if i % 100 == 0 {
            // Paced by the broker's answers: nothing piles up at the publisher.
            publisher
                .publish::<Events>(&report("pub", i))
                .await
                .unwrap();
            continue;
        }
        publish_now::<Events>(&publisher, &report("pub", i)).await;
    }
    let started = std::time::Instant::now();
    for i in 0..20u32 {
        // More for the full queue: each would wait again if the
        // subscription were not known to be unread.
        publisher
            .publish::<Events>(&report("pub", N + u64::from(i)))
            .await
            .unwrap();
        publisher
            .publish_keyed::<Variables>(&format!("v{i}"), &fault(i, "x"))
            .await
            .unwrap();
        let p = within("the read subscription", read.next()).await.unwrap();
        assert_eq!(p.value.code, i);
        // The session's own requests are answered too.
        dash.publish::<Telemetry>(&report("dash", u64::from(i)))
            .await
            .unwrap();
    }
    // One wait for the reader that never comes, not one per burst.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(unread.dropped() > 0);
    // What is left is the newest, in order.
    let first = within("unread", unread.next())
        .await
        .unwrap()
        .value
        .uptime_s;
    let second = within("unread", unread.next())
        .await
        .unwrap()
        .value
        .uptime_s;
    assert!(second > first && first > 0, "{first} then {second}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_retained_value_replaces_a_queued_one() {
    let url = mem_url();
    let server = builder(&url)
        .outbound_queue(4)
        .outbound_bytes(2 * 1024)
        .subscriber_queue(16, 64 * 1024)
        .start()
        .await
        .unwrap();
    let _slow = stalled_subscriber(&url, Telemetry::ID).await;
    eventually("subscribed", || {
        server.channel_stats(Telemetry::ID).unwrap().subscribers == 1
    })
    .await;
    let id = server.session_by_device("slow").unwrap().id();
    let big = StatusReport {
        firmware: Some("x".repeat(300)),
        ..report("server", 0)
    };
    for i in 0..2_000u64 {
        let m = StatusReport {
            uptime_s: i,
            ..big.clone()
        };
        server.publish::<Telemetry>(&m).await.unwrap();
    }
    let s = server.subscriber_stats(id).unwrap();
    // One retained value per (channel, key) waits at most: the newest (or
    // none, when the session's writer made room for it since). None was
    // dropped: every value was handed over, or replaced by a newer one.
    assert!(s.queued <= 1, "{s:?}");
    assert_eq!(s.dropped, 0, "{s:?}");
    assert_eq!(s.delivered + s.replaced + s.queued as u64, 2_000, "{s:?}");
    assert!(s.replaced > 1_000, "{s:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_unsubscribe_all_stop_delivery() {
    let url = mem_url();
    let server = builder(&url).start().await.unwrap();
    let dash = client(&url, "dash").await;
    let cab = client(&url, "cab").await;
    let mut events = dash.subscribe::<Events>().await.unwrap();
    let mut vars = dash.subscribe::<Variables>().await.unwrap();
    let mut door = dash.subscribe_key::<Variables>("door").await.unwrap();
    let subs = |id| server.channel_stats(id).unwrap().subscribers;
    assert_eq!((subs(Events::ID), subs(Variables::ID)), (1, 2));

    cab.publish::<Events>(&report("cab", 1)).await.unwrap();
    cab.publish_keyed::<Variables>("door", &fault(1, "open"))
        .await
        .unwrap();
    assert_eq!(
        within("event", events.next()).await.unwrap().value.uptime_s,
        1
    );
    assert_eq!(within("var", vars.next()).await.unwrap().value.code, 1);
    assert_eq!(within("door", door.next()).await.unwrap().value.code, 1);
    // One delivery to the session, for both of its subscriptions.
    assert_eq!(server.channel_stats(Variables::ID).unwrap().delivered, 1);

    // Unsubscribing one subscription: the others still receive.
    events.unsubscribe().await.unwrap();
    eventually("unsubscribed", || subs(Events::ID) == 0).await;
    cab.publish::<Events>(&report("cab", 2)).await.unwrap();
    assert_eq!(server.channel_stats(Events::ID).unwrap().delivered, 1);

    // Dropping a subscription unsubscribes too.
    drop(door);
    eventually("dropped", || subs(Variables::ID) == 1).await;

    cab.publish_keyed::<Variables>("light", &fault(2, "on"))
        .await
        .unwrap();
    assert_eq!(within("var", vars.next()).await.unwrap().value.code, 2);

    // Unsubscribe-all ends every subscription, here and at the broker.
    let mut again = dash.subscribe::<Events>().await.unwrap();
    dash.unsubscribe_all().await.unwrap();
    assert_eq!((subs(Events::ID), subs(Variables::ID)), (0, 0));
    assert!(within("ended", again.next()).await.is_none());
    assert!(within("ended", vars.next()).await.is_none());
    let delivered = server.channel_stats(Variables::ID).unwrap().delivered;
    cab.publish_keyed::<Variables>("door", &fault(3, "closed"))
        .await
        .unwrap();
    assert_eq!(
        server.channel_stats(Variables::ID).unwrap().delivered,
        delivered
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_reaches_only_the_named_device() {
    let url = mem_url();
    let server = builder(&url).start().await.unwrap();
    let mut inboxes = HashMap::new();
    let mut clients = HashMap::new();
    for name in ["a", "b", "c"] {
        let (tx, rx) = mpsc::unbounded_channel();
        let d = Dispatcher::new().on::<Fault, _, _>(move |ctx, m| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((ctx.sender().map(str::to_owned), m));
                Ok(())
            }
        });
        let c = Client::builder(&url)
            .device_id(name)
            .dispatcher(d)
            .connect()
            .await
            .unwrap();
        inboxes.insert(name, rx);
        clients.insert(name, c);
    }
    clients["a"]
        .send_to("b", &fault(7, "hello b"))
        .await
        .unwrap();
    let (from, m) = within("b's message", inboxes.get_mut("b").unwrap().recv())
        .await
        .unwrap();
    assert_eq!((from.as_deref(), m), (Some("a"), fault(7, "hello b")));
    // c got nothing: the next thing it receives is the server's marker.
    server.send_to("c", &fault(0, "marker")).await.unwrap();
    let (from, m) = within("c's marker", inboxes.get_mut("c").unwrap().recv())
        .await
        .unwrap();
    assert_eq!((from.as_deref(), m.code), (Some(""), 0));
    assert!(inboxes.get_mut("a").unwrap().try_recv().is_err());
    assert!(inboxes.get_mut("b").unwrap().try_recv().is_err());

    let err = clients["a"]
        .send_to("nobody", &fault(1, "?"))
        .await
        .unwrap_err();
    match &err {
        PublishError::Refused {
            channel, refusal, ..
        } => {
            assert_eq!(channel, "nobody");
            assert_eq!(refusal.reason, Reason::UnknownDevice);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "message on channel nobody refused: unknown device (code 9): device nobody is not connected"
    );
    assert!(server.send_to("nobody", &fault(1, "?")).await.is_err());
    assert_eq!(server.broker_stats().messages, 2);
    server.shutdown().await;
}

async fn filtered(server: &Server, device: &str) -> u64 {
    server.session_by_device(device).unwrap().stats().filtered
}

fn refusal(e: PublishError) -> Reason {
    match e {
        PublishError::Refused { refusal, .. } => refusal.reason,
        other => panic!("not a refusal: {other:?}"),
    }
}

fn sub_refusal<T: std::fmt::Debug>(r: Result<T, SubscribeError>) -> Reason {
    match r {
        Err(SubscribeError::Refused { refusal, .. }) => refusal.reason,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_filters_refuse_with_counted_reasons() {
    let url = mem_url();
    let server = builder(&url)
        .filter(DenyDevices::new(["evil-*"]))
        .filter(MaxFrameSize::new().type_max::<StatusReport>(100))
        .filter(RateLimit::new().per_channel(Telemetry::ID, 1, 3))
        .filter(Rule::new::<StatusReport>(|m| m.temperature_c < 60.0).named("temperature"))
        .start()
        .await
        .unwrap();
    let cab = client(&url, "cab").await;

    // Maximum size per type.
    let big = StatusReport {
        firmware: Some("x".repeat(200)),
        ..report("cab", 1)
    };
    assert_eq!(
        refusal(cab.publish::<Events>(&big).await.unwrap_err()),
        Reason::TooLarge
    );
    assert_eq!(filtered(&server, "cab").await, 1);

    // The payload rule, on decoded fields; for publications and messages alike.
    let hot = StatusReport {
        temperature_c: 80.0,
        ..report("cab", 1)
    };
    let e = cab.publish::<Events>(&hot).await.unwrap_err();
    assert!(
        e.to_string().contains("temperature refused the message"),
        "{e}"
    );
    assert_eq!(refusal(e), Reason::Rule);
    assert_eq!(filtered(&server, "cab").await, 2);
    let session: Session = cab.session().unwrap();
    session.send(&hot).await.unwrap();
    eventually("message filtered", || {
        server.session_by_device("cab").unwrap().stats().filtered == 3
    })
    .await;

    // Rate limit per device and channel: a burst of 3, then refused.
    for i in 0..3 {
        cab.publish::<Telemetry>(&report("cab", i)).await.unwrap();
    }
    assert_eq!(
        refusal(
            cab.publish::<Telemetry>(&report("cab", 4))
                .await
                .unwrap_err()
        ),
        Reason::RateLimited
    );
    // Another device has its own bucket.
    let other = client(&url, "other").await;
    other
        .publish::<Telemetry>(&report("other", 1))
        .await
        .unwrap();
    assert_eq!(filtered(&server, "cab").await, 4);
    assert_eq!(filtered(&server, "other").await, 0);

    // The deny list.
    let evil = client(&url, "evil-1").await;
    assert_eq!(
        refusal(evil.publish::<Events>(&report("e", 1)).await.unwrap_err()),
        Reason::DeviceDenied
    );
    assert_eq!(
        refusal(evil.send_to("cab", &fault(1, "x")).await.unwrap_err()),
        Reason::DeviceDenied
    );
    assert_eq!(filtered(&server, "evil-1").await, 2);
    assert_eq!(server.broker_stats().refused, 6);
    assert_eq!(server.channel_stats(Events::ID).unwrap().refused, 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_closed_after_n_offences() {
    let url = mem_url();
    let server = builder(&url)
        .filter(DenyDevices::new(["spam*"]))
        .close_after_offences(3)
        .start()
        .await
        .unwrap();
    let spam = client(&url, "spammer").await;
    let session = spam.session().unwrap();
    for _ in 0..3 {
        let _ = session.try_publish::<Events>(&report("s", 1));
    }
    let reason = within("closed", session.closed()).await;
    assert_eq!(reason.code, codes::PERMISSION_DENIED);
    assert!(reason.message.contains("3 messages refused"), "{reason:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_allows_and_denies() {
    let acl = Acl::from_toml_str(
        r#"
[[allow]]
devices = ["cab-*"]
actions = ["publish"]
names = ["charging.v1.*"]

[[allow]]
devices = ["dash"]
actions = ["subscribe", "send_to"]
names = ["charging.v1.telemetry", "cab-*"]

[[deny]]
devices = ["cab-9"]
actions = ["*"]
names = ["*"]
"#,
    )
    .unwrap();
    let url = mem_url();
    let server = builder(&url).acl(acl).start().await.unwrap();
    let cab = client(&url, "cab-1").await;
    let cab9 = client(&url, "cab-9").await;
    let dash = client(&url, "dash").await;
    cab.publish::<Telemetry>(&report("cab-1", 1)).await.unwrap();
    assert_eq!(
        refusal(
            cab9.publish::<Telemetry>(&report("cab-9", 1))
                .await
                .unwrap_err()
        ),
        Reason::Denied
    );
    assert_eq!(
        refusal(cab.delete_retained::<Telemetry>(None).await.unwrap_err()),
        Reason::Denied
    );
    let mut t = dash.subscribe::<Telemetry>().await.unwrap();
    assert_eq!(
        within("retained", t.next()).await.unwrap().value.uptime_s,
        1
    );
    assert_eq!(
        sub_refusal(dash.subscribe::<Events>().await),
        Reason::Denied
    );
    assert_eq!(
        sub_refusal(cab.subscribe::<Telemetry>().await),
        Reason::Denied
    );
    dash.send_to("cab-1", &fault(1, "hi")).await.unwrap();
    assert_eq!(
        refusal(cab.send_to("dash", &fault(1, "hi")).await.unwrap_err()),
        Reason::Denied
    );
    // The server process is never checked.
    server
        .publish::<Events>(&report("server", 1))
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_from_the_broker_itself() {
    let url = mem_url();
    let server = Server::builder()
        .listen(&url)
        .channel::<Telemetry>()
        .start()
        .await
        .unwrap();
    let cab = client(&url, "cab").await;
    // A channel the server does not broker.
    assert_eq!(
        refusal(cab.publish::<Events>(&report("c", 1)).await.unwrap_err()),
        Reason::UnknownChannel
    );
    assert_eq!(
        sub_refusal(cab.subscribe::<Events>().await),
        Reason::UnknownChannel
    );
    // A raw publication with a key on an unkeyed channel.
    let payload = Bytes::from(report("c", 1).encode_to_vec().unwrap());
    assert_eq!(
        refusal(
            cab.publish_raw(Telemetry::ID, Some("k"), payload.clone())
                .await
                .unwrap_err()
        ),
        Reason::Key
    );
    assert_eq!(
        cab.publish_raw(Telemetry::ID, None, payload).await.unwrap(),
        Ack::Accepted
    );
    let raw = server.retained_raw(Telemetry::ID, None).unwrap();
    assert_eq!(raw.publisher, "cab");
    assert_eq!(
        StatusReport::decode_slice(&raw.payload).unwrap(),
        report("c", 1)
    );
    server.shutdown().await;
}

isml_runtime::channel! {
    /// Faults, declared with the macro rather than by hand.
    Faults: Fault = 4, "charging.v1.faults";
}

#[test]
fn channels_declared_with_the_macro_export_to_the_schema() {
    use isml_runtime::descriptor::TypeRef;
    let info = Faults::info();
    assert_eq!(
        (info.retain, info.keyed, info.type_id),
        (false, false, 0x04)
    );
    let text = isml_runtime::export_schema_with_channels(
        &[TypeRef::of::<StatusReport>(), TypeRef::of::<Fault>()],
        &[Variables::info(), Faults::info(), Telemetry::info()],
    )
    .unwrap();
    assert!(text.contains("\nchannel telemetry: StatusReport = 1 [retain];\nchannel variables: Fault = 2 [retain, keyed];\nchannel faults: Fault = 4;\n"), "{text}");
    let e =
        isml_runtime::export_schema_with_channels(&[TypeRef::of::<Fault>()], &[Telemetry::info()])
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "channel `charging.v1.telemetry`: its message type (type id 1) is not among the exported types"
    );
}
