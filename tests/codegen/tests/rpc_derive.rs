//! `#[isml_runtime::service]` against the schema: a derived twin of
//! `service Forms` (`isml-schema/tests/fixtures/valid/rpc_forms.isml`), over
//! derived twins of its messages, has the same descriptors and method
//! fingerprints as the generated service, and each side's client calls the
//! other side's server, in every form, over `mem://`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use isml_codegen_tests::fixtures::rpc_forms as generated;
use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, ServiceDescriptor, Sink, Status, Streaming};
use isml_runtime::server::Server;

/// The derived side: messages and service written in Rust only.
mod derived {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
    #[isml(id = 1, package = "fixtures.rpc_forms")]
    pub(crate) struct Request {
        #[isml(tag = 1)]
        pub(crate) n: u32,
    }

    #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
    #[isml(id = 2, package = "fixtures.rpc_forms")]
    pub(crate) struct Reply {
        #[isml(tag = 1)]
        pub(crate) ok: bool,
    }

    /// `service Forms`, declared in Rust; methods in another order than
    /// their ids, and one renamed on the wire.
    #[isml_runtime::service(package = "fixtures.rpc_forms")]
    pub(crate) trait Forms {
        /// One-way: no reply.
        #[rpc(id = 3)]
        async fn one_way(&self, call: Call, req: Request);
        /// Unary: one request, one reply.
        #[rpc(id = 1)]
        async fn unary(&self, call: Call, req: Request) -> Result<Reply, Status>;
        /// Server streaming: a stream of replies.
        #[rpc(id = 2)]
        async fn server_streaming(
            &self,
            call: Call,
            req: Request,
            out: Sink<Reply>,
        ) -> Result<(), Status>;
        /// Client streaming, under another Rust name.
        #[rpc(id = 4, name = "client_streaming")]
        async fn upload(&self, call: Call, req: Streaming<Request>) -> Result<Reply, Status>;
        /// Bidirectional streaming, written the way the generator writes it.
        #[rpc(id = 5)]
        fn bidirectional(
            &self,
            call: Call,
            req: Streaming<Request>,
            out: Sink<Reply>,
        ) -> impl Future<Output = Result<(), Status>> + Send;
    }
}

#[test]
fn derived_and_generated_descriptors_match() {
    let g: &ServiceDescriptor = generated::FormsClient::descriptor();
    let d: &ServiceDescriptor = derived::FormsClient::descriptor();
    assert_eq!(d.name, "fixtures.rpc_forms.Forms");
    assert_eq!(d.name, g.name);
    assert_eq!(d.methods.len(), g.methods.len());
    // Sorted by id on both sides, whatever the order of the trait.
    let ids: Vec<u32> = d.methods.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    for (dm, gm) in d.methods.iter().zip(g.methods) {
        assert_eq!(dm.id, gm.id);
        assert_eq!(dm.name, gm.name);
        assert_eq!(dm.full_name, gm.full_name);
        assert_eq!(dm.kind, gm.kind, "{}", gm.name);
        assert_eq!(dm.once, gm.once, "{}", gm.name);
        assert_eq!(
            (dm.request.fingerprint)(),
            (gm.request.fingerprint)(),
            "{}",
            gm.name
        );
        assert_eq!(dm.fingerprint(), gm.fingerprint(), "{}", gm.name);
    }
    // The streaming kinds do enter the fingerprint: unary and client
    // streaming take and give the same types.
    assert_ne!(d.methods[0].fingerprint(), d.methods[3].fingerprint());
    assert_eq!(
        derived::FormsServer::<DerivedImpl>::descriptor().name,
        d.name
    );
}

#[derive(Default)]
struct Counts {
    one_ways: AtomicU64,
}

/// Both implementations answer alike: `unary` says whether n is even,
/// `server_streaming` sends n replies, `client_streaming` says whether the
/// number of requests is even, `bidirectional` answers each request.
#[derive(Clone, Default)]
struct DerivedImpl(Arc<Counts>);

impl derived::Forms for DerivedImpl {
    async fn one_way(&self, _call: Call, _req: derived::Request) {
        self.0.one_ways.fetch_add(1, Ordering::SeqCst);
    }

    async fn unary(&self, call: Call, req: derived::Request) -> Result<derived::Reply, Status> {
        assert_eq!(call.method(), "fixtures.rpc_forms.Forms/unary");
        if req.n == 0 {
            return Err(Status::not_found("no request 0"));
        }
        Ok(derived::Reply {
            ok: req.n.is_multiple_of(2),
        })
    }

    async fn server_streaming(
        &self,
        _call: Call,
        req: derived::Request,
        out: Sink<derived::Reply>,
    ) -> Result<(), Status> {
        for i in 0..req.n {
            out.send(derived::Reply {
                ok: i.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }

    async fn upload(
        &self,
        _call: Call,
        mut req: Streaming<derived::Request>,
    ) -> Result<derived::Reply, Status> {
        let mut count = 0u32;
        while let Some(item) = req.next().await {
            item?;
            count += 1;
        }
        Ok(derived::Reply {
            ok: count.is_multiple_of(2),
        })
    }

    async fn bidirectional(
        &self,
        _call: Call,
        mut req: Streaming<derived::Request>,
        out: Sink<derived::Reply>,
    ) -> Result<(), Status> {
        while let Some(item) = req.next().await {
            out.send(derived::Reply {
                ok: item?.n.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }
}

#[derive(Clone, Default)]
struct GeneratedImpl(Arc<Counts>);

impl generated::Forms for GeneratedImpl {
    async fn unary(
        &self,
        _call: Call,
        req: generated::Request,
    ) -> Result<generated::Reply, Status> {
        if req.n == 0 {
            return Err(Status::not_found("no request 0"));
        }
        Ok(generated::Reply {
            ok: req.n.is_multiple_of(2),
        })
    }

    async fn server_streaming(
        &self,
        _call: Call,
        req: generated::Request,
        out: Sink<generated::Reply>,
    ) -> Result<(), Status> {
        for i in 0..req.n {
            out.send(generated::Reply {
                ok: i.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }

    async fn one_way(&self, _call: Call, _req: generated::Request) {
        self.0.one_ways.fetch_add(1, Ordering::SeqCst);
    }

    async fn client_streaming(
        &self,
        _call: Call,
        mut req: Streaming<generated::Request>,
    ) -> Result<generated::Reply, Status> {
        let mut count = 0u32;
        while let Some(item) = req.next().await {
            item?;
            count += 1;
        }
        Ok(generated::Reply {
            ok: count.is_multiple_of(2),
        })
    }

    async fn bidirectional(
        &self,
        _call: Call,
        mut req: Streaming<generated::Request>,
        out: Sink<generated::Reply>,
    ) -> Result<(), Status> {
        while let Some(item) = req.next().await {
            out.send(generated::Reply {
                ok: item?.n.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }
}

async fn serve(url: &str, dispatcher: Dispatcher) -> Server {
    Server::builder()
        .listen(url)
        .types(generated::AnyMessage::TYPES)
        .dispatcher(dispatcher)
        .start()
        .await
        .unwrap()
}

async fn connect(url: &str) -> Client {
    Client::builder(url)
        .types(generated::AnyMessage::TYPES)
        .device_id("caller-1")
        .connect()
        .await
        .unwrap()
}

/// Waits until `counts` saw `n` one-way calls.
async fn one_ways(counts: &Counts, n: u64) {
    tokio::time::timeout(Duration::from_secs(2), async {
        while counts.one_ways.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the one-way calls arrived");
}

#[tokio::test]
async fn a_derived_client_calls_a_generated_server() {
    let counts = Arc::new(Counts::default());
    let server = serve(
        "mem://rpc-derive-1",
        Dispatcher::new().service(generated::FormsServer::new(GeneratedImpl(counts.clone()))),
    )
    .await;
    let c = connect("mem://rpc-derive-1").await;
    let client = derived::FormsClient::new(&c);
    use derived::{Reply, Request};

    assert_eq!(
        client.unary(&Request { n: 4 }).await.unwrap(),
        Reply { ok: true }
    );
    assert_eq!(
        client.unary(&Request { n: 3 }).await.unwrap(),
        Reply { ok: false }
    );
    let e = client.unary(&Request { n: 0 }).await.unwrap_err();
    assert_eq!(e.status().unwrap().message(), "no request 0");

    let mut items = client.server_streaming(&Request { n: 5 }).await.unwrap();
    let mut got = Vec::new();
    while let Some(r) = items.next().await {
        got.push(r.unwrap().ok);
    }
    assert_eq!(got, [true, false, true, false, true]);

    client.one_way(&Request { n: 1 }).await.unwrap();
    one_ways(&counts, 1).await;

    // The derived client's method keeps the trait's Rust name.
    let up = client.upload().await.unwrap();
    for n in 0..3 {
        up.send(Request { n }).await.unwrap();
    }
    assert_eq!(up.finish().await.unwrap(), Reply { ok: false });

    let (tx, mut rx) = client.bidirectional().await.unwrap();
    for n in [2u32, 5] {
        tx.send(Request { n }).await.unwrap();
        assert_eq!(rx.next().await.unwrap().unwrap().ok, n.is_multiple_of(2));
    }
    tx.finish().await.unwrap();
    assert!(rx.next().await.is_none());

    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_generated_client_calls_a_derived_server() {
    let counts = Arc::new(Counts::default());
    let server = serve(
        "mem://rpc-derive-2",
        Dispatcher::new().service(derived::FormsServer::new(DerivedImpl(counts.clone()))),
    )
    .await;
    let c = connect("mem://rpc-derive-2").await;
    let client = generated::FormsClient::new(&c);
    use generated::{Reply, Request};

    assert_eq!(
        client.unary(&Request { n: 4 }).await.unwrap(),
        Reply { ok: true }
    );
    let e = client.unary(&Request { n: 0 }).await.unwrap_err();
    assert_eq!(e.status().unwrap().message(), "no request 0");

    let mut items = client.server_streaming(&Request { n: 3 }).await.unwrap();
    let mut got = Vec::new();
    while let Some(r) = items.next().await {
        got.push(r.unwrap().ok);
    }
    assert_eq!(got, [true, false, true]);

    client.one_way(&Request { n: 1 }).await.unwrap();
    one_ways(&counts, 1).await;

    let up = client.client_streaming().await.unwrap();
    for n in 0..4 {
        up.send(Request { n }).await.unwrap();
    }
    assert_eq!(up.finish().await.unwrap(), Reply { ok: true });

    let (tx, mut rx) = client.bidirectional().await.unwrap();
    for n in [7u32, 8] {
        tx.send(Request { n }).await.unwrap();
        assert_eq!(rx.next().await.unwrap().unwrap().ok, n.is_multiple_of(2));
    }
    tx.finish().await.unwrap();
    assert!(rx.next().await.is_none());

    c.close("done").await;
    server.shutdown().await;
}
