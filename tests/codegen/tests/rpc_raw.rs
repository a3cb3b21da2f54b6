//! Raw calls (`Conn::unary_raw`, `one_way_raw`, `server_streaming_raw`):
//! a method known at run time, encoded payloads in and out, against a
//! generated service. What gateways call through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use isml_codegen_tests::fixtures::rpc_forms::{AnyMessage, Forms, FormsServer, Reply, Request};
use isml_runtime::Message as _;
use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{Call, CallError, Code, Conn, RawMethod, Sink, Status, Streaming};
use isml_runtime::server::Server;

#[derive(Clone, Default)]
struct Impl(Arc<AtomicU64>);

impl Forms for Impl {
    async fn unary(&self, _call: Call, req: Request) -> Result<Reply, Status> {
        match req.n {
            0 => Err(Status::not_found("no request 0")),
            7 => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Reply { ok: false })
            }
            n => Ok(Reply {
                ok: n.is_multiple_of(2),
            }),
        }
    }

    async fn server_streaming(
        &self,
        _call: Call,
        req: Request,
        out: Sink<Reply>,
    ) -> Result<(), Status> {
        if req.n == 0 {
            return Err(Status::invalid_argument("no items asked for"));
        }
        for i in 0..req.n {
            out.send(Reply {
                ok: i.is_multiple_of(2),
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(())
    }

    async fn one_way(&self, _call: Call, _req: Request) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    async fn client_streaming(
        &self,
        _call: Call,
        _req: Streaming<Request>,
    ) -> Result<Reply, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn bidirectional(
        &self,
        _call: Call,
        _req: Streaming<Request>,
        _out: Sink<Reply>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// The raw descriptor of a generated method, as a gateway builds it from a
/// schema loaded at run time.
fn raw(name: &str) -> RawMethod {
    let svc = FormsServer::<Impl>::descriptor();
    let m = svc.method_by_name(name).unwrap();
    RawMethod {
        service: svc.name,
        full_name: m.full_name,
        id: m.id,
        kind: m.kind,
        fingerprint: m.fingerprint(),
        request_type: m.request.type_id,
        response_type: m.response.map(|r| r.type_id),
    }
}

fn request(n: u32) -> bytes::Bytes {
    let mut buf = bytes::BytesMut::new();
    Request { n }.encode(&mut buf).unwrap();
    buf.freeze()
}

async fn setup() -> (Server, Client, Arc<AtomicU64>) {
    let one_ways = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::TYPES)
        .dispatcher(Dispatcher::new().service(FormsServer::new(Impl(one_ways.clone()))))
        .start()
        .await
        .unwrap();
    let client = Client::builder(&server.urls()[0])
        .types(AnyMessage::TYPES)
        .device_id("raw-caller")
        .connect()
        .await
        .unwrap();
    (server, client, one_ways)
}

#[tokio::test]
async fn raw_calls_of_every_served_form() {
    let (server, client, one_ways) = setup().await;
    let conn = Conn::from(&client);

    let reply = conn
        .unary_raw(&raw("unary"), request(4), None)
        .await
        .unwrap();
    assert_eq!(Reply::decode(reply).unwrap(), Reply { ok: true });
    let e = conn
        .unary_raw(&raw("unary"), request(0), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
    let e = conn
        .unary_raw(&raw("unary"), request(7), Some(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Timeout { .. }), "{e}");

    conn.one_way_raw(&raw("one_way"), request(1)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while one_ways.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the one-way call arrives"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut stream = conn
        .server_streaming_raw(&raw("server_streaming"), request(3), None)
        .await
        .unwrap();
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(Reply::decode(item.unwrap()).unwrap().ok);
    }
    assert_eq!(items, [true, false, true]);
    let mut stream = conn
        .server_streaming_raw(&raw("server_streaming"), request(0), None)
        .await
        .unwrap();
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(stream.next().await.is_none());

    client.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn raw_calls_check_the_method_before_sending() {
    let (server, client, _) = setup().await;
    let conn = Conn::from(&client);

    // A fingerprint the peer does not have: refused without a round trip.
    let mut m = raw("unary");
    m.fingerprint ^= 1;
    let e = conn.unary_raw(&m, request(2), None).await.unwrap_err();
    assert!(matches!(e, CallError::Incompatible { .. }), "{e}");
    // A method id the service lacks, a service the peer does not serve.
    let mut m = raw("unary");
    m.id = 999;
    let e = conn.unary_raw(&m, request(2), None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e}");
    let mut m = raw("unary");
    m.service = "nowhere.Nothing";
    let e = conn.one_way_raw(&m, request(2)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e}");
    // An answer of another type than the caller expects.
    let mut m = raw("unary");
    m.response_type = Some(m.response_type.unwrap() + 1000);
    let e = conn.unary_raw(&m, request(2), None).await.unwrap_err();
    assert!(matches!(e, CallError::Incompatible { .. }), "{e}");
    // A request larger than a frame is refused before it is sent.
    let huge = bytes::Bytes::from(vec![0u8; 1 << 24]);
    let e = conn.unary_raw(&raw("unary"), huge, None).await.unwrap_err();
    assert!(matches!(e, CallError::Encode { .. }), "{e}");

    client.close("done").await;
    server.shutdown().await;
}
