//! The connection task: one loop per session reads, writes and runs handlers.
//! These tests pin down what that must never do: let two peers that both send
//! faster than they read block each other, let a handler that sends on its own
//! session wait for itself, or let a request overtake messages queued before it.
//! Their deadlines only catch a hang; a correct run ends far sooner.
#![cfg(feature = "runtime")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::Session;

use common::{AnyMessage, ChargeStarted, Reboot, StartCharging};

/// Far beyond what any of these tests needs; reached only on a deadlock.
const HANG: Duration = Duration::from_secs(60);

fn counting(counter: Arc<AtomicU64>) -> Dispatcher {
    Dispatcher::new().on::<Reboot, _, _>(move |_ctx, _m| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    })
}

async fn wait_for(counter: &AtomicU64, n: u64) {
    while counter.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn flood(session: Session, n: u32) {
    for i in 0..n {
        session.send(&Reboot { delay_s: i as u16 }).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_flooding_each_other_do_not_block_each_other() {
    // Each side sends several times what the pipe and the write buffers hold,
    // with small queues: both connection tasks must keep reading while their
    // own writes wait for the peer.
    const N: u32 = 60_000;
    let at_server = Arc::new(AtomicU64::new(0));
    let at_client = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen("mem://conn-flood")
        .types(AnyMessage::types())
        .dispatcher(counting(at_server.clone()))
        .outbound_queue(8)
        .start()
        .await
        .unwrap();
    let client = Client::builder("mem://conn-flood")
        .types(AnyMessage::types())
        .device_id("flood")
        .dispatcher(counting(at_client.clone()))
        .outbound_queue(8)
        .connect_session()
        .await
        .unwrap();
    let srv = server.session_by_device("flood").unwrap();
    tokio::time::timeout(HANG, async {
        let a = tokio::spawn(flood(client.clone(), N));
        let b = tokio::spawn(flood(srv.clone(), N));
        a.await.unwrap();
        b.await.unwrap();
        wait_for(&at_server, u64::from(N)).await;
        wait_for(&at_client, u64::from(N)).await;
    })
    .await
    .expect("the two peers blocked each other");
    assert_eq!(at_server.load(Ordering::SeqCst), u64::from(N));
    assert_eq!(at_client.load(Ordering::SeqCst), u64::from(N));
    assert_eq!(client.stats().frames_out, srv.stats().frames_in);
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn one_way_handler_may_send_more_than_its_queue_on_its_own_session() {
    // The server answers each Reboot with 100 Reboots on a queue of 4: the
    // handler waits for room that only its own connection task can make.
    let echoed = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen("mem://conn-echo")
        .types(AnyMessage::types())
        .outbound_queue(4)
        .dispatcher(Dispatcher::new().on::<Reboot, _, _>(|ctx, m| async move {
            for i in 0..100 {
                ctx.session()
                    .send(&Reboot {
                        delay_s: m.delay_s * 1000 + i,
                    })
                    .await
                    .map_err(|e| isml_runtime::dispatch::HandlerError::failed(e.to_string()))?;
            }
            Ok(())
        }))
        .start()
        .await
        .unwrap();
    let client = Client::builder("mem://conn-echo")
        .types(AnyMessage::types())
        .dispatcher(counting(echoed.clone()))
        .connect_session()
        .await
        .unwrap();
    for i in 0..5 {
        client.send(&Reboot { delay_s: i }).await.unwrap();
    }
    tokio::time::timeout(HANG, wait_for(&echoed, 500))
        .await
        .expect("the handler waited for itself");
    assert_eq!(echoed.load(Ordering::SeqCst), 500);
    let srv = server.sessions().pop().unwrap();
    assert_eq!(srv.stats().errors, 0);
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_overtakes_messages_sent_before_it() {
    // The reply carries how many Reboots the server had handled when the
    // request arrived: all of those sent before it, whichever way the request
    // left (written by the caller on an idle connection, or queued).
    let seen = Arc::new(AtomicU64::new(0));
    let count = seen.clone();
    let read = seen.clone();
    let server = Server::builder()
        .listen("mem://conn-order")
        .types(AnyMessage::types())
        .dispatcher(
            Dispatcher::new()
                .on::<Reboot, _, _>(move |_ctx, _m| {
                    count.fetch_add(1, Ordering::SeqCst);
                    std::future::ready(Ok(()))
                })
                .on_request::<StartCharging, ChargeStarted, _, _>(move |_ctx, m| {
                    let n = read.load(Ordering::SeqCst) as u32;
                    std::future::ready(Ok(ChargeStarted {
                        slot: m.slot,
                        eta_s: Some(n),
                        refused: None,
                    }))
                }),
        )
        .start()
        .await
        .unwrap();
    let client = Client::builder("mem://conn-order")
        .types(AnyMessage::types())
        .connect_session()
        .await
        .unwrap();
    let mut sent = 0u32;
    for round in 0..200u32 {
        // 0, 1, 2 … one-way messages right before the request.
        for _ in 0..round % 7 {
            client
                .send(&Reboot {
                    delay_s: sent as u16,
                })
                .await
                .unwrap();
            sent += 1;
        }
        let reply: ChargeStarted = tokio::time::timeout(
            HANG,
            client.request(&StartCharging {
                slot: 1,
                target_soc_percent: 50,
                max_current_ma: None,
            }),
        )
        .await
        .expect("request hung")
        .unwrap();
        assert_eq!(reply.eta_s, Some(sent), "round {round}");
    }
    client.close("done").await;
    server.shutdown().await;
}
