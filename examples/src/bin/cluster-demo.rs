//! A fleet on three nodes: starts `nats-server` (JetStream on, when found on
//! PATH), three server nodes as child processes, an application node in
//! this process, and 60 cabinets spread across the nodes, each knowing every
//! node's address. The application calls every cabinet (each call crosses
//! to the cabinet's node) and follows their telemetry (published on their
//! nodes); midway, one node is killed with SIGKILL, and its cabinets move
//! to the others.
//!
//! ```text
//! cargo run -p isml-examples --bin cluster-demo
//! ```
//!
//! Prints the sessions per node before and after the kill, the calls and
//! publications that crossed nodes, and how long the moved cabinets took to
//! reconnect. (`cluster-demo --node ID --nats URL` is one node, as the demo
//! starts it.)

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use isml_examples::cabinet::Cabinet;
use isml_examples::charging::v1::{AnyMessage, ChargerClient, StartCharging, channels};
use isml_runtime::client::{Backoff, Client};
use isml_runtime::cluster::NatsCluster;
use isml_runtime::server::{Server, ServerBuilder};
use tokio::time::Instant;

const CABINETS: usize = 60;
const NODES: [&str; 3] = ["a", "b", "c"];

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A child process, killed when dropped.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn brokered(b: ServerBuilder) -> ServerBuilder {
    b.types(AnyMessage::TYPES)
        .channel::<channels::Telemetry>()
        .channel::<channels::Faults>()
        .channel::<channels::Variables>()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One node, as the demo starts it: serves until its stdin closes (the
/// demo ended) or it is killed.
async fn run_node(id: &str, nats: &str) -> Result<(), Error> {
    let cluster = NatsCluster::builder(nats)
        .node_id(id)
        .lease(Duration::from_secs(2))
        .connect()
        .await?;
    let server = brokered(Server::builder())
        .listen("tcp://127.0.0.1:0")
        .cluster(cluster)
        .start()
        .await?;
    println!("listening on {}", server.urls()[0]);
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await?;
    server.shutdown().await;
    Ok(())
}

fn start_node(id: &str, nats: &str) -> Result<(Kid, String), Error> {
    let mut child = Kid(Command::new(std::env::current_exe()?)
        .args(["--node", id, "--nats", nats])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?);
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(url) = l.strip_prefix("listening on ") {
                    break url.to_owned();
                }
            }
            _ => return Err(format!("node {id} did not start").into()),
        }
    };
    Ok((child, url))
}

/// Which node each cabinet is connected to now, by the server's address.
fn per_node(cabinets: &[Client], urls: &[String]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for c in cabinets {
        let at = c.session().and_then(|s| {
            let peer = s.peer().to_owned();
            urls.iter()
                .position(|u| u.ends_with(&peer))
                .map(|i| NODES[i])
        });
        *counts.entry(at.unwrap_or("none")).or_insert(0) += 1;
    }
    counts
}

/// How long the demo runs before the kill, and after.
const PHASE: Duration = Duration::from_secs(3);

fn report(phase: &str, ok: &AtomicU64, failed: &AtomicU64, publications: u64, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "{phase}: {} cross-node calls answered ({:.0}/s), {} failed; {publications} publications crossed to the application ({:.0}/s)",
        ok.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed) as f64 / secs,
        failed.load(Ordering::Relaxed),
        publications as f64 / secs,
    );
}

/// Calls every cabinet once from the application node.
async fn call_all(app: &Server, ok: &AtomicU64, failed: &AtomicU64) {
    for i in 0..CABINETS {
        let id = format!("CAB-{i:03}");
        let result = match app.device(&id).await {
            Some(conn) => ChargerClient::new(conn)
                .with_timeout(Duration::from_secs(2))
                .start_charging(&StartCharging {
                    slot: (i % 8) as u8,
                    target_soc_percent: 80,
                    max_current_ma: None,
                })
                .await
                .is_ok(),
            None => false,
        };
        let counter = if result { ok } else { failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn demo(nats_bin: &Path) -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("isml-cluster-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let nats_url = format!("nats://127.0.0.1:{port}");
    let _nats = Kid(Command::new(nats_bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?);
    let up = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > up {
            return Err("nats-server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("nats-server with JetStream on {nats_url}");

    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for id in NODES {
        let (kid, url) = start_node(id, &nats_url)?;
        println!("node {id}: {url}");
        nodes.push(kid);
        urls.push(url);
    }

    // The application: a node of its own, in this process.
    let app = brokered(Server::builder())
        .listen("tcp://127.0.0.1:0")
        .cluster(
            NatsCluster::builder(nats_url.clone())
                .node_id("app")
                .connect()
                .await?,
        )
        .start()
        .await?;
    let publications = Arc::new(AtomicU64::new(0));
    let mut telemetry = app.subscribe::<channels::Telemetry>().await?;
    let p = publications.clone();
    tokio::spawn(async move {
        while telemetry.next().await.is_some() {
            p.fetch_add(1, Ordering::Relaxed);
        }
    });

    // 60 cabinets, 20 per node, each with every node's address (its own
    // first); on every session it publishes its status twice a second.
    let mut cabinets = Vec::new();
    for i in 0..CABINETS {
        // Its own node first, then the others (in turns, so that a dead
        // node's cabinets spread over the rest).
        let home = i % NODES.len();
        let mut order = vec![urls[home].clone()];
        let others: Vec<usize> = (1..NODES.len()).map(|k| (home + k) % NODES.len()).collect();
        for k in 0..others.len() {
            order.push(urls[others[(k + i / NODES.len()) % others.len()]].clone());
        }
        let cab = Cabinet::new(format!("CAB-{i:03}"));
        let reporter = cab.clone();
        let client = Client::builder(order[0].clone())
            .fallback_urls(order[1..].iter().cloned())
            .device_id(cab.station_id.clone())
            .types(AnyMessage::TYPES)
            .dispatcher(cab.dispatcher())
            .reconnect(Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
                jitter: 0.5,
            })
            .on_connect(move |session| {
                let (session, cab) = (session.clone(), reporter.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut tick = tokio::time::interval(Duration::from_millis(500));
                    loop {
                        tokio::select! {
                            _ = session.closed() => return,
                            _ = tick.tick() => {
                                let status = cab.status(started.elapsed());
                                if session.publish::<channels::Telemetry>(&status).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            })
            .connect()
            .await?;
        cabinets.push(client);
    }
    println!(
        "{CABINETS} cabinets connected: {:?}",
        per_node(&cabinets, &urls)
    );

    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let wait_presence = Instant::now() + Duration::from_secs(20);
    for i in 0..CABINETS {
        while app.device(&format!("CAB-{i:03}")).await.is_none() && Instant::now() < wait_presence {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let before = publications.load(Ordering::Relaxed);
    let started = Instant::now();
    while started.elapsed() < PHASE {
        call_all(&app, &ok, &failed).await;
    }
    report(
        "before the kill",
        &ok,
        &failed,
        publications.load(Ordering::Relaxed) - before,
        started.elapsed(),
    );

    // Node c dies.
    let killed = NODES.len() - 1;
    let moved: Vec<&Client> = cabinets
        .iter()
        .enumerate()
        .filter(|(i, _)| i % NODES.len() == killed)
        .map(|(_, c)| c)
        .collect();
    println!("killing node {} (SIGKILL) ...", NODES[killed]);
    let killed_at = Instant::now();
    nodes[killed].0.kill()?;
    let _ = nodes[killed].0.wait();
    let limit = killed_at + Duration::from_secs(30);
    while !moved
        .iter()
        .all(|c| c.reconnects() >= 1 && c.session().is_some())
    {
        if Instant::now() > limit {
            return Err("the cabinets of the killed node did not reconnect".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reconnect = killed_at.elapsed();
    println!(
        "{} cabinets of node {} reconnected elsewhere in {reconnect:?}: {:?}",
        moved.len(),
        NODES[killed],
        per_node(&cabinets, &urls)
    );

    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let before = publications.load(Ordering::Relaxed);
    let started = Instant::now();
    while started.elapsed() < PHASE {
        call_all(&app, &ok, &failed).await;
    }
    report(
        "after the kill",
        &ok,
        &failed,
        publications.load(Ordering::Relaxed) - before,
        started.elapsed(),
    );
    let stats = app.cluster_stats();
    println!(
        "application node: {} calls out, {} publications received, status {}",
        stats.calls_out, stats.received, stats.status
    );
    for c in &cabinets {
        c.close("demo over").await;
    }
    app.shutdown().await;
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let (Some(i), Some(j)) = (
        args.iter().position(|a| a == "--node"),
        args.iter().position(|a| a == "--nats"),
    ) {
        let (id, nats) = (
            args.get(i + 1).ok_or("--node ID")?,
            args.get(j + 1).ok_or("--nats URL")?,
        );
        return run_node(id, nats).await;
    }
    let Some(nats) = find_on_path("nats-server") else {
        eprintln!("cluster-demo needs nats-server on PATH (Debian: apt-get install nats-server)");
        std::process::exit(2);
    };
    demo(&nats).await
}
