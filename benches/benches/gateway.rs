//! `GET /api/sessions` of the HTTP gateway with 1,000 devices connected
//! over TCP: the whole path a client sees (an HTTP/1.1 request on a kept
//! connection over loopback, the JSON of every session, reading the body).
//! The target is under 50 ms on the project's 2-core machine; the figures
//! are in docs/performance.md.
//!
//! ```text
//! cargo bench -p isml-benches --bench gateway
//! ```

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use isml_runtime::Server;
use isml_runtime::client::Client;

const DEVICES: usize = 1_000;

struct Fleet {
    _server: Server,
    _clients: Vec<Client>,
    _gateway: isml_gateway::RunningGateway,
    url: String,
}

async fn fleet() -> Fleet {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
    let options = isml_schema::LoadOptions::new([format!("{dir}/charging.isml")]).include_dir(dir);
    let schema = isml_schema::load(&options).expect("schemas/charging.isml loads");
    let schema: &'static isml_schema::Schema = Box::leak(Box::new(schema));
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        // A thousand devices from one address, at once.
        .handshake_rate(None)
        .max_unauthenticated_per_address(DEVICES)
        .start()
        .await
        .expect("the server starts");
    let url = server.urls()[0].clone();
    let mut clients = Vec::with_capacity(DEVICES);
    for chunk in (0..DEVICES).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().map(|i| {
            Client::builder(&url)
                .device_id(format!("cab-{i:04}"))
                .connect()
        });
        for c in futures_util::future::join_all(batch).await {
            clients.push(c.expect("a device connects"));
        }
    }
    while server.session_count() < DEVICES {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gateway = isml_gateway::Gateway::builder(server.clone(), schema)
        .bind("127.0.0.1:0")
        .await
        .expect("the gateway starts");
    let url = format!("{}/api/sessions", gateway.url());
    Fleet {
        _server: server,
        _clients: clients,
        _gateway: gateway,
        url,
    }
}

fn sessions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fleet = rt.block_on(fleet());
    let http = reqwest::Client::new();
    let body = rt.block_on(async {
        http.get(&fleet.url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), DEVICES);
    eprintln!(
        "GET /api/sessions: {} sessions, {} bytes of JSON",
        DEVICES,
        body.len()
    );
    let mut g = c.benchmark_group("gateway");
    g.sample_size(50);
    g.bench_function("GET /api/sessions, 1000 devices", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = http.get(&fleet.url).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap().len()
            })
        })
    });
    g.finish();
    drop(fleet);
}

criterion_group!(benches, sessions);
criterion_main!(benches);
