//! Charging cabinets (the examples' `Cabinet`) connected to an `isml serve`
//! in this process, and helpers to wait on the gateway's REST API.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use isml_examples::cabinet::Cabinet;
use isml_examples::charging::v1::AnyMessage;
use isml_runtime::client::Client;
use isml_runtime::handshake::Credentials;

/// How long a condition may take to hold on a loaded machine.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A connected cabinet, publishing its status and charging slots.
pub(crate) struct Cabinet1 {
    pub(crate) device: String,
    pub(crate) cabinet: Arc<Cabinet>,
    pub(crate) client: Client,
    publisher: tokio::task::JoinHandle<()>,
}

impl Cabinet1 {
    pub(crate) async fn close(self) {
        self.publisher.abort();
        self.client.close("test done").await;
    }
}

/// Connects cabinet `device` to `url`, with `token` if given, publishing every `period`.
pub(crate) async fn cabinet(
    url: &str,
    device: &str,
    token: Option<&str>,
    period: Duration,
) -> Cabinet1 {
    let cabinet = Cabinet::new(device.to_uppercase());
    let mut b = Client::builder(url)
        .device_id(device)
        .types(AnyMessage::TYPES)
        .dispatcher(cabinet.dispatcher());
    if let Some(t) = token {
        b = b.credentials(Credentials::Token(t.to_owned()));
    }
    let client = b.connect().await.expect("the cabinet connects");
    let session = client.session().expect("a session");
    let publisher = tokio::spawn(cabinet.clone().publish(session, period));
    Cabinet1 {
        device: device.to_owned(),
        cabinet,
        client,
        publisher,
    }
}

/// `n` cabinets `cab-001` ... connected to `url`.
pub(crate) async fn cabinets(
    url: &str,
    n: usize,
    token: Option<&str>,
    period: Duration,
) -> Vec<Cabinet1> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.push(cabinet(url, &format!("cab-{i:03}"), token, period).await);
    }
    v
}

/// Polls `f` until it gives `Some`, or panics after [`PATIENCE`] with `what`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
