//! Publications across the nodes of a cluster against one server alone.
//!
//! ```text
//! apt-get install -y nats-server
//! cargo run --release -p isml-benches --bin cluster-compare
//! ```
//!
//! Starts `nats-server -js` (a free loopback port, its store in a temporary
//! directory), one server alone and two servers joined to NATS, all in this
//! process; a publisher and a subscriber (loopback TCP) on the server alone,
//! then the publisher on one node and the subscriber on the other. Rows:
//! delivered msgs/s (one publisher as fast as it can, 1 s after 300 ms of
//! warm-up) and publish-to-delivery latency at 1,000 msgs/s. The last line
//! sums it up.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use isml_benches::cluster::{Route, latency, server, throughput};
use isml_benches::pubsub::Qos;
use isml_runtime::cluster::NatsCluster;

struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let store = std::env::temp_dir().join(format!("isml-cluster-bench-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let _nats = Kid(Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server: {e} (apt-get install nats-server)"))?);
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err("nats-server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let join = |id: &'static str| {
        let url = url.clone();
        async move {
            NatsCluster::builder(url)
                .node_id(id)
                .connect()
                .await
                .map_err(|e| e.to_string())
        }
    };
    let (_single, single) = server(None).await?;
    let (_a, a) = server(Some(join("bench-a").await?)).await?;
    let (_b, b) = server(Some(join("bench-b").await?)).await?;
    let routes = [
        (
            "single node",
            Route {
                publisher: single,
                subscriber: single,
            },
        ),
        (
            "cross-node",
            Route {
                publisher: a,
                subscriber: b,
            },
        ),
    ];

    println!(
        "{:<28} {:>8} {:>6} {:>14} {:>14} {:>9}",
        "cluster", "payload", "qos", "single node", "cross-node", "cross/1"
    );
    let mut run = 0;
    let mut summary = (0.0, 0.0, 0.0, 0.0);
    for size in [16usize, 256] {
        for q in Qos::ALL {
            let mut r = [0.0; 2];
            for (i, (_, route)) in routes.iter().enumerate() {
                run += 1;
                r[i] = throughput(*route, run, size, q).await?;
            }
            println!(
                "{:<28} {:>6} B {:>6} {:>14.0} {:>14.0} {:>8.2}x",
                "1->1 delivered msgs/s",
                size,
                q.name(),
                r[0],
                r[1],
                r[1] / r[0]
            );
            if size == 16 && q == Qos::AtLeastOnce {
                (summary.0, summary.2) = (r[1], r[0]);
            }
        }
    }
    for size in [16usize, 256] {
        let mut p = [(0.0, 0.0); 2];
        for (i, (_, route)) in routes.iter().enumerate() {
            run += 1;
            p[i] = latency(*route, run, size, Qos::AtLeastOnce, 1_000.0).await?;
        }
        println!(
            "{:<28} {:>6} B {:>6} {:>11.0} us {:>11.0} us {:>8.2}x",
            "p50 latency at 1k msgs/s",
            size,
            "qos1",
            p[0].0,
            p[1].0,
            p[1].0 / p[0].0
        );
        println!(
            "{:<28} {:>6} B {:>6} {:>11.0} us {:>11.0} us {:>8.2}x",
            "p99 latency at 1k msgs/s",
            size,
            "qos1",
            p[0].1,
            p[1].1,
            p[1].1 / p[0].1
        );
        if size == 16 {
            (summary.1, summary.3) = (p[1].0, p[0].0);
        }
    }
    let _ = std::fs::remove_dir_all(&store);
    println!(
        "cluster: cross-node {:.0} msgs/s p50 {:.0} us, single node {:.0} msgs/s p50 {:.0} us (16 B, qos1)",
        summary.0, summary.1, summary.2, summary.3
    );
    Ok(())
}
