//! `[once]` rpcs (`isml-schema/tests/fixtures/valid/rpc_once.isml`) across
//! forced reconnects, over real TCP through a proxy that cuts connections:
//!
//! - 1,000 calls of a unary `[once]` method, each with a cut around it
//!   (while the handler runs, before the request is written, before the
//!   answer is read), run exactly 1,000 times, and each gets its own answer;
//! - a one-way `[once]` method likewise;
//! - a `[once]` call received while the callee had no place for another
//!   handler still runs when the connection breaks;
//! - the same method without `[once]` fails with a disconnect error and is
//!   not sent again;
//! - without a reliable state, `[once]` is at most once;
//! - a caller that gives up still cancels a `[once]` call;
//! - a derived twin of the service has the same descriptors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isml_codegen_tests::fixtures::rpc_once::{
    AnyMessage, Billing, BillingClient, BillingServer, Charge, Receipt,
};
use isml_runtime::client::{Backoff, Client, ClientEvent};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, CallError, Code, ServiceDescriptor, Status};
use isml_runtime::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

/// `work_ms` that holds the handler until the test releases it.
const HOLD: u32 = u32::MAX;

/// What the handlers did.
struct Ledger {
    /// Handler runs started.
    executions: AtomicU64,
    /// Of them, those that ran to their end.
    finished: AtomicU64,
    /// Those dropped before their end (cancelled).
    cancelled: AtomicU64,
    /// Runs per call (`Charge::n`).
    runs: Mutex<BTreeMap<u32, u32>>,
    /// Tells the test which call started.
    started: mpsc::UnboundedSender<u32>,
    /// Lets held handlers go on.
    release: Semaphore,
}

impl Ledger {
    fn new() -> (Arc<Ledger>, mpsc::UnboundedReceiver<u32>) {
        let (started, rx) = mpsc::unbounded_channel();
        let ledger = Ledger {
            executions: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            runs: Mutex::new(BTreeMap::new()),
            started,
            release: Semaphore::new(0),
        };
        (Arc::new(ledger), rx)
    }

    /// One execution of call `req.n`.
    async fn run(&self, req: Charge) -> Receipt {
        /// Counts a run dropped before its end.
        struct Unfinished<'a>(&'a AtomicU64, bool);
        impl Drop for Unfinished<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let executions = self.executions.fetch_add(1, Ordering::SeqCst) + 1;
        *self.runs.lock().unwrap().entry(req.n).or_default() += 1;
        let mut unfinished = Unfinished(&self.cancelled, false);
        let _ = self.started.send(req.n);
        match req.work_ms {
            HOLD => self.release.acquire().await.expect("never closed").forget(),
            0 => {}
            ms => tokio::time::sleep(Duration::from_millis(ms.into())).await,
        }
        unfinished.1 = true;
        self.finished.fetch_add(1, Ordering::SeqCst);
        Receipt {
            n: req.n,
            executions,
        }
    }

    fn runs_of(&self, n: u32) -> u32 {
        self.runs.lock().unwrap().get(&n).copied().unwrap_or(0)
    }

    /// Calls that did not run exactly once, among `0..calls`.
    fn not_once(&self, calls: u32) -> Vec<(u32, u32)> {
        let runs = self.runs.lock().unwrap();
        (0..calls)
            .map(|n| (n, runs.get(&n).copied().unwrap_or(0)))
            .filter(|&(_, r)| r != 1)
            .collect()
    }
}

struct Imp(Arc<Ledger>);

impl Billing for Imp {
    async fn charge(&self, _call: Call, req: Charge) -> Result<Receipt, Status> {
        Ok(self.0.run(req).await)
    }

    async fn charge_plain(&self, _call: Call, req: Charge) -> Result<Receipt, Status> {
        Ok(self.0.run(req).await)
    }

    async fn record(&self, _call: Call, req: Charge) {
        self.0.run(req).await;
    }

    async fn tally(&self, _call: Call, req: Charge) -> Result<Receipt, Status> {
        Ok(self.0.run(req).await)
    }
}

/// A TCP proxy whose connections can be cut (both sockets dropped, as when
/// a modem loses its carrier), which can refuse new connections, and which
/// can swallow what the server sends on the current connection (so that an
/// answer is written but never read).
struct Proxy {
    url: String,
    cut: broadcast::Sender<()>,
    refusing: Arc<AtomicBool>,
    /// Connections made through the proxy; each is numbered from 1.
    connections: Arc<AtomicU64>,
    /// The connection whose bytes from the server are dropped (0: none).
    swallowing: Arc<AtomicU64>,
    swallowed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// What a pipe from the server drops: bytes of connection `.0` while
/// `.1` names it, counted in `.2`.
type Swallow = (u64, Arc<AtomicU64>, Arc<AtomicU64>);

/// Copies `from` to `to` until either ends, dropping what `swallow` says.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, swallow: Option<Swallow>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some((id, which, count)) = &swallow
            && which.load(Ordering::SeqCst) == *id
        {
            count.fetch_add(n as u64, Ordering::SeqCst);
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let (cut, _) = broadcast::channel::<()>(4);
        let refusing = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let swallowing = Arc::new(AtomicU64::new(0));
        let swallowed = Arc::new(AtomicU64::new(0));
        let (cut2, refusing2, connections2) = (cut.clone(), refusing.clone(), connections.clone());
        let (swallowing2, swallowed2) = (swallowing.clone(), swallowed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if refusing2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let mut stop = cut2.subscribe();
                let id = connections2.fetch_add(1, Ordering::SeqCst) + 1;
                let swallow = (id, swallowing2.clone(), swallowed2.clone());
                tokio::spawn(async move {
                    let (client_rx, client_tx) = inbound.into_split();
                    let (server_rx, server_tx) = outbound.into_split();
                    tokio::select! {
                        () = pipe(client_rx, server_tx, None) => {}
                        () = pipe(server_rx, client_tx, Some(swallow)) => {}
                        _ = stop.recv() => {}
                    }
                });
            }
        });
        Proxy {
            url,
            cut,
            refusing,
            connections,
            swallowing,
            swallowed,
            task,
        }
    }

    /// Drops every connection through the proxy.
    fn cut(&self) {
        let _ = self.cut.send(());
    }

    fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// From now on, what the server sends on the latest connection is
    /// dropped (later connections are not affected).
    fn swallow_latest(&self) {
        let latest = self.connections.load(Ordering::SeqCst);
        self.swallowing.store(latest, Ordering::SeqCst);
    }

    fn swallowed(&self) -> u64 {
        self.swallowed.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(ledger: Arc<Ledger>) -> Server {
    serve_with(ledger, 1024).await
}

/// A server whose sessions run at most `max_inflight` handlers at a time.
async fn serve_with(ledger: Arc<Ledger>, max_inflight: usize) -> Server {
    Server::builder()
        .listen("tcp://127.0.0.1:0")
        // Every reconnection comes from the proxy's one address.
        .handshake_rate(None)
        .types(AnyMessage::TYPES)
        .dispatcher(Dispatcher::new().service(BillingServer::new(Imp(ledger))))
        .max_inflight(max_inflight)
        .start()
        .await
        .unwrap()
}

fn tcp_target(server: &Server) -> String {
    server.urls()[0].trim_start_matches("tcp://").to_owned()
}

/// A client through `url` that reconnects at once; `resume`: with a
/// reliable state.
async fn client(url: &str, device: &str, resume: bool) -> Client {
    Client::builder(url)
        .device_id(device)
        .types(AnyMessage::TYPES)
        .reconnect(Backoff {
            initial: Duration::from_millis(2),
            max: Duration::from_millis(20),
            jitter: 0.5,
        })
        .resume(resume)
        .request_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap()
}

async fn within<T>(what: &str, secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"))
}

/// Waits (polling) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    within(what, 20, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Cuts the connection of `client` (once it has one) and waits until the
/// client saw it end, so that nothing the server writes afterwards can
/// reach it on that connection. `refuse`: new connections are refused
/// from then on.
async fn cut_and_wait(proxy: &Proxy, client: &Client, refuse: bool) {
    until("connected before the cut", || client.session().is_some()).await;
    let session = client.session().expect("connected");
    proxy.refuse(refuse);
    proxy.cut();
    until("the client saw the cut", || session.is_closed()).await;
}

/// The connection events since the last call: how many reconnections, and
/// whether every one resumed the session.
fn reconnections(events: &mut broadcast::Receiver<ClientEvent>) -> (u64, bool) {
    let (mut connected, mut all_resumed) = (0, true);
    loop {
        match events.try_recv() {
            Ok(ClientEvent::Connected { resumed, .. }) => {
                connected += 1;
                all_resumed &= resumed;
            }
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty) => return (connected, all_resumed),
            Err(e) => panic!("client events: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_call_runs_once_across_1000_forced_reconnects() {
    const CALLS: u32 = 1_000;
    let (ledger, mut started) = Ledger::new();
    let server = serve(ledger.clone()).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = client(&proxy.url, "payer", true).await;
    let mut events = client.events().unwrap();
    let billing = BillingClient::new(&client).with_timeout(Duration::from_secs(30));
    let call = |n: u32, work_ms: u32| {
        let billing = billing.clone();
        tokio::spawn(async move { billing.charge(&Charge { n, work_ms }).await })
    };
    // Calls per kind of cut: while the handler runs, before the request
    // is written, before the answer is read.
    let mut kinds = [0u32; 3];
    let mut reconnected = 0u64;
    for n in 0..CALLS {
        let kind = (n % 3) as usize;
        let answer = match kind {
            0 => {
                // The handler is running when the connection breaks; it
                // ends afterwards, and its answer waits for the session
                // that resumes this one.
                let pending = call(n, HOLD);
                assert_eq!(within("handler started", 20, started.recv()).await, Some(n));
                cut_and_wait(&proxy, &client, false).await;
                ledger.release.add_permits(1);
                within("answer", 30, pending).await.unwrap()
            }
            1 => {
                // The connection is gone before the call: it waits in the
                // reliable state and is written on the resumed session.
                cut_and_wait(&proxy, &client, true).await;
                let pending = call(n, 0);
                until("the call is queued", || {
                    client.link_stats().is_some_and(|s| s.queued > 0)
                })
                .await;
                assert_eq!(ledger.runs_of(n), 0, "call {n} ran before it was written");
                proxy.refuse(false);
                let answer = within("answer", 30, pending).await.unwrap();
                assert_eq!(started.recv().await, Some(n));
                answer
            }
            _ => {
                // The handler ran and its answer was written, but the
                // caller never reads it: the server writes it again on
                // the resumed session.
                proxy.swallow_latest();
                let before = proxy.swallowed();
                let pending = call(n, 0);
                assert_eq!(within("handler started", 20, started.recv()).await, Some(n));
                let finished = u64::from(n) + 1;
                until("the handler finished, the answer was written", || {
                    ledger.finished.load(Ordering::SeqCst) >= finished
                        && server.link_stats("payer").is_some_and(|l| l.unacked > 0)
                        && proxy.swallowed() > before
                })
                .await;
                cut_and_wait(&proxy, &client, false).await;
                within("answer", 30, pending).await.unwrap()
            }
        };
        let answer = answer.unwrap_or_else(|e| panic!("call {n}: {e}"));
        assert_eq!(answer.n, n, "the answer to call {n}");
        // Calls are made one after the other: the handler's count of its
        // executions, when it ran for call n, is n + 1 when nothing ran twice.
        assert_eq!(answer.executions, u64::from(n) + 1, "call {n}");
        kinds[kind] += 1;
        let (connected, all_resumed) = reconnections(&mut events);
        assert!(all_resumed, "call {n}: a reconnection did not resume");
        reconnected += connected;
    }

    assert_eq!(ledger.executions.load(Ordering::SeqCst), u64::from(CALLS));
    assert_eq!(
        ledger.not_once(CALLS),
        vec![],
        "calls that did not run once"
    );
    assert_eq!(ledger.cancelled.load(Ordering::SeqCst), 0);
    assert_eq!(kinds, [334, 333, 333]);
    let stats = client.link_stats().unwrap();
    // One forced reconnect per call (the last may still be under way).
    assert!(
        stats.resumes >= u64::from(CALLS) - 1,
        "resumes: {}",
        stats.resumes
    );
    assert!(reconnected >= u64::from(CALLS) - 1, "{reconnected}");
    let server_link = server.link_stats("payer").unwrap();
    // Every answer written but not read before the cut was written again
    // on the resumed session. (An answer of a handler cut while running
    // is written again too, unless the session was resumed before the
    // handler ended: then it simply goes on the new session.)
    assert!(
        server_link.resent >= u64::from(kinds[2]),
        "server resent {} answers, {} were written and not read before the cut",
        server_link.resent,
        kinds[2]
    );
    assert!(server.resume_stats().resumed >= u64::from(CALLS) - 1);
    eprintln!(
        "{CALLS} calls, {} executions; client link {stats:?}; server link {server_link:?}",
        ledger.executions.load(Ordering::SeqCst),
    );
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_one_way_call_runs_once_across_forced_reconnects() {
    const CALLS: u32 = 200;
    let (ledger, mut started) = Ledger::new();
    let server = serve(ledger.clone()).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = client(&proxy.url, "recorder", true).await;
    let billing = BillingClient::new(&client);
    for n in 0..CALLS {
        if n % 2 == 0 {
            // Cut while the handler runs.
            billing
                .record(&Charge { n, work_ms: HOLD })
                .await
                .unwrap_or_else(|e| panic!("call {n}: {e}"));
            assert_eq!(within("handler started", 20, started.recv()).await, Some(n));
            cut_and_wait(&proxy, &client, false).await;
            ledger.release.add_permits(1);
        } else {
            // Cut before the call is written.
            cut_and_wait(&proxy, &client, true).await;
            billing
                .record(&Charge { n, work_ms: 0 })
                .await
                .unwrap_or_else(|e| panic!("call {n}: {e}"));
            assert_eq!(ledger.runs_of(n), 0, "call {n} ran before it was written");
            proxy.refuse(false);
            assert_eq!(within("handler started", 20, started.recv()).await, Some(n));
        }
    }
    // Once every call is acknowledged, none can be sent again.
    until("every call acknowledged", || {
        client
            .link_stats()
            .is_some_and(|s| s.queued == 0 && s.unacked == 0)
    })
    .await;
    until("every handler finished", || {
        ledger.finished.load(Ordering::SeqCst) == u64::from(CALLS)
    })
    .await;
    assert_eq!(ledger.executions.load(Ordering::SeqCst), u64::from(CALLS));
    assert_eq!(
        ledger.not_once(CALLS),
        vec![],
        "calls that did not run once"
    );
    assert!(client.link_stats().unwrap().resumes >= u64::from(CALLS) - 1);
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_call_waiting_for_a_handler_place_when_the_connection_breaks_still_runs() {
    let (ledger, mut started) = Ledger::new();
    let server = serve_with(ledger.clone(), 1).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = client(&proxy.url, "waiter", true).await;
    let billing = BillingClient::new(&client).with_timeout(Duration::from_secs(30));
    let call = |n: u32, work_ms: u32| {
        let billing = billing.clone();
        tokio::spawn(async move { billing.charge(&Charge { n, work_ms }).await })
    };
    let first = call(1, HOLD);
    assert_eq!(within("handler started", 20, started.recv()).await, Some(1));
    // The second is received (and so will not be sent again), and waits
    // for the one place the first holds.
    let second = call(2, 0);
    until("the second call received", || {
        server.link_stats("waiter").is_some_and(|l| l.received >= 2)
    })
    .await;
    assert_eq!(ledger.runs_of(2), 0);
    // The connection breaks; the client comes back, and the server ends
    // the old session (replaced by the resumed one) while the second call
    // still waits for its place there.
    let old = server.session_by_device("waiter").unwrap();
    cut_and_wait(&proxy, &client, false).await;
    until("resumed", || client.session().is_some()).await;
    until("the old session ended", || old.is_closed()).await;
    // (The second call runs now, without a place: the places were the
    // old session's.)
    ledger.release.add_permits(1);
    let a = within("first answer", 20, first).await.unwrap().unwrap();
    let b = within("second answer", 20, second).await.unwrap().unwrap();
    assert_eq!((a.n, b.n), (1, 2));
    assert_eq!((ledger.runs_of(1), ledger.runs_of(2)), (1, 1));
    assert_eq!(ledger.executions.load(Ordering::SeqCst), 2);
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_once_a_call_cut_off_fails_and_is_not_sent_again() {
    let (ledger, mut started) = Ledger::new();
    let server = serve(ledger.clone()).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    // The same reliable client as above: only the method differs.
    let client = client(&proxy.url, "plain-payer", true).await;
    let billing = BillingClient::new(&client).with_timeout(Duration::from_secs(30));
    let pending = {
        let billing = billing.clone();
        tokio::spawn(async move {
            billing
                .charge_plain(&Charge {
                    n: 1,
                    work_ms: HOLD,
                })
                .await
        })
    };
    assert_eq!(within("handler started", 20, started.recv()).await, Some(1));
    cut_and_wait(&proxy, &client, false).await;
    let e = within("the call fails", 20, pending)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, CallError::Closed { .. }), "{e}");
    // The end of the session cancelled the handler.
    until("handler cancelled", || {
        ledger.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    // The client resumed the session, and did not send the call again.
    let answer = within("a call after the reconnect", 20, async {
        billing.charge_plain(&Charge { n: 2, work_ms: 0 }).await
    })
    .await
    .unwrap();
    assert_eq!(answer.executions, 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ledger.runs_of(1), 1);
    assert_eq!(ledger.executions.load(Ordering::SeqCst), 2);
    assert!(client.link_stats().unwrap().resumes >= 1);
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_reliable_state_once_is_at_most_once() {
    let (ledger, mut started) = Ledger::new();
    let server = serve(ledger.clone()).await;
    let proxy = Proxy::start(tcp_target(&server)).await;
    let client = client(&proxy.url, "no-resume", false).await;
    assert!(client.link_stats().is_none());
    let billing = BillingClient::new(&client).with_timeout(Duration::from_secs(30));
    let pending = {
        let billing = billing.clone();
        tokio::spawn(async move {
            billing
                .charge(&Charge {
                    n: 1,
                    work_ms: HOLD,
                })
                .await
        })
    };
    assert_eq!(within("handler started", 20, started.recv()).await, Some(1));
    cut_and_wait(&proxy, &client, false).await;
    let e = within("the call fails", 20, pending)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, CallError::Closed { .. }), "{e}");
    until("handler cancelled", || {
        ledger.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    let answer = within("a call after the reconnect", 20, async {
        billing.charge(&Charge { n: 2, work_ms: 0 }).await
    })
    .await
    .unwrap();
    assert_eq!((answer.n, answer.executions), (2, 2));
    assert_eq!(ledger.runs_of(1), 1);
    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_still_cancels_a_once_call() {
    let (ledger, mut started) = Ledger::new();
    let server = serve(ledger.clone()).await;
    let client = client(&server.urls()[0], "impatient", true).await;
    let billing = BillingClient::new(&client).with_timeout(Duration::from_secs(60));
    let pending = {
        let billing = billing.clone();
        tokio::spawn(async move {
            billing
                .charge(&Charge {
                    n: 1,
                    work_ms: HOLD,
                })
                .await
        })
    };
    assert_eq!(within("handler started", 20, started.recv()).await, Some(1));
    // The caller's future is dropped long before the deadline: its cancel
    // stops the handler.
    pending.abort();
    until("handler cancelled", || {
        ledger.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    // Its own deadline too.
    let e = billing
        .with_timeout(Duration::from_millis(200))
        .charge(&Charge {
            n: 2,
            work_ms: HOLD,
        })
        .await
        .unwrap_err();
    // The caller's timer or the callee's copy of the deadline, whichever
    // fires first.
    let deadline = match &e {
        CallError::Timeout { .. } => true,
        CallError::Status { status, .. } => status.code() == Code::DeadlineExceeded,
        _ => false,
    };
    assert!(deadline, "{e}");
    until("handler cancelled", || {
        ledger.cancelled.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(ledger.finished.load(Ordering::SeqCst), 0);
    client.close("done").await;
    server.shutdown().await;
}

/// The derived twin of `service Billing`.
mod derived {
    use isml_runtime::rpc::{Call, Status};

    #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
    #[isml(id = 1, package = "fixtures.rpc_once")]
    pub(crate) struct Charge {
        #[isml(tag = 1)]
        pub(crate) n: u32,
        #[isml(tag = 2)]
        pub(crate) work_ms: u32,
    }

    #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
    #[isml(id = 2, package = "fixtures.rpc_once")]
    pub(crate) struct Receipt {
        #[isml(tag = 1)]
        pub(crate) n: u32,
        #[isml(tag = 2)]
        pub(crate) executions: u64,
    }

    #[isml_runtime::service(package = "fixtures.rpc_once")]
    pub(crate) trait Billing {
        #[rpc(id = 1, once)]
        async fn charge(&self, call: Call, req: Charge) -> Result<Receipt, Status>;
        #[rpc(id = 2)]
        async fn charge_plain(&self, call: Call, req: Charge) -> Result<Receipt, Status>;
        #[rpc(once, id = 3)]
        async fn record(&self, call: Call, req: Charge);
        #[rpc(id = 4, once)]
        async fn tally(&self, call: Call, req: Charge) -> Result<Receipt, Status>;
    }
}

#[test]
fn derived_and_generated_once_descriptors_match() {
    let g: &ServiceDescriptor = BillingClient::descriptor();
    let d: &ServiceDescriptor = derived::BillingClient::descriptor();
    assert_eq!(d.name, g.name);
    let once: Vec<(u32, bool)> = g.methods.iter().map(|m| (m.id, m.once)).collect();
    assert_eq!(once, [(1, true), (2, false), (3, true), (4, true)]);
    assert_eq!(d.methods.len(), g.methods.len());
    for (dm, gm) in d.methods.iter().zip(g.methods) {
        assert_eq!(
            (dm.id, dm.name, dm.full_name, dm.kind, dm.once),
            (gm.id, gm.name, gm.full_name, gm.kind, gm.once)
        );
        assert_eq!(dm.fingerprint(), gm.fingerprint(), "{}", gm.name);
    }
    // `once` is not part of the fingerprint: `charge` and `charge_plain`
    // take and give the same types.
    assert_eq!(g.methods[0].fingerprint(), g.methods[1].fingerprint());
    // The reflection service's schema text says it.
    let text = isml_runtime::rpc::schema_text(&[g]);
    assert!(
        text.contains("rpc charge(Charge) -> Receipt = 1 [once];"),
        "{text}"
    );
    assert!(
        text.contains("rpc charge_plain(Charge) -> Receipt = 2;"),
        "{text}"
    );
    assert!(text.contains("rpc record(Charge) = 3 [once];"), "{text}");
}
