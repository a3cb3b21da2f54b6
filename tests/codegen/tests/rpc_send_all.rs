//! `Sink::send_all`: runs of items that take their credit and their place in
//! the outbound queue together arrive whole and in order, mixed with items
//! too large to batch, over `mem://` and TCP; flow control holds as item by
//! item (a consumer that stops reading holds at most its window and one
//! item); a caller that goes makes `send_all` fail.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, Sink, Status, Streaming};
use isml_runtime::server::Server;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, package = "tests.send_all")]
struct Ask {
    /// How many items.
    #[isml(tag = 1)]
    count: u32,
    /// Every `big_every`-th item carries 6,000 bytes (more than a batch
    /// takes); 0: none does.
    #[isml(tag = 2)]
    big_every: u32,
}

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 2, package = "tests.send_all")]
struct Item {
    #[isml(tag = 1)]
    seq: u32,
    #[isml(tag = 2)]
    pad: Vec<u8>,
}

#[isml_runtime::service(package = "tests.send_all")]
trait Feed {
    /// `count` items through `send_all`; with count 0, items until the
    /// caller goes.
    #[rpc(id = 1)]
    async fn feed(&self, call: Call, ask: Ask, out: Sink<Item>) -> Result<(), Status>;
}

/// The item `seq` of a feed.
fn item(seq: u32, big_every: u32) -> Item {
    let pad = if big_every != 0 && seq % big_every == big_every - 1 {
        vec![(seq % 251) as u8; 6_000]
    } else {
        vec![(seq % 251) as u8; (seq % 7) as usize]
    };
    Item { seq, pad }
}

#[derive(Default)]
struct State {
    failed: AtomicBool,
    failed_now: Notify,
}

#[derive(Clone, Default)]
struct Impl(Arc<State>);

impl Feed for Impl {
    async fn feed(&self, _call: Call, ask: Ask, out: Sink<Item>) -> Result<(), Status> {
        if ask.count == 0 {
            let r = out
                .send_all((0..).map(|seq| item(seq, ask.big_every)))
                .await;
            assert!(r.is_err(), "an endless feed ends by failing");
            self.0.failed.store(true, Ordering::SeqCst);
            self.0.failed_now.notify_one();
            return Ok(());
        }
        out.send_all((0..ask.count).map(|seq| item(seq, ask.big_every)))
            .await
            .map_err(|e| Status::internal(e.to_string()))
    }
}

async fn serve(url: &str, state: Arc<State>) -> Server {
    Server::builder()
        .listen(url)
        .dispatcher(Dispatcher::new().service(FeedServer::new(Impl(state))))
        .start()
        .await
        .unwrap()
}

async fn connect(url: &str, window: u32) -> Client {
    Client::builder(url)
        .stream_window(window)
        .connect()
        .await
        .unwrap()
}

/// Reads a whole feed and checks every item.
async fn read_all(client: &FeedClient, count: u32, big_every: u32) {
    let mut items = client.feed(&Ask { count, big_every }).await.unwrap();
    let mut n = 0u32;
    while let Some(r) = items.next().await {
        let got = r.unwrap();
        assert_eq!(got, item(n, big_every), "item {n}");
        n += 1;
    }
    assert_eq!(n, count);
}

#[tokio::test]
async fn every_item_arrives_in_order_over_mem_and_tcp() {
    let state = Arc::new(State::default());
    let server = serve("mem://send-all", state.clone()).await;
    let c = connect("mem://send-all", 64 * 1024).await;
    let client = FeedClient::new(&c);
    read_all(&client, 50_000, 0).await;
    read_all(&client, 5_000, 97).await;
    c.close("done").await;
    server.shutdown().await;

    let server = serve("tcp://127.0.0.1:0", state).await;
    let url = server.urls()[0].clone();
    // A window of a few items: most runs are cut short by the credit.
    for window in [64 * 1024, 100] {
        let c = connect(&url, window).await;
        let client = FeedClient::new(&c);
        read_all(&client, 30_000, 0).await;
        read_all(&client, 3_000, 13).await;
        c.close("done").await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_consumer_that_stops_reading_holds_at_most_its_window() {
    let server = serve("tcp://127.0.0.1:0", Arc::default()).await;
    let url = server.urls()[0].clone();
    let c = connect(&url, 1000).await;
    let client = FeedClient::new(&c);
    let mut items = client
        .feed(&Ask {
            count: 20_000,
            big_every: 0,
        })
        .await
        .unwrap();
    // Items cost 9 to 19 bytes each (their encoding and 8, wire format
    // §2.7): at most the window and the one item that may overdraw it,
    // never a whole run beyond it.
    let buffered = common::settled_buffer(&items).await;
    assert!(buffered <= 1000 / 9 + 1, "{buffered} items buffered");
    assert!(buffered >= 1000 / 19, "only {buffered} items buffered");
    let mut n = 0u32;
    while let Some(r) = items.next().await {
        assert_eq!(r.unwrap(), item(n, 0), "item {n}");
        n += 1;
        assert!(Streaming::buffered(&items) <= 1000 / 9 + 1);
    }
    assert_eq!(n, 20_000);
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn send_all_fails_once_the_caller_drops_the_stream() {
    let state = Arc::new(State::default());
    let server = serve("tcp://127.0.0.1:0", state.clone()).await;
    let url = server.urls()[0].clone();
    let c = connect(&url, 4096).await;
    let client = FeedClient::new(&c);
    let mut items = client
        .feed(&Ask {
            count: 0,
            big_every: 0,
        })
        .await
        .unwrap();
    for n in 0..1_000u32 {
        assert_eq!(items.next().await.unwrap().unwrap(), item(n, 0));
    }
    drop(items);
    tokio::time::timeout(Duration::from_secs(5), state.failed_now.notified())
        .await
        .expect("send_all fails after the caller dropped the stream");
    assert!(state.failed.load(Ordering::SeqCst));
    c.close("done").await;
    server.shutdown().await;
}
