//! `isml serve --cluster`: a real `nats-server` (JetStream on, its store in
//! a temporary directory) and three `isml serve` nodes as child processes,
//! with `isml pub` / `isml sub` children, cabinets (the charging example's)
//! and an application node in the test process over TCP. Every child is
//! killed by a guard whatever happens; every wait is on a condition with a
//! generous bound.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use isml_examples::cabinet::Cabinet;
use isml_examples::charging::v1::{
    AnyMessage, ChargerClient, Fault, Reboot, StartCharging, channels,
};
use isml_runtime::client::{Backoff, Client};
use isml_runtime::cluster::NatsCluster;
use isml_runtime::server::Server as AppServer;

mod common;
use common::{Guard, Nats, Server, bin, schema_args, serve, serve_logged, wait_log};

fn publish(url: &str, channel: &str, args: &[&str]) -> Output {
    let out = bin()
        .arg("pub")
        .args(["--url", url, "--channel", channel])
        .args(schema_args())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("isml pub runs");
    assert!(
        out.status.success(),
        "isml pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn subscribe(url: &str, channel: &str, args: &[&str]) -> Guard {
    Guard(
        bin()
            .arg("sub")
            .args(["--url", url, "--channel", channel, "--count", "1"])
            .args(schema_args())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("isml sub runs"),
    )
}

fn line_of(mut sub: Guard) -> serde_json::Value {
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(sub.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(sub.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    let Some(line) = out.lines().next() else {
        panic!("isml sub printed nothing: {err}");
    };
    serde_json::from_str(line).expect("JSON")
}

/// Publishes a fault on `from` until an `isml sub` on `to` gets one (the
/// subscription reaches the other nodes asynchronously); returns its line.
fn cross(from: &str, to: &str, code: u32) -> serde_json::Value {
    let sub = subscribe(to, "charging.v1.faults", &[]);
    let mut sub = sub;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        publish(
            from,
            "charging.v1.faults",
            &["--json", &format!(r#"{{"message": "m{code}"}}"#)],
        );
        if sub.wait_timeout(Duration::from_millis(300)).is_some() {
            return line_of(sub);
        }
        assert!(
            Instant::now() < deadline,
            "no publication from {from} reached {to}"
        );
    }
}

/// The first publication an `isml sub` on `url` gets with `args`, retried
/// until `accept` takes it (values cross nodes asynchronously).
fn first_retained(
    url: &str,
    channel: &str,
    args: &[&str],
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut sub = subscribe(url, channel, args);
        if sub.wait_timeout(Duration::from_secs(2)).is_some() {
            let line = line_of(sub);
            if accept(&line) {
                return line;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no accepted value on {url} {channel} {args:?}"
        );
    }
}

/// `GET path` on a node's gateway (`--http`): the body of its 200 answer.
fn http_get(node: &Server, path: &str) -> String {
    let url = format!(
        "{}{path}",
        node.http.as_deref().expect("started with --http")
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(&url).await.expect("the gateway answers");
        assert_eq!(r.status(), 200, "GET {url}");
        r.text().await.unwrap()
    })
}

/// Waits until the gateway's `/api/status` reports `mode`, and returns
/// its `cluster` object.
fn until_mode(node: &Server, mode: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&http_get(node, "/api/status")).expect("JSON");
        if status["cluster"]["mode"] == mode {
            return status["cluster"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not report cluster mode {mode}: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one line of `/metrics` (`name{labels}`).
fn metric(node: &Server, line: &str) -> u64 {
    let metrics = http_get(node, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line} in:\n{metrics}"))
}

fn node(dir: &std::path::Path, nats: &str, id: &str) -> Server {
    serve(
        &dir.join(id),
        &["--cluster", nats, "--node-id", id, "--cluster-lease", "2s"],
    )
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// A cabinet with the fleet's reconnect behaviour: every node's URL, its
/// own node first; on every session it subscribes again to `faults` and
/// to variable `zz`, and it records `Reboot` messages sent to it.
struct Cab {
    client: Client,
    faults: Arc<AtomicU64>,
    retained_zz: Arc<AtomicU64>,
    reboots: tokio::sync::mpsc::UnboundedReceiver<(String, u16)>,
}

async fn cabinet(id: &str, urls: &[String]) -> Cab {
    let faults = Arc::new(AtomicU64::new(0));
    let retained_zz = Arc::new(AtomicU64::new(0));
    let (tx, reboots) = tokio::sync::mpsc::unbounded_channel();
    let cab = Cabinet::new(id);
    let dispatcher = cab.dispatcher().on::<Reboot, _, _>(move |ctx, m| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((ctx.sender().unwrap_or("?").to_owned(), m.delay_s));
            Ok(())
        }
    });
    let (f, r) = (faults.clone(), retained_zz.clone());
    let client = Client::builder(urls[0].clone())
        .fallback_urls(urls[1..].iter().cloned())
        .device_id(id)
        .types(AnyMessage::TYPES)
        .dispatcher(dispatcher)
        .reconnect(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.5,
        })
        .on_connect(move |session| {
            let (session, f, r) = (session.clone(), f.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(mut faults) = session.subscribe::<channels::Faults>().await else {
                    return;
                };
                let Ok(mut zz) = session.subscribe_key::<channels::Variables>("zz").await else {
                    return;
                };
                loop {
                    tokio::select! {
                        p = faults.next() => match p {
                            Some(_) => { f.fetch_add(1, Ordering::Relaxed); }
                            None => return,
                        },
                        p = zz.next() => match p {
                            Some(p) if p.retained => { r.fetch_add(1, Ordering::Relaxed); }
                            Some(_) => {}
                            None => return,
                        },
                    }
                }
            });
        })
        .connect()
        .await
        .expect("the cabinet connects");
    Cab {
        client,
        faults,
        retained_zz,
        reboots,
    }
}

#[test]
fn three_serve_nodes_act_as_one_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats"), None);
    let a = node(dir.path(), &nats.url, "a");
    let b = node(dir.path(), &nats.url, "b");
    let mut c = node(dir.path(), &nats.url, "c");

    // A cross-node publish.
    let line = cross(&a.url, &b.url, 7);
    assert_eq!(line["value"]["message"], "m7");
    assert_eq!(line["retained"], false);

    // A retained value visible from every node.
    publish(
        &a.url,
        "charging.v1.variables",
        &["--key", "door", "--json", r#"{"value": {"int": 41}}"#],
    );
    for n in [&a, &b, &c] {
        let line = first_retained(&n.url, "charging.v1.variables", &["--key", "door"], |l| {
            l["value"]["value"]["int"] == 41
        });
        assert_eq!(line["retained"], true);
        assert_eq!(line["key"], "door");
    }

    // Delete: a later value under `zz`, then `door` deleted on b; every
    // node's first retained value of the channel becomes `zz` (`door`, the
    // older, would come first while it exists).
    publish(
        &a.url,
        "charging.v1.variables",
        &["--key", "zz", "--json", r#"{"value": {"int": 1}}"#],
    );
    publish(
        &b.url,
        "charging.v1.variables",
        &["--key", "door", "--retain-delete"],
    );
    for n in [&a, &b, &c] {
        first_retained(&n.url, "charging.v1.variables", &[], |l| l["key"] == "zz");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The application: a server process joined to the cluster.
        let app = AppServer::builder()
            .listen("tcp://127.0.0.1:0")
            .types(AnyMessage::TYPES)
            .channel::<channels::Faults>()
            .channel::<channels::Variables>()
            .cluster(
                NatsCluster::builder(nats.url.clone())
                    .node_id("app")
                    .connect()
                    .await
                    .unwrap(),
            )
            .start()
            .await
            .unwrap();

        // Six cabinets on node c, each knowing every node.
        let urls = [c.url.clone(), a.url.clone(), b.url.clone()];
        let mut cabs = Vec::new();
        for i in 0..6 {
            cabs.push(cabinet(&format!("cab-{i}"), &urls).await);
        }
        for i in 0..6 {
            let id = format!("cab-{i}");
            until(
                "the cabinets' presence",
                Duration::from_secs(30),
                async || app.device(&id).await.is_some(),
            )
            .await;
        }

        // An RPC from the application to a device on node c.
        let reply = ChargerClient::new(app.device("cab-0").await.unwrap())
            .start_charging(&StartCharging {
                slot: 2,
                target_soc_percent: 50,
                max_current_ma: None,
            })
            .await
            .unwrap();
        assert_eq!((reply.slot, reply.eta_s), (2, Some(1800)));

        // send_to across nodes: a device on a to a cabinet on c.
        let sender = Client::builder(a.url.clone())
            .device_id("sender")
            .types(AnyMessage::TYPES)
            .connect()
            .await
            .unwrap();
        sender
            .send_to("cab-1", &Reboot { delay_s: 9 })
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(20), cabs[1].reboots.recv())
            .await
            .expect("the message crossed nodes")
            .unwrap();
        assert_eq!(got, ("sender".to_owned(), 9));

        // Every cabinet receives publications of other nodes, and got the
        // retained value of `zz` when it subscribed.
        let all_got = async |cabs: &[Cab], floor: &[u64]| {
            cabs.iter()
                .zip(floor)
                .all(|(c, f)| c.faults.load(Ordering::Relaxed) > *f)
        };
        let zero = [0u64; 6];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !all_got(&cabs, &zero).await {
            app.publish::<channels::Faults>(&Fault::default())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "cabinets on c get publications"
            );
        }
        for cab in &cabs {
            assert_eq!(cab.retained_zz.load(Ordering::Relaxed), 1);
        }

        // Node c killed with kill -9: its cabinets reconnect to a or b
        // within their backoff, and receive again.
        c.child.0.kill().unwrap();
        let _ = c.child.0.wait();
        let took = until(
            "every cabinet reconnected",
            Duration::from_secs(30),
            async || {
                cabs.iter()
                    .all(|c| c.client.reconnects() >= 1 && c.client.session().is_some())
            },
        )
        .await;
        eprintln!("cabinets of the killed node reconnected in {took:?}");
        // Backoff: the first retry after at most 100 ms, then the next
        // server answers at once.
        assert!(took < Duration::from_secs(10), "reconnected in {took:?}");
        until(
            "the retained value after the move",
            Duration::from_secs(30),
            async || {
                cabs.iter()
                    .all(|c| c.retained_zz.load(Ordering::Relaxed) >= 2)
            },
        )
        .await;
        let floor: Vec<u64> = cabs
            .iter()
            .map(|c| c.faults.load(Ordering::Relaxed))
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !all_got(&cabs, &floor).await {
            app.publish::<channels::Faults>(&Fault::default())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "moved cabinets get publications"
            );
        }
        // Calls follow the device to its new node.
        until(
            "cab-0 callable again",
            Duration::from_secs(30),
            async || {
                let Some(conn) = app.device("cab-0").await else {
                    return false;
                };
                ChargerClient::new(conn)
                    .with_timeout(Duration::from_secs(2))
                    .start_charging(&StartCharging {
                        slot: 3,
                        target_soc_percent: 90,
                        max_current_ma: None,
                    })
                    .await
                    .is_ok()
            },
        )
        .await;
        let stats = app.cluster_stats();
        assert!(stats.calls_out >= 2, "{stats:?}");
        for cab in &cabs {
            cab.client.close("done").await;
        }
        sender.close("done").await;
        app.shutdown().await;
    });
    drop((a, b, nats));
}

#[test]
fn a_nats_outage_keeps_local_traffic_and_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("nats");
    let mut nats = Nats::start(&store, None);
    let port = nats.port;
    let gateway = ["--http", "127.0.0.1:0"];
    let (a, a_logs) = serve_logged(
        &dir.path().join("a"),
        &[&["--cluster", &nats.url, "--node-id", "a"][..], &gateway].concat(),
    );
    let (b, _b_logs) = serve_logged(
        &dir.path().join("b"),
        &[&["--cluster", &nats.url, "--node-id", "b"][..], &gateway].concat(),
    );
    wait_log(&a_logs, "cluster: joined", Duration::from_secs(30));
    cross(&a.url, &b.url, 1);
    let joined = until_mode(&a, "connected");
    assert_eq!(joined["node_id"], "a");
    assert_eq!(joined["disconnects"], 0);
    assert!(
        joined["publications_out"].as_u64().unwrap() >= 1,
        "{joined}"
    );
    assert_eq!(
        metric(&a, r#"isml_cluster_mode{node="a",mode="connected"}"#),
        1
    );
    assert_eq!(
        metric(&a, r#"isml_cluster_mode{node="a",mode="degraded"}"#),
        0
    );
    assert!(metric(&b, r#"isml_cluster_publications_total{direction="in"}"#) >= 1);

    nats.child.0.kill().unwrap();
    let _ = nats.child.0.wait();
    wait_log(&a_logs, "cluster: degraded", Duration::from_secs(30));
    // The gateways say so too, on both nodes.
    let degraded = until_mode(&a, "degraded");
    assert_eq!(degraded["node_id"], "a");
    assert!(degraded["disconnects"].as_u64().unwrap() >= 1, "{degraded}");
    assert_eq!(
        metric(&a, r#"isml_cluster_mode{node="a",mode="degraded"}"#),
        1
    );
    assert_eq!(
        metric(&a, r#"isml_cluster_mode{node="a",mode="connected"}"#),
        0
    );
    assert!(metric(&a, "isml_cluster_disconnects_total") >= 1);
    until_mode(&b, "degraded");

    // Local traffic goes on.
    let line = cross(&a.url, &a.url, 2);
    assert_eq!(line["value"]["message"], "m2");
    // A retained value published meanwhile.
    publish(
        &a.url,
        "charging.v1.variables",
        &[
            "--key",
            "during",
            "--json",
            r#"{"value": {"text": "outage"}}"#,
        ],
    );

    let nats = Nats::start(&store, Some(port));
    wait_log(&a_logs, "cluster: connected again", Duration::from_secs(60));
    // The gateways report the link back, and the resynchronisation.
    for node in [&a, &b] {
        until_mode(node, "connected");
    }
    let back = until_mode(&a, "connected");
    assert!(back["resyncs"].as_u64().unwrap() >= 1, "{back}");
    assert_eq!(
        metric(&a, r#"isml_cluster_mode{node="a",mode="degraded"}"#),
        0
    );
    assert_eq!(
        metric(&a, r#"isml_cluster_mode{node="a",mode="connected"}"#),
        1
    );
    assert!(metric(&a, "isml_cluster_resyncs_total") >= 1);
    // Repaired: the value reached b, and publications cross again.
    first_retained(&b.url, "charging.v1.variables", &["--key", "during"], |l| {
        l["value"]["value"]["text"] == "outage"
    });
    let line = cross(&a.url, &b.url, 3);
    assert_eq!(line["value"]["message"], "m3");
    drop((a, b, nats));
}
