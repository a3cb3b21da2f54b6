//! The link-impairment lab end to end: `impair+…` URLs parsed, connected to
//! and listened on, over real TCP, a real pseudo-terminal pair and the
//! in-memory transport, with sessions on top.
#![cfg(all(feature = "impair", feature = "tcp"))]

mod common;

use std::time::{Duration, Instant};

use isml_runtime::client::{Client, ConnectError};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::transport::impair::{CutMode, Link, LinkState, Profile};
use isml_runtime::transport::{Endpoint, ListenOptions, Listener, TransportError};
use tokio::io::AsyncReadExt;

use common::{AnyMessage, ChargeStarted, StartCharging};

/// Generous bound for real-time waits on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn dispatcher() -> Dispatcher {
    Dispatcher::new().on_request::<StartCharging, ChargeStarted, _, _>(|_ctx, m| async move {
        Ok(ChargeStarted {
            slot: m.slot,
            eta_s: None,
            refused: None,
        })
    })
}

fn start(slot: u8) -> StartCharging {
    StartCharging {
        slot,
        target_soc_percent: 80,
        max_current_ma: None,
    }
}

async fn server(url: &str) -> Server {
    Server::builder()
        .listen(url)
        .types(AnyMessage::types())
        .dispatcher(dispatcher())
        .start()
        .await
        .unwrap()
}

/// The plain URL under a listener's `impair+…` URL.
fn inner_url(url: &str) -> String {
    match url.parse::<Endpoint>().unwrap() {
        Endpoint::Impair { inner, .. } => inner.to_string(),
        other => panic!("not an impaired endpoint: {other}"),
    }
}

/// Round trips of `n` requests; gives the shortest.
async fn shortest_round_trip(s: &isml_runtime::session::Session, n: u8) -> Duration {
    let mut best = Duration::MAX;
    for slot in 0..n {
        let t = Instant::now();
        let r: ChargeStarted = tokio::time::timeout(PATIENCE, s.request(&start(slot)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.slot, slot);
        best = best.min(t.elapsed());
    }
    best
}

#[test]
fn impair_urls_parse_print_and_name_bad_parameters() {
    let url = "impair+tcp://127.0.0.1:7000?latency=300ms&jitter=200ms&rate=20kbit&cut_every=10s&cut_for=3s";
    let e: Endpoint = url.parse().unwrap();
    let Endpoint::Impair { inner, link } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(inner.to_string(), "tcp://127.0.0.1:7000");
    assert_eq!(link.rate, Some(20_000));
    assert_eq!(link.latency, Duration::from_millis(300));
    let cuts = link.cuts.unwrap();
    assert_eq!(
        (cuts.every, cuts.duration, cuts.mode),
        (
            Duration::from_secs(10),
            Duration::from_secs(3),
            CutMode::Drop
        )
    );
    assert_eq!(e.scheme(), "impair+tcp");
    assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);

    // Serial: the port keeps its baud, and the link's rate is that baud at
    // 10 bits per byte.
    let e: Endpoint = "impair+serial:///dev/ttyUSB0?baud=9600&ber=1e-4&seed=4"
        .parse()
        .unwrap();
    let Endpoint::Impair { inner, link } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        **inner,
        Endpoint::Serial {
            path: "/dev/ttyUSB0".into(),
            baud: 9600
        }
    );
    assert_eq!(
        (link.rate, link.byte_bits, link.ber, link.seed),
        (Some(9600), 10, 1e-4, 4)
    );
    assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);

    let e: Endpoint = "impair+mem://bus?profile=wifi-flaky".parse().unwrap();
    let Endpoint::Impair { link, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(link.profile, Some(Profile::WifiFlaky));
    assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);

    for (url, parameter) in [
        ("impair+tcp://h:1?rate=fast", "rate"),
        ("impair+tcp://h:1?ber=1e-4", "ber"),
        ("impair+tcp://h:1?latency", "latency"),
        ("impair+tcp://h:1?profile=5g", "profile"),
        ("impair+serial:///dev/x?cut_every=1s&cut_for=2s", "cut_for"),
        ("impair+mem://m?baud=9600", "baud"),
    ] {
        match url.parse::<Endpoint>() {
            Err(e @ TransportError::InvalidParameter { .. }) => {
                let TransportError::InvalidParameter { parameter: p, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(p, parameter, "{url}");
                let shown = e.to_string();
                assert!(
                    shown.contains(url) && shown.contains(&format!("parameter `{parameter}`")),
                    "{shown}"
                );
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in [
        "impair+tls://h:1",
        "impair+impair+tcp://h:1",
        "impair+tcp://nohost",
        "impair+serial://relative?baud=9600",
        "impair+serial:///dev/x?baud=fast",
    ] {
        match url.parse::<Endpoint>() {
            Err(TransportError::InvalidEndpoint { url: u, .. }) => assert_eq!(u, url),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_listening_on_impair_tcp_delays_both_directions() {
    let server = server("impair+tcp://127.0.0.1:0?latency=40ms&seed=1").await;
    let url = server.urls()[0].clone();
    assert!(url.starts_with("impair+tcp://127.0.0.1:") && url.contains("latency=40ms"));
    let s = Client::builder(inner_url(&url))
        .types(AnyMessage::types())
        .connect_session()
        .await
        .unwrap();
    // 40 ms each way, on every round trip.
    let rtt = shortest_round_trip(&s, 10).await;
    assert!(rtt >= Duration::from_millis(80), "{rtt:?}");
    assert_eq!(server.sessions()[0].scheme(), "impair+tcp");
    s.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_through_impair_tcp_meets_the_delay_and_the_cuts() {
    let server = server("tcp://127.0.0.1:0").await;
    let url = format!(
        "impair+tcp://{}?latency=20ms&cut_every=2s&cut_for=1s",
        server.urls()[0].trim_start_matches("tcp://")
    );
    let client = Client::builder(&url).types(AnyMessage::types());
    let s = client.connect_session().await.unwrap();
    let link = Link::shared(&url.parse().unwrap()).unwrap();
    assert_eq!(s.scheme(), "impair+tcp");
    let rtt = shortest_round_trip(&s, 5).await;
    assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
    // The cut at 2 s ends the session.
    tokio::time::timeout(PATIENCE, s.closed()).await.unwrap();
    assert!(link.elapsed() >= Duration::from_secs(2));
    assert_eq!(link.stats().dropped, 1);
    // While the link is down, connecting fails at once.
    if let LinkState::Cut { .. } = link.state() {
        match client.connect_session().await {
            Err(ConnectError::Transport(TransportError::Io { source, .. })) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NetworkUnreachable)
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("connected through a cut link"),
        }
        assert_eq!(link.stats().refused, 1);
    }
    // Once it is back, the same URL connects through the same link.
    while let LinkState::Cut { .. } = link.state() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = client.connect_session().await.unwrap();
    shortest_round_trip(&s, 3).await;
    assert_eq!(link.stats().connections, 2);
    s.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_listener_closes_what_arrives_during_a_cut() {
    let endpoint: Endpoint = "impair+tcp://127.0.0.1:0?cut_every=600ms&cut_for=400ms"
        .parse()
        .unwrap();
    let mut listener = Listener::bind(&endpoint, &ListenOptions::default())
        .await
        .unwrap();
    let addr = inner_url(listener.url())
        .trim_start_matches("tcp://")
        .to_owned();
    let link = listener.impair_link().unwrap().clone();
    while !matches!(link.state(), LinkState::Cut { .. }) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut early = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let accepting = tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        incoming.upgrade().await.unwrap()
    });
    // Accepted and closed by the listener: the end of the stream.
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(PATIENCE, early.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(link.stats().refused, 1);
    while let LinkState::Cut { .. } = link.state() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _late = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let t = tokio::time::timeout(PATIENCE, accepting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.info().scheme, "impair+tcp");
    assert_eq!(link.stats().connections, 1);
}

#[tokio::test]
async fn impair_mem_on_either_end() {
    let server_side = server("impair+mem://impair-test-a?latency=15ms").await;
    let s = Client::builder("mem://impair-test-a")
        .types(AnyMessage::types())
        .connect_session()
        .await
        .unwrap();
    assert!(shortest_round_trip(&s, 5).await >= Duration::from_millis(30));
    assert_eq!(server_side.sessions()[0].scheme(), "impair+mem");

    let plain = server("mem://impair-test-b").await;
    let s = Client::builder("impair+mem://impair-test-b?latency=15ms&rate=1mbit")
        .types(AnyMessage::types())
        .connect_session()
        .await
        .unwrap();
    assert!(shortest_round_trip(&s, 5).await >= Duration::from_millis(30));
    assert_eq!(s.scheme(), "impair+mem");
    server_side.shutdown().await;
    plain.shutdown().await;
}

#[cfg(feature = "serial")]
#[tokio::test]
async fn sessions_over_impair_serial_on_a_pty_pair() {
    use isml_runtime::transport::serial::PtyPair;

    let pty = PtyPair::open().unwrap();
    let url = format!("impair+{}&latency=10ms&seed=2", pty.url(115_200));
    let server = server(&url).await;
    let device = pty.into_transport(None).unwrap();
    let counters = device.info().counters.clone();
    let s = tokio::time::timeout(
        PATIENCE,
        Client::builder(&url)
            .types(AnyMessage::types())
            .connect_over(device),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(shortest_round_trip(&s, 20).await >= Duration::from_millis(20));
    // A larger message crosses the shaped line intact.
    let big = common::StatusReport {
        station_id: "y".repeat(60),
        serial: vec![7u8; 32].into(),
        ..Default::default()
    };
    s.send(&big).await.unwrap();
    let _: ChargeStarted = s.request(&start(1)).await.unwrap();
    assert_eq!(counters.corrupt_frames(), 0);
    assert_eq!(server.sessions()[0].scheme(), "impair+serial");
    s.close("bye").await;
    server.shutdown().await;
}
