//! Three servers in one process as a cluster over a real `nats-server`
//! (JetStream on, its store in a temporary directory): publications cross
//! nodes once, retained values and deletes are shared, messages and calls
//! reach devices on other nodes (with deadlines and cancellation), the
//! newer session of a device id wins across nodes, a device with a
//! reliable session resumes on its node or moves to another, and a NATS
//! outage leaves local traffic alone and is repaired when NATS returns.
//!
//! Every wait is on a condition, with a generous bound.
#![cfg(all(feature = "cluster", feature = "tcp"))]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use isml_runtime::client::{Backoff, Client, ClientEvent};
use isml_runtime::cluster::{ClusterStatus, NatsCluster};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::pubsub::{Channel, Subscription};
use isml_runtime::rpc::{Call, CallError, Status};
use isml_runtime::server::Server;
use isml_runtime::session::{Delivery, codes};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use common::{ChargeStarted, Fault, Reboot, StartCharging, StatusReport};
use proxy::Proxy;

isml_runtime::channel! {
    /// Status reports, the last one retained.
    Telemetry: StatusReport = 1, "charging.v1.telemetry", [retain];
}
isml_runtime::channel! {
    /// Faults by key, the last one per key retained.
    Variables: Fault = 2, "charging.v1.variables", [retain, keyed];
}
isml_runtime::channel! {
    /// Live status reports, nothing retained: a session's publications on
    /// such a channel are handed over at the end of its read burst.
    Live: StatusReport = 3, "charging.v1.live";
}

/// The cabinets' service, as a device serves it.
#[isml_derive::service(package = "charging.v1")]
trait Charger {
    #[rpc(id = 1)]
    async fn start_charging(&self, call: Call, req: StartCharging)
    -> Result<ChargeStarted, Status>;
    /// Never answers: ends when the call is cancelled.
    #[rpc(id = 2)]
    async fn hang(&self, call: Call, req: Reboot) -> Result<ChargeStarted, Status>;
}

struct Cabinet {
    cancelled: mpsc::UnboundedSender<(u16, bool)>,
}

impl Charger for Cabinet {
    async fn start_charging(
        &self,
        _call: Call,
        req: StartCharging,
    ) -> Result<ChargeStarted, Status> {
        Ok(ChargeStarted {
            slot: req.slot,
            eta_s: Some(u32::from(req.target_soc_percent) * 10),
            refused: None,
        })
    }

    async fn hang(&self, call: Call, req: Reboot) -> Result<ChargeStarted, Status> {
        // A cancelled call's handler is dropped; what it spawned learns of
        // the cancel through `cancelled`.
        let cancelled = call.cancelled();
        let tx = self.cancelled.clone();
        let had_deadline = call.deadline().is_some();
        tokio::spawn(async move {
            cancelled.await;
            let _ = tx.send((req.delay_s, had_deadline));
        });
        std::future::pending().await
    }
}

fn types() -> &'static [(u32, &'static str, u64)] {
    static T: std::sync::OnceLock<Vec<(u32, &'static str, u64)>> = std::sync::OnceLock::new();
    T.get_or_init(|| vec![common::entry::<Reboot>(), common::entry::<Fault>()])
}

/// A `nats-server -js` child on a free port, killed when dropped.
struct Nats {
    child: Child,
    port: u16,
    url: String,
}

impl Nats {
    fn start(store: &Path, port: Option<u16>) -> Nats {
        let port = port.unwrap_or_else(|| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (apt-get install nats-server)");
        let nats = Nats {
            child,
            port,
            url: format!("nats://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nats
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `check` to hold, at most 30 s.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn node(nats: &str, id: &str) -> Server {
    let cluster = NatsCluster::builder(nats)
        .node_id(id)
        .lease(Duration::from_secs(2))
        .connect()
        .await
        .expect("joins the cluster");
    Server::builder()
        .listen("tcp://127.0.0.1:0")
        .channel::<Telemetry>()
        .channel::<Variables>()
        .channel::<Live>()
        .types(types())
        .cluster(cluster)
        .start()
        .await
        .unwrap()
}

async fn device(server: &Server, id: &str, dispatcher: Dispatcher) -> Client {
    Client::builder(server.urls()[0].clone())
        .device_id(id)
        .dispatcher(dispatcher)
        .types(types())
        .connect()
        .await
        .unwrap()
}

fn report(station: &str, uptime_s: u64) -> StatusReport {
    StatusReport {
        station_id: station.into(),
        uptime_s,
        ..Default::default()
    }
}

fn fault(code: u32) -> Fault {
    Fault {
        code,
        ..Default::default()
    }
}

/// Publishes from `publisher` until `sub` receives one (the subscription
/// crosses nodes asynchronously), then returns the uptime it was sent with.
async fn first_across<C: Channel<Message = StatusReport>>(
    publisher: &Client,
    sub: &mut Subscription<C>,
) -> u64 {
    let n = AtomicU32::new(1_000_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let uptime = u64::from(n.fetch_add(1, Ordering::Relaxed));
        publisher
            .publish::<C>(&report("probe", uptime))
            .await
            .unwrap();
        if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await
            && !p.retained
        {
            return p.value.uptime_s;
        }
        assert!(Instant::now() < deadline, "no publication crossed nodes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_act_as_one() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), None);
    let a = node(&nats.url, "a").await;
    let b = node(&nats.url, "b").await;
    let c = node(&nats.url, "c").await;

    // Publications cross nodes, once each, in order; never back to the
    // publisher's node.
    let publisher = device(&a, "pub-a", Dispatcher::new()).await;
    let listener_b = device(&b, "sub-b", Dispatcher::new()).await;
    let mut sub = listener_b.subscribe::<Telemetry>().await.unwrap();
    first_across(&publisher, &mut sub).await;
    for i in 1..=200u64 {
        publisher
            .publish::<Telemetry>(&report("a", i))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 200 {
        let p = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("every publication arrives")
            .unwrap();
        if p.retained || p.value.uptime_s >= 1_000_000 {
            continue; // the retained value, or a late probe
        }
        assert_eq!(p.publisher, "pub-a");
        got.push(p.value.uptime_s);
    }
    assert_eq!(got, (1..=200).collect::<Vec<_>>(), "once each, in order");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "no duplicate"
    );
    // The same on a channel that retains nothing, whose publications a
    // session hands over in batches (one per read burst).
    let mut live = listener_b.subscribe::<Live>().await.unwrap();
    first_across(&publisher, &mut live).await;
    for i in 1..=200u64 {
        publisher.publish::<Live>(&report("a", i)).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 200 {
        let p = tokio::time::timeout(Duration::from_secs(20), live.next())
            .await
            .expect("every live publication arrives")
            .unwrap();
        assert!(!p.retained, "nothing is retained on a live channel");
        if p.value.uptime_s >= 1_000_000 {
            continue; // a late probe
        }
        assert_eq!(p.publisher, "pub-a");
        got.push(p.value.uptime_s);
    }
    assert_eq!(got, (1..=200).collect::<Vec<_>>(), "once each, in order");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), live.next())
            .await
            .is_err(),
        "no duplicate"
    );
    assert_eq!(
        a.cluster_stats().received,
        0,
        "no echo of a's own publications"
    );
    assert!(b.cluster_stats().received >= 400);
    assert_eq!(a.cluster_stats().status, ClusterStatus::Connected);

    // Retained values: the latest is visible from every node, and a new
    // subscriber on another node gets it first.
    publisher
        .publish_keyed::<Variables>("door.1", &fault(41))
        .await
        .unwrap();
    for n in [&b, &c] {
        until("the retained value on every node", async || {
            n.retained_raw(2, Some("door.1")).is_some()
        })
        .await;
    }
    let late = device(&c, "late-c", Dispatcher::new()).await;
    let mut keyed = late.subscribe_key::<Variables>("door.1").await.unwrap();
    let p = tokio::time::timeout(Duration::from_secs(10), keyed.next())
        .await
        .unwrap()
        .unwrap();
    assert!(p.retained);
    assert_eq!((p.value.code, p.publisher.as_str()), (41, "pub-a"));
    // Live publications on a key reach a key subscriber on another node
    // (once its node has subscribed to the key's subject: until then they
    // may be missed, as at-most-once delivery allows).
    let deadline = Instant::now() + Duration::from_secs(30);
    let p = loop {
        publisher
            .publish_keyed::<Variables>("door.1", &fault(42))
            .await
            .unwrap();
        if let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(200), keyed.next()).await {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no live value crossed to the key subscriber"
        );
    };
    assert!(!p.retained);
    assert_eq!(p.value.code, 42);

    // Delete: gone on every node.
    b.delete_retained::<Variables>(Some("door.1"))
        .await
        .unwrap();
    for n in [&a, &c] {
        until("the delete on every node", async || {
            n.retained_raw(2, Some("door.1")).is_none()
        })
        .await;
    }

    // send_to across nodes: a device on a, a device on c.
    let (tx, mut inbox) = mpsc::unbounded_channel();
    let on_c = device(
        &c,
        "cab-c",
        Dispatcher::new()
            .on::<Fault, _, _>(move |ctx, m| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((ctx.sender().map(str::to_owned), m.code));
                    Ok(())
                }
            })
            .service(ChargerServer::new(Cabinet {
                cancelled: mpsc::unbounded_channel().0,
            })),
    )
    .await;
    until("cab-c's presence on a", async || {
        a.device("cab-c").await.is_some()
    })
    .await;
    for i in 0..20 {
        publisher.send_to("cab-c", &fault(i)).await.unwrap();
    }
    for i in 0..20 {
        let (from, code) = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from.as_deref(), code), (Some("pub-a"), i), "in order");
    }
    a.send_to("cab-c", &fault(99)).await.unwrap();
    let (from, code) = inbox.recv().await.unwrap();
    assert_eq!((from.as_deref(), code), (Some(""), 99));
    let err = publisher.send_to("nobody", &fault(1)).await.unwrap_err();
    assert!(err.to_string().contains("unknown device"), "{err}");

    // RPC from a's application to the device on c.
    let conn = a.device("cab-c").await.unwrap();
    assert!(matches!(conn, isml_runtime::rpc::Conn::Remote(_)));
    let reply = ChargerClient::new(conn.clone())
        .start_charging(&StartCharging {
            slot: 3,
            target_soc_percent: 80,
            max_current_ma: None,
        })
        .await
        .unwrap();
    assert_eq!((reply.slot, reply.eta_s), (3, Some(800)));
    drop(on_c);
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_across_nodes_keep_deadlines_and_cancel() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), None);
    let a = node(&nats.url, "a").await;
    let c = node(&nats.url, "c").await;
    let (tx, mut cancelled) = mpsc::unbounded_channel();
    let _cab = device(
        &c,
        "cab-7",
        Dispatcher::new().service(ChargerServer::new(Cabinet { cancelled: tx })),
    )
    .await;
    until("cab-7's presence on a", async || {
        a.device("cab-7").await.is_some()
    })
    .await;
    let client = ChargerClient::new(a.device("cab-7").await.unwrap());

    // The deadline passes: the caller gets a timeout, the handler on the
    // device is cancelled.
    let started = Instant::now();
    let err = client
        .clone()
        .with_timeout(Duration::from_millis(500))
        .hang(&Reboot { delay_s: 1 })
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let which = tokio::time::timeout(Duration::from_secs(10), cancelled.recv())
        .await
        .expect("the device's handler is cancelled")
        .unwrap();
    assert_eq!(
        which,
        (1, true),
        "cancelled, and the deadline crossed the hop"
    );

    // The caller drops its call: cancelled at the device as well.
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.hang(&Reboot { delay_s: 2 }).await })
    };
    until("the call reaching c", async || {
        c.cluster_stats().calls_in >= 2
    })
    .await;
    call.abort();
    let which = tokio::time::timeout(Duration::from_secs(10), cancelled.recv())
        .await
        .expect("the dropped call is cancelled at the device")
        .unwrap();
    assert_eq!(which.0, 2);

    // A device nobody knows.
    assert!(a.device("nobody").await.is_none());
    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_session_wins_across_nodes() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), None);
    let a = node(&nats.url, "a").await;
    let b = node(&nats.url, "b").await;
    let first = device(&a, "twin", Dispatcher::new()).await;
    let first_session = first.session().unwrap();
    until("twin's presence on b", async || {
        b.device("twin").await.is_some()
    })
    .await;
    let second = device(&b, "twin", Dispatcher::new()).await;
    let reason = tokio::time::timeout(Duration::from_secs(20), first_session.closed())
        .await
        .expect("the older session is closed");
    assert_eq!(reason.code, codes::DEVICE_ID_IN_USE);
    assert!(reason.message.contains("node b"), "{reason}");
    assert!(!second.session().unwrap().is_closed());
    until("a routing twin to b", async || {
        matches!(a.device("twin").await, Some(isml_runtime::rpc::Conn::Remote(r)) if r.node() == "b")
    })
    .await;
    assert_eq!(a.cluster_stats().replaced, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_degrades_then_resynchronises() {
    let store = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(store.path(), None);
    let port = nats.port;
    let a = node(&nats.url, "a").await;
    let b = node(&nats.url, "b").await;
    let publisher = device(&a, "pub-a", Dispatcher::new()).await;
    let local = device(&a, "sub-a", Dispatcher::new()).await;
    let mut sub = local.subscribe::<Telemetry>().await.unwrap();

    let _ = nats.child.kill();
    let _ = nats.child.wait();
    until("a degraded", async || {
        a.cluster_stats().status == ClusterStatus::Degraded
    })
    .await;

    // Local traffic goes on.
    for i in 1..=20 {
        publisher
            .publish::<Telemetry>(&report("a", i))
            .await
            .unwrap();
    }
    for i in 1..=20 {
        let p = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        if p.retained {
            continue;
        }
        assert_eq!(p.value.uptime_s, i);
    }
    // A retained value published while NATS is down reaches b once it is back.
    publisher
        .publish_keyed::<Variables>("offline", &fault(7))
        .await
        .unwrap();

    let nats = Nats::start(store.path(), Some(port));
    until("a connected again", async || {
        a.cluster_stats().status == ClusterStatus::Connected
    })
    .await;
    until("the offline value on b", async || {
        b.retained_raw(2, Some("offline")).is_some()
    })
    .await;
    assert!(a.cluster_stats().resyncs >= 1);
    assert!(a.cluster_stats().disconnects >= 1);
    // Presence is repaired: b reaches a's device again.
    until("pub-a's presence on b", async || {
        b.device("pub-a").await.is_some()
    })
    .await;
    let listener_b = device(&b, "sub-b", Dispatcher::new()).await;
    let mut sub_b = listener_b.subscribe::<Telemetry>().await.unwrap();
    first_across(&publisher, &mut sub_b).await;
    a.shutdown().await;
    b.shutdown().await;
    drop(nats);
}

/// The next `Connected` event's `resumed`, and the `Resubscribed` event's
/// counts when one follows it (a session that was not resumed).
async fn next_connection(
    events: &mut broadcast::Receiver<ClientEvent>,
) -> (bool, Option<(usize, usize)>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resumed = None;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the device reconnects")
            .expect("the client's events");
        match event {
            ClientEvent::Connected { resumed: true, .. } => return (true, None),
            ClientEvent::Connected { resumed: false, .. } => resumed = Some(false),
            ClientEvent::Resubscribed {
                subscriptions,
                failed,
            } if resumed.is_some() => return (false, Some((subscriptions, failed))),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resuming_device_resumes_on_its_node_and_moves_when_it_is_gone() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), None);
    let a = node(&nats.url, "a").await;
    let b = node(&nats.url, "b").await;
    let c = node(&nats.url, "c").await;
    let to_a = Proxy::start(proxy::tcp_target(&a)).await;
    // Every node's URL, a (through the proxy) first; a reliable session.
    let roamer = Client::builder(&to_a.url)
        .fallback_urls([b.urls()[0].clone(), c.urls()[0].clone()])
        .device_id("roamer")
        .types(types())
        .reconnect(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            jitter: 0.5,
        })
        .resume(true)
        .connect()
        .await
        .unwrap();
    let mut events = roamer.events().unwrap();
    let mut live = roamer.subscribe::<Live>().await.unwrap();
    let publisher = device(&c, "pub-c", Dispatcher::new()).await;
    first_across(&publisher, &mut live).await;

    // The link breaks, a is still up: the session resumes there, with
    // its subscription.
    to_a.cut();
    assert_eq!(next_connection(&mut events).await, (true, None));
    assert_eq!(a.resume_stats().resumed, 1);
    first_across(&publisher, &mut live).await;

    // a unreachable: the next node, b, starts a new session; the device
    // subscribes again by itself, and what it published at least once
    // while moving reaches the other nodes.
    to_a.refuse(true);
    to_a.cut();
    let delivered = roamer
        .publish_with::<Telemetry>(&report("roamer", 7), Delivery::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(next_connection(&mut events).await, (false, Some((1, 0))));
    tokio::time::timeout(Duration::from_secs(30), delivered)
        .await
        .expect("acknowledged")
        .unwrap();
    until("roamer's telemetry on c", async || {
        c.retained_raw(1, None)
            .is_some_and(|p| p.publisher == "roamer")
    })
    .await;
    assert!(b.device("roamer").await.is_some());
    until("c routing roamer to b", async || {
        matches!(c.device("roamer").await, Some(isml_runtime::rpc::Conn::Remote(r)) if r.node() == "b")
    })
    .await;
    // The same subscription, now served by b, gets c's publications.
    first_across(&publisher, &mut live).await;
    roamer.close("done").await;
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
    drop(nats);
}
