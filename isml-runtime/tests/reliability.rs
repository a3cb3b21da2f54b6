//! Reliable sessions over real TCP through a proxy that cuts the connection:
//! at-least-once sends in both directions lose nothing and deliver nothing
//! twice, requests sent at least once run once, subscriptions go on across
//! a resume and are made again after the server expired the session.

#![cfg(feature = "tcp")]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isml_runtime::client::{Client, ClientEvent};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::pubsub::Channel;
use isml_runtime::server::Server;
use isml_runtime::session::{Delivery, DeliveryError, SendError};
use tokio::task::JoinSet;

use common::{AnyMessage, ChargeStarted, Fault, Reboot, StartCharging};
use proxy::{Proxy, fast_backoff, tcp_target, within};

/// Not retained: each publication counts.
struct Events;
impl Channel for Events {
    type Message = Fault;
    const ID: u32 = 3;
    const NAME: &'static str = "charging.v1.events";
    const RETAIN: bool = false;
    const KEYED: bool = false;
}

/// Records the codes of the faults a handler saw, and duplicates.
#[derive(Default)]
struct Seen {
    codes: Mutex<BTreeSet<u32>>,
    duplicates: AtomicU64,
}

impl Seen {
    fn record(&self, code: u32) {
        if !self.codes.lock().unwrap().insert(code) {
            self.duplicates.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn len(&self) -> usize {
        self.codes.lock().unwrap().len()
    }
}

fn fault(code: u32) -> Fault {
    Fault {
        code,
        message: format!("fault {code}"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_both_ways_survives_cuts_without_loss_or_duplicates() {
    const UP: u32 = 3_000;
    const DOWN: u32 = 1_000;
    let at_server = Arc::new(Seen::default());
    let seen = at_server.clone();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        // Every reconnection comes from the proxy's one address.
        .handshake_rate(None)
        .types(AnyMessage::types())
        .dispatcher(Dispatcher::new().on::<Fault, _, _>(move |_ctx, m| {
            let seen = seen.clone();
            async move {
                seen.record(m.code);
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let at_client = Arc::new(Seen::default());
    let seen = at_client.clone();
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-1")
        .types(AnyMessage::types())
        .dispatcher(Dispatcher::new().on::<Fault, _, _>(move |_ctx, m| {
            let seen = seen.clone();
            async move {
                seen.record(m.code);
                Ok(())
            }
        }))
        .reconnect(fast_backoff())
        .resume(true)
        .unacked_bytes(16 * 1024)
        .connect()
        .await
        .unwrap();
    let mut events = client.events().unwrap();

    // The link is cut every 40 ms while both sides send.
    let cutter = {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let cut = proxy.cut.clone();
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(40)).await;
                let _ = cut.send(());
            }
        });
        (stop, task)
    };
    let up = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for code in 0..UP {
                handles.push(
                    client
                        .send_with(&fault(code), Delivery::AtLeastOnce)
                        .await
                        .expect("queued"),
                );
            }
            for h in handles {
                h.await.expect("acknowledged");
            }
        })
    };
    let down = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for code in 0..DOWN {
                // Whichever session of the device is current (or the last).
                let session = loop {
                    if let Some(s) = server.session_by_device("cabinet-1") {
                        break s;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                };
                match session.send_with(&fault(code), Delivery::AtLeastOnce).await {
                    Ok(h) => handles.push(h),
                    Err(e) => panic!("server send {code}: {e}"),
                }
            }
            for h in handles {
                h.await.expect("acknowledged by the device");
            }
        })
    };
    within("device -> server", 60, up).await.unwrap();
    within("server -> device", 60, down).await.unwrap();
    cutter.0.store(true, Ordering::SeqCst);
    cutter.1.await.unwrap();

    // Acknowledged means handled: every message, once.
    assert_eq!(at_server.len(), UP as usize, "server saw every message");
    assert_eq!(at_server.duplicates.load(Ordering::SeqCst), 0);
    within("device saw all", 10, async {
        while at_client.len() < DOWN as usize {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(at_client.duplicates.load(Ordering::SeqCst), 0);
    let stats = client.link_stats().unwrap();
    assert!(stats.resumes > 0, "the link was cut and resumed: {stats:?}");
    assert_eq!(stats.unacked, 0);
    let rs = server.resume_stats();
    assert!(rs.resumed > 0, "{rs:?}");
    // Every reconnection resumed the same session.
    let mut resumed = 0;
    while let Ok(e) = events.try_recv() {
        if let ClientEvent::Connected { resumed: r, .. } = e {
            assert!(r, "a reconnection did not resume");
            resumed += 1;
        }
    }
    assert!(resumed > 0);
    client.close("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_at_least_once_run_once_across_cuts() {
    const CALLS: u32 = 300;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        // Every reconnection comes from the proxy's one address.
        .handshake_rate(None)
        .types(AnyMessage::types())
        .dispatcher(
            Dispatcher::new().on_request::<StartCharging, ChargeStarted, _, _>(move |_ctx, m| {
                let runs = r.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Some handlers outlive the connection that brought them.
                    if m.slot % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    Ok(ChargeStarted {
                        slot: m.slot,
                        eta_s: m.max_current_ma,
                        refused: None,
                    })
                }
            }),
        )
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-2")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .resume(true)
        .request_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let cuts = Arc::new(AtomicU32::new(0));
    let cutter = {
        let cut = proxy.cut.clone();
        let cuts = cuts.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(25)).await;
                let _ = cut.send(());
                cuts.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut calls = JoinSet::new();
    for i in 0..CALLS {
        let client = client.clone();
        calls.spawn(async move {
            let req = StartCharging {
                slot: (i % 250) as u8,
                target_soc_percent: 80,
                max_current_ma: Some(i),
            };
            let reply: ChargeStarted = client
                .request_with(&req, Delivery::AtLeastOnce)
                .await
                .unwrap_or_else(|e| panic!("call {i}: {e}"));
            assert_eq!(reply.eta_s, Some(i), "the reply to call {i}");
        });
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    within("calls", 60, async {
        while let Some(r) = calls.join_next().await {
            r.unwrap();
        }
    })
    .await;
    cutter.abort();
    let _ = cutter.await;
    assert!(cuts.load(Ordering::SeqCst) > 3, "the link was cut");
    assert_eq!(runs.load(Ordering::SeqCst), CALLS, "each handler ran once");
    client.close("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_go_on_across_a_resume_and_are_made_again_after_expiry() {
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        // Every reconnection comes from the proxy's one address.
        .handshake_rate(None)
        .types(AnyMessage::types())
        .channel::<Events>()
        .session_expiry(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let subscriber = Client::builder(&proxy.url)
        .device_id("dashboard")
        .reconnect(fast_backoff())
        .resume(true)
        .connect()
        .await
        .unwrap();
    let mut events = subscriber.events().unwrap();
    let mut sub = subscriber.subscribe::<Events>().await.unwrap();
    let publisher = Client::builder(server.urls()[0].clone())
        .device_id("cabinet-3")
        .connect()
        .await
        .unwrap();

    // Cut: the client resumes; the subscription is the same one.
    proxy.cut();
    let connected = within("resumed", 10, async {
        loop {
            match events.recv().await.unwrap() {
                ClientEvent::Connected { resumed, .. } => break resumed,
                _ => continue,
            }
        }
    })
    .await;
    assert!(connected, "reconnected within the expiry: resumed");
    publisher.publish::<Events>(&fault(1)).await.unwrap();
    let p = within("delivery after resume", 10, sub.next())
        .await
        .unwrap();
    assert_eq!(p.value.code, 1);
    assert_eq!(server.resume_stats().resumed, 1);

    // Cut and stay away past the expiry: the server forgets the session,
    // and the client subscribes again by itself.
    proxy.refuse(true);
    proxy.cut();
    within("disconnected", 10, async {
        loop {
            if let ClientEvent::Disconnected { .. } = events.recv().await.unwrap() {
                break;
            }
        }
    })
    .await;
    within("expired", 10, async {
        while server.resume_stats().expired == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    proxy.refuse(false);
    let (resumed, subscriptions) = within("resubscribed", 10, async {
        let mut resumed = None;
        loop {
            match events.recv().await.unwrap() {
                ClientEvent::Connected { resumed: r, .. } => resumed = Some(r),
                ClientEvent::Resubscribed {
                    subscriptions,
                    failed,
                } => {
                    assert_eq!(failed, 0);
                    break (resumed, subscriptions);
                }
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(resumed, Some(false), "after expiry: a new session");
    assert_eq!(subscriptions, 1);
    publisher.publish::<Events>(&fault(2)).await.unwrap();
    let p = within("delivery after resubscribe", 10, sub.next())
        .await
        .unwrap();
    assert_eq!(p.value.code, 2);
    subscriber.close("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_needs_a_reliable_session_and_fails_when_closed() {
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        // Every reconnection comes from the proxy's one address.
        .handshake_rate(None)
        .types(AnyMessage::types())
        .start()
        .await
        .unwrap();
    let plain = Client::builder(server.urls()[0].clone())
        .types(AnyMessage::types())
        .connect()
        .await
        .unwrap();
    let e = plain
        .send_with(&Reboot { delay_s: 1 }, Delivery::AtLeastOnce)
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Unreliable { .. }), "{e}");
    assert!(e.to_string().contains("resume"), "{e}");

    // Queued while the server is unreachable, then the client is closed:
    // the handle says the message was not acknowledged.
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = Client::builder(&proxy.url)
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .resume(true)
        .connect()
        .await
        .unwrap();
    proxy.refuse(true);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let handle = client
        .send_with(&Reboot { delay_s: 2 }, Delivery::AtLeastOnce)
        .await
        .unwrap();
    client.close("shutting down").await;
    let r = within("handle", 5, handle).await;
    assert!(
        matches!(&r, Err(DeliveryError::Lost { reason }) if reason.contains("client closed")),
        "{r:?}"
    );
}

/// A server recording the faults it handles, in order.
async fn recording_server(expiry: Duration) -> (Server, Arc<Mutex<Vec<u32>>>) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        // Every reconnection comes from the proxy's one address.
        .handshake_rate(None)
        .types(AnyMessage::types())
        .session_expiry(expiry)
        .dispatcher(Dispatcher::new().on::<Fault, _, _>(move |_ctx, m| {
            let o = o.clone();
            async move {
                o.lock().unwrap().push(m.code);
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    (server, order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_outbox_sends_by_priority_keeps_the_latest_value_and_drops_the_expired() {
    use isml_runtime::outbox::Outbox;
    use isml_runtime::session::SendOptions;

    let (server, order) = recording_server(Duration::from_secs(60)).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-4")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .outbox(Outbox::memory().max_messages(10_000))
        .connect()
        .await
        .unwrap();
    proxy.refuse(true);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let plain = SendOptions::new();
    let mut handles = vec![
        client.send_with_options(&fault(1), &plain).await.unwrap(),
        client.send_with_options(&fault(2), &plain).await.unwrap(),
    ];
    handles.push(
        client
            .send_with_options(&fault(100), &SendOptions::new().priority(5))
            .await
            .unwrap(),
    );
    // A day offline: 1,000 statuses, one key; only the last one leaves.
    let mut superseded = 0;
    let mut last = None;
    for code in 1_000..2_000 {
        let h = client
            .send_with_options(&fault(code), &SendOptions::new().latest("status"))
            .await
            .unwrap();
        if let Some(previous) = last.replace(h) {
            assert_eq!(previous.await, Err(DeliveryError::Superseded));
            superseded += 1;
        }
    }
    handles.push(last.unwrap());
    let expired = client
        .send_with_options(
            &fault(7),
            &SendOptions::new().ttl(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    assert_eq!(within("ttl", 5, expired).await, Err(DeliveryError::Expired));
    assert_eq!(superseded, 999);
    proxy.refuse(false);
    for h in handles {
        within("acknowledged", 10, h).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![100, 1, 2, 1_999]);
    let stats = client.link_stats().unwrap();
    assert_eq!((stats.expired, stats.superseded), (1, 999));
    client.close("done").await;
}

/// The device process of `a_device_killed_mid_stream_loses_nothing`: sends
/// faults at least once through its outbox and prints each one queued.
#[cfg(feature = "store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_process_for_the_kill_test() {
    use std::io::Write;

    use isml_runtime::outbox::Outbox;
    let (Ok(url), Ok(path)) = (
        std::env::var("ISML_KILL_TEST_URL"),
        std::env::var("ISML_KILL_TEST_OUTBOX"),
    ) else {
        // Run by the parent test only.
        return;
    };
    let client = Client::builder(url)
        .device_id("cabinet-kill")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .outbox(Outbox::open(&path).unwrap())
        .connect()
        .await
        .unwrap();
    let mut out = std::io::stdout();
    for code in 0.. {
        // Queued durably; not waiting for the acknowledgement.
        drop(
            client
                .send_with(&fault(code), Delivery::AtLeastOnce)
                .await
                .unwrap(),
        );
        writeln!(out, "queued {code}").unwrap();
        out.flush().unwrap();
        if code % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(feature = "store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_mid_stream_loses_nothing() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use isml_runtime::outbox::Outbox;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let (server, order) = recording_server(Duration::from_secs(60)).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    // The link is cut every 30 ms while the device sends.
    let cutter = {
        let cut = proxy.cut.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = cut.send(());
            }
        })
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["device_process_for_the_kill_test", "--exact", "--nocapture"])
        .env("ISML_KILL_TEST_URL", &proxy.url)
        .env("ISML_KILL_TEST_OUTBOX", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Kill(child);
    // Read until 2,000 messages are queued, then SIGKILL mid-stream.
    let queued = tokio::task::spawn_blocking(move || {
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("queued ") {
                let n: u32 = n.parse().unwrap();
                last = Some(n);
                if n >= 2_000 {
                    break;
                }
            }
        }
        last
    });
    let queued = within("child queued", 60, queued).await.unwrap().unwrap();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // Stopped for certain (an abort lets a poll under way finish).
    cutter.abort();
    let _ = cutter.await;
    let before = order.lock().unwrap().len();

    // Restarted from its outbox: everything it had queued arrives.
    let outbox = Outbox::open(&path).unwrap();
    let restored = outbox.restored();
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-kill")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .outbox(outbox)
        .connect()
        .await
        .unwrap();
    within("all delivered", 30, async {
        loop {
            let seen: BTreeSet<u32> = order.lock().unwrap().iter().copied().collect();
            if (0..=queued).all(|c| seen.contains(&c)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("outbox empty", 10, async {
        while client.link_stats().unwrap().unacked + client.link_stats().unwrap().queued > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    eprintln!(
        "kill test: {queued} queued before SIGKILL, {before} handled before it, {restored} restored from the outbox"
    );
    client.close("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_sent_at_least_once_reach_subscribers_once_across_cuts() {
    const N: u32 = 2_000;
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .handshake_rate(None)
        .types(AnyMessage::types())
        .channel::<Events>()
        .start()
        .await
        .unwrap();
    let subscriber = Client::builder(server.urls()[0].clone())
        .device_id("dashboard")
        .connect()
        .await
        .unwrap();
    let mut sub = subscriber.subscribe::<Events>().await.unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let publisher = Client::builder(&proxy.url)
        .device_id("cabinet-5")
        .reconnect(fast_backoff())
        .resume(true)
        .connect()
        .await
        .unwrap();
    let cutter = {
        let cut = proxy.cut.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = cut.send(());
            }
        })
    };
    // Read while publishing (a subscription's queue is bounded).
    let reader = tokio::spawn(async move {
        let seen = Seen::default();
        while seen.len() < N as usize {
            // A stall says why: deliveries dropped by the client's bounded
            // queue, or by the server's for this subscriber.
            let p = match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
                Ok(p) => p.expect("subscription open"),
                Err(_) => panic!(
                    "{} of {N} delivered, then nothing for 20 s; dropped by the client: {}",
                    seen.len(),
                    sub.dropped()
                ),
            };
            seen.record(p.value.code);
        }
        // Nothing more arrives: no duplicate was published.
        let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
        assert!(extra.is_err(), "a duplicate delivery: {extra:?}");
        seen
    });
    let mut handles = Vec::new();
    for code in 0..N {
        handles.push(
            publisher
                .publish_with::<Events>(&fault(code), Delivery::AtLeastOnce)
                .await
                .unwrap(),
        );
    }
    for h in handles {
        within("acknowledged", 60, h).await.unwrap();
    }
    cutter.abort();
    let _ = cutter.await;
    let seen = within("all delivered", 30, reader).await.unwrap();
    assert_eq!(seen.duplicates.load(Ordering::SeqCst), 0);
    assert!(publisher.link_stats().unwrap().resumes > 0);
    publisher.close("done").await;
}
