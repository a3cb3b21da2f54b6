//! Regression tests for faults of the reliable sessions that the
//! deterministic simulation (`tests/sim`, `docs/reliability.md`) found,
//! each replayed here over real TCP, with the seed that first showed it.

#![cfg(feature = "tcp")]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isml_runtime::client::{Client, ClientEvent};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::Delivery;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

use common::{AnyMessage, ChargeStarted, Fault, StartCharging};
use proxy::{fast_backoff, tcp_target, within};

/// A TCP proxy whose connections can be cut, stalled (nothing is read on
/// either side until it goes on, as when a 2G link stops moving without
/// breaking), pointed at another server, and which can refuse newcomers.
struct Proxy {
    url: String,
    target: Arc<Mutex<String>>,
    cut: broadcast::Sender<()>,
    /// Each open connection's stall switch.
    pipes: Arc<Mutex<Vec<watch::Sender<bool>>>>,
    /// New connections start stalled.
    stall_new: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Copies one direction, reading nothing while the proxy is stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while *stalled.borrow_and_update() {
            if stalled.changed().await.is_err() {
                return;
            }
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = stalled.changed() => continue,
        };
        match n {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let target = Arc::new(Mutex::new(target));
        let (cut, _) = broadcast::channel::<()>(4);
        let pipes: Arc<Mutex<Vec<watch::Sender<bool>>>> = Arc::default();
        let stall_new = Arc::new(AtomicBool::new(false));
        let refusing = Arc::new(AtomicBool::new(false));
        let (t, c, p, n, r) = (
            target.clone(),
            cut.clone(),
            pipes.clone(),
            stall_new.clone(),
            refusing.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if r.load(Ordering::SeqCst) {
                    continue;
                }
                let to = t.lock().unwrap().clone();
                let Ok(outbound) = TcpStream::connect(&to).await else {
                    continue;
                };
                let (switch, stalled) = watch::channel(n.load(Ordering::SeqCst));
                p.lock().unwrap().push(switch);
                let mut stop = c.subscribe();
                tokio::spawn(async move {
                    let (ir, iw) = inbound.into_split();
                    let (or, ow) = outbound.into_split();
                    tokio::select! {
                        _ = futures_util::future::join(
                            pump(ir, ow, stalled.clone()),
                            pump(or, iw, stalled),
                        ) => {}
                        _ = stop.recv() => {}
                    }
                });
            }
        });
        Proxy {
            url,
            target,
            cut,
            pipes,
            stall_new,
            refusing,
            task,
        }
    }

    fn cut(&self) {
        let _ = self.cut.send(());
    }

    fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// Stalls (or lets go on) every connection open now.
    fn stall(&self, on: bool) {
        for p in self.pipes.lock().unwrap().iter() {
            p.send_replace(on);
        }
    }

    /// Whether connections made from now on start stalled.
    fn stall_new(&self, on: bool) {
        self.stall_new.store(on, Ordering::SeqCst);
    }

    /// Connections made so far.
    fn connections(&self) -> usize {
        self.pipes.lock().unwrap().len()
    }

    fn point_at(&self, target: String) {
        *self.target.lock().unwrap() = target;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fault(code: u32) -> Fault {
    Fault {
        code,
        message: format!("fault {code}"),
        ..Default::default()
    }
}

/// Waits for the next `Connected` event; whether it resumed.
async fn next_connected(events: &mut broadcast::Receiver<ClientEvent>) -> bool {
    loop {
        if let ClientEvent::Connected { resumed, .. } = events.recv().await.unwrap() {
            return resumed;
        }
    }
}

/// Seed 7: a device restarted from its durable outbox resumed its session
/// but numbered new messages from 1, below what the server had received;
/// the server acknowledged them as duplicates and never handled them.
#[cfg(feature = "store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_restarted_from_its_outbox_numbers_new_messages_above_what_the_server_has() {
    use std::collections::BTreeSet;

    use isml_runtime::outbox::Outbox;

    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let s = seen.clone();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .session_expiry(Duration::from_secs(60))
        .dispatcher(Dispatcher::new().on::<Fault, _, _>(move |_ctx, m| {
            let s = s.clone();
            async move {
                s.lock().unwrap().insert(m.code);
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");

    // One run of the device process: its own runtime, dropped at the end
    // without closing the client, as when the process stops. Returns
    // whether the session was resumed.
    let run = |codes: std::ops::Range<u32>| {
        let (url, path) = (url.clone(), path.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The previous run's store may still be closing.
                let outbox = loop {
                    match Outbox::open(&path) {
                        Ok(o) => break o,
                        Err(e) => {
                            assert!(e.to_string().contains("already open"), "{e}");
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                };
                let client = Client::builder(url)
                    .device_id("cabinet-restarts")
                    .types(AnyMessage::types())
                    .reconnect(fast_backoff())
                    .outbox(outbox)
                    .connect()
                    .await
                    .unwrap();
                let resumed = client.link_stats().unwrap().resumes > 0;
                for code in codes {
                    let h = client
                        .send_with(&fault(code), Delivery::AtLeastOnce)
                        .await
                        .unwrap();
                    within("acknowledged", 10, h).await.unwrap();
                }
                resumed
            })
        })
    };
    let first = run(0..20);
    assert!(
        !tokio::task::spawn_blocking(move || first.join().unwrap())
            .await
            .unwrap()
    );
    within("the server noticed the end", 10, async {
        while server.session_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let second = run(20..30);
    let resumed = within(
        "second run",
        30,
        tokio::task::spawn_blocking(move || second.join().unwrap()),
    )
    .await
    .unwrap();
    assert!(resumed, "restarted within the expiry: the session resumed");
    // Acknowledged means handled, after the restart too.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, (0..30).collect::<BTreeSet<u32>>());
}

/// Seed 38: the server restarted while the device's reply to its request
/// waited for an acknowledgement. On the next (not resumed) session the
/// device sent that reply again, and the new server, whose requests are
/// numbered from the start again, took it for the answer to its own first
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_request_of_a_lost_state_answers_nothing() {
    let start_server = || async {
        Server::builder()
            .listen("tcp://127.0.0.1:0")
            .types(AnyMessage::types())
            .start()
            .await
            .unwrap()
    };
    let first = start_server().await;
    let proxy = Proxy::start(tcp_target(&first)).await;
    // The device takes a while to answer, long enough for the server to go.
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-answers")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .resume(true)
        .dispatcher(
            Dispatcher::new().on_request::<StartCharging, ChargeStarted, _, _>(
                |_ctx, m| async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(ChargeStarted {
                        slot: m.slot,
                        eta_s: None,
                        refused: None,
                    })
                },
            ),
        )
        .connect()
        .await
        .unwrap();
    let mut events = client.events().unwrap();
    let session = within("session on the first server", 10, async {
        loop {
            if let Some(s) = first.session_by_device("cabinet-answers") {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let ask = |slot: u8| StartCharging {
        slot,
        target_soc_percent: 80,
        max_current_ma: None,
    };
    tokio::spawn(async move {
        let _ = session
            .request_with::<ChargeStarted, StartCharging>(&ask(1), Delivery::AtLeastOnce)
            .await;
    });
    // While the device works on it, the server goes away with its state.
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.refuse(true);
    proxy.cut();
    first.shutdown().await;
    // The reply is made meanwhile, and waits for the next session.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = Arc::new(Mutex::new(None));
    let a = answer.clone();
    let second = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .on_open(move |s| {
            // The new state's first request, asked before the device's
            // first frame is read.
            let (s, a) = (s.clone(), a.clone());
            tokio::spawn(async move {
                let r = s
                    .request_with::<ChargeStarted, StartCharging>(&ask(2), Delivery::AtLeastOnce)
                    .await;
                *a.lock().unwrap() = Some(r.map(|r| r.slot).map_err(|e| e.to_string()));
            });
        })
        .start()
        .await
        .unwrap();
    proxy.point_at(tcp_target(&second));
    proxy.refuse(false);
    assert!(
        !within("reconnected", 10, next_connected(&mut events)).await,
        "a restarted server has no state to resume"
    );
    let session = within("session on the second server", 10, async {
        loop {
            if let Some(s) = second.session_by_device("cabinet-answers") {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The answer to the second request came, and no other reply.
    let got = within("answered", 10, async {
        loop {
            if let Some(got) = answer.lock().unwrap().clone() {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(got, Ok(2), "the answer to the request asked");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(session.stats().late_replies, 0, "a stale reply came");
    client.close("done").await;
}

/// Seeds 29, 51 and 59: the device's keep-alive expired during a stall, and
/// it wrote a close frame before giving the connection up. When the stall
/// ended the frame reached the server, which took it for the device
/// closing its session on purpose and dropped the state that the next
/// connection was to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_that_expires_in_a_stall_does_not_end_the_session_state() {
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .session_expiry(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-stalls")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .resume(true)
        .keepalive(Some(Duration::from_millis(100)))
        .connect()
        .await
        .unwrap();
    let mut events = client.events().unwrap();
    proxy.refuse(true);
    proxy.stall(true);
    within("keep-alive expired", 10, async {
        loop {
            if let ClientEvent::Disconnected { reason } = events.recv().await.unwrap() {
                assert!(reason.contains("keep-alive"), "{reason}");
                break;
            }
        }
    })
    .await;
    // The stall ends: what the device wrote last reaches the server.
    proxy.stall(false);
    within("the server noticed the end", 10, async {
        while server.session_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    proxy.refuse(false);
    assert!(
        within("reconnected", 10, next_connected(&mut events)).await,
        "the state was kept: the session resumed"
    );
    let rs = server.resume_stats();
    assert_eq!((rs.resumed, rs.not_found), (1, 0), "{rs:?}");
    client.close("done").await;
}

/// Seeds 176, 295 and 312: a handler that did not finish at once was
/// dropped when its session ended, and the message it handled had been
/// acknowledged already (an acknowledgement owed leaves with any frame
/// written): the peer dropped its copy, and the message was never
/// handled. Now the handler runs to its end, and the acknowledgement waits
/// for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_acknowledged_once_its_handler_ended_even_across_a_cut() {
    use common::Reboot;

    let done = Arc::new(Mutex::new(Vec::new()));
    let d = done.clone();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .session_expiry(Duration::from_secs(60))
        .dispatcher(Dispatcher::new().on::<Fault, _, _>(move |ctx, m| {
            let d = d.clone();
            let session = ctx.session().clone();
            async move {
                // Something to write meanwhile, for an acknowledgement to
                // go with.
                let _ = session.send(&Reboot { delay_s: 1 }).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                d.lock().unwrap().push(m.code);
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-slow")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .resume(true)
        .connect()
        .await
        .unwrap();
    let handle = client
        .send_with(&fault(1), Delivery::AtLeastOnce)
        .await
        .unwrap();
    let handle = tokio::spawn(handle);
    // The connection breaks while the handler runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut();
    within("acknowledged", 10, handle).await.unwrap().unwrap();
    let finished = done.lock().unwrap().clone();
    assert_eq!(finished, vec![1], "acknowledged before its handler ended");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*done.lock().unwrap(), vec![1], "handled once");
    client.close("done").await;
}

/// Seeds 3 and 352: a connection attempt that the client gave up on (its
/// handshake timed out) delivered its hello late, naming a state the server
/// had expired meanwhile. The server took it for a client that had lost its
/// state, replaced the live session the client had made since with one for
/// a connection that was gone, and told the live one its device id was
/// taken (code 12), after which a client stops reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_hello_of_an_abandoned_attempt_does_not_replace_the_live_session() {
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .session_expiry(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = Client::builder(&proxy.url)
        .device_id("cabinet-late")
        .types(AnyMessage::types())
        .reconnect(fast_backoff())
        .resume(true)
        .handshake_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut events = client.events().unwrap();
    // Away past the expiry: the server forgets the state.
    proxy.refuse(true);
    proxy.cut();
    within("expired", 10, async {
        while server.resume_stats().expired == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The next attempt stalls: its hello waits in the proxy while the
    // client gives up on it, and the attempt after it gets through.
    let before = proxy.connections();
    proxy.stall_new(true);
    proxy.refuse(false);
    within("an attempt stalls", 10, async {
        while proxy.connections() == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    proxy.stall_new(false);
    assert!(
        !within("reconnected", 10, next_connected(&mut events)).await,
        "the state had expired"
    );
    let live = within("session", 10, client.wait_session())
        .await
        .unwrap()
        .id();
    // The abandoned attempt's hello arrives now.
    proxy.stall(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.stats().replaced, 0, "the live session was replaced");
    assert_eq!(client.session().map(|s| s.id()), Some(live));
    while let Ok(e) = events.try_recv() {
        assert!(
            matches!(e, ClientEvent::Resubscribed { .. }),
            "the live session went on undisturbed: {e:?}"
        );
    }
    client.close("done").await;
}

/// Seed 1680: a device restarted from its durable outbox numbered its
/// requests from 1 again; the reply to a request of the process before,
/// still held by the server (or made again for a request the outbox kept),
/// answered a new request with the same correlation id.
#[cfg(feature = "store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_device_gets_the_answers_to_its_own_requests() {
    use isml_runtime::outbox::Outbox;

    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .session_expiry(Duration::from_secs(60))
        .dispatcher(
            Dispatcher::new().on_request::<StartCharging, ChargeStarted, _, _>(
                |_ctx, m| async move {
                    if m.slot == 1 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Ok(ChargeStarted {
                        slot: m.slot,
                        eta_s: None,
                        refused: None,
                    })
                },
            ),
        )
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let ask = |slot: u8| StartCharging {
        slot,
        target_soc_percent: 80,
        max_current_ma: None,
    };
    // Each run of the device process has a runtime of its own, dropped at
    // its end without closing the client. The first one stops while the
    // server works on its request.
    let run = move |slot: u8, wait: bool| {
        let (url, path) = (url.clone(), path.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let outbox = loop {
                    match Outbox::open(&path) {
                        Ok(o) => break o,
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                };
                let client = Client::builder(url)
                    .device_id("cabinet-asks")
                    .types(AnyMessage::types())
                    .reconnect(fast_backoff())
                    .outbox(outbox)
                    .connect()
                    .await
                    .unwrap();
                let request = ask(slot);
                let call = client
                    .request_with::<ChargeStarted, StartCharging>(&request, Delivery::AtLeastOnce);
                if wait {
                    Some(within("answered", 10, call).await.map(|r| r.slot))
                } else {
                    let _ = tokio::time::timeout(Duration::from_millis(100), call).await;
                    None
                }
            })
        })
    };
    let first = run(1, false);
    tokio::task::spawn_blocking(move || first.join().unwrap())
        .await
        .unwrap();
    // The first request's answer is made meanwhile, and waits for the
    // device to come back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = run(2, true);
    let answer = within(
        "second run",
        30,
        tokio::task::spawn_blocking(move || second.join().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        answer.map(|r| r.map_err(|e| e.to_string())),
        Some(Ok(2)),
        "the answer to the request asked"
    );
}
