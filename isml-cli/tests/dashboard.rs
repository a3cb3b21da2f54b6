//! The gateway's dashboard in a real browser: Debian's headless chromium,
//! driven through chromedriver (WebDriver) with fantoccini. Ten cabinets
//! connected; the fleet table shows ten rows, a device page calls
//! `start_charging` through its form, shows the reply, and shows the
//! retained value the call changes as it changes. A node of a cluster
//! (a real nats-server) shows its link: connected, degraded while NATS is
//! down, connected again. Screenshots are saved under
//! `target/tmp/dashboard/` (1280×800 and a phone's 390×844).

mod common;
mod fleet;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use fleet::{PATIENCE, cabinets};

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    _child: common::Guard,
    url: String,
}

fn chromedriver() -> Driver {
    let mut child = common::Guard(
        Command::new("chromedriver")
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .map(|p| p.trim_end_matches('.').trim().to_owned())
            {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(PATIENCE)
        .expect("chromedriver says which port it listens on");
    Driver {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,800",
                "--hide-scrollbars",
            ]
        }),
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("chromedriver not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a browser session: {e}"),
        }
    }
}

/// Sizes the window so that the page's viewport is `w`×`h` (the window's
/// own frame, if any, comes on top).
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.unwrap();
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight]", vec![])
        .await
        .unwrap();
    let (iw, ih) = (
        inner[0].as_u64().unwrap() as u32,
        inner[1].as_u64().unwrap() as u32,
    );
    if (iw, ih) != (w, h) {
        c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
            .await
            .unwrap();
    }
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = artifacts().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

/// Evaluates `script` (a function body) until it returns something truthy.
async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = c.execute(script, vec![]).await.expect("script runs");
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let page = c.source().await.unwrap_or_default();
            panic!("timed out waiting for {what}; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path(), &["--http", "127.0.0.1:0"]);
    let base = server.http.clone().unwrap();
    let cabs = cabinets(&server.url, 10, None, Duration::from_millis(500)).await;
    let driver = chromedriver();
    let c = browser(&driver).await;

    // The fleet: ten rows, live.
    c.goto(&format!("{base}/")).await.unwrap();
    viewport(&c, 1280, 800).await;
    until(
        &c,
        "ten session rows",
        "return document.querySelectorAll('tr.session-row').length === 10",
    )
    .await;
    let devices = c
        .execute(
            "return [...document.querySelectorAll('tr.session-row')].map(r => r.dataset.device)",
            vec![],
        )
        .await
        .unwrap();
    let expected: Vec<String> = (1..=10).map(|i| format!("cab-{i:03}")).collect();
    assert_eq!(devices, json!(expected));
    until(
        &c,
        "the WebSocket",
        "return document.getElementById('live').classList.contains('on')",
    )
    .await;
    until(
        &c,
        "a live telemetry value",
        "const e = document.querySelector('[data-latest=\"charging.v1.telemetry\"]'); return e && /^cab-0\\d\\d: \\{/.test(e.textContent)",
    )
    .await;
    until(
        &c,
        "the session count",
        "return document.getElementById('stat-sessions').textContent === '10'",
    )
    .await;
    // The rate charts: a line once two samples are in, a rate above zero,
    // and the page's own subscription counted.
    until(
        &c,
        "a telemetry rate chart",
        r#"const ch = document.querySelector('[data-channel="charging.v1.telemetry"]');
           return ch && ch.querySelector('polyline') && / 1 subscriber /.test(ch.textContent)
               && parseFloat(ch.querySelector('.rate').textContent) > 0"#,
    )
    .await;
    // A server alone shows no cluster.
    assert_eq!(
        c.execute(
            "return [document.getElementById('cluster').hidden, document.getElementById('cluster-card').hidden]",
            vec![],
        )
        .await
        .unwrap(),
        json!([true, true])
    );
    screenshot(&c, "fleet-1280x800.png").await;

    // A device page, reached by clicking its row.
    c.find(Locator::Css("tr.session-row[data-device='cab-003']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the device page",
        "return location.hash === '#/device/cab-003'",
    )
    .await;
    let form = c
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("call-start_charging"))
        .await
        .expect("a form for start_charging");
    // The retained value the call will change, as it is before.
    let retained = "retained-charging_v1_variables-cab-003_charging";
    until(
        &c,
        "cab-003's retained charging slots",
        &format!("const e = document.getElementById('{retained}'); return e && e.textContent.includes('\"none\"')"),
    )
    .await;
    // The form is prefilled with a valid request.
    let prefilled = c
        .execute(
            "return JSON.parse(document.getElementById('req-start_charging').value)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(prefilled, json!({ "slot": 0, "target_soc_percent": 1 }));
    let text = c.find(Locator::Id("req-start_charging")).await.unwrap();
    // A refusal shows as an error, then a call that succeeds.
    text.clear().await.unwrap();
    text.send_keys(r#"{"slot": 60, "target_soc_percent": 75}"#)
        .await
        .unwrap();
    form.click().await.unwrap();
    let err = until(
        &c,
        "the refusal",
        "const r = document.getElementById('result-start_charging'); return r && r.classList.contains('err') && r.textContent",
    )
    .await;
    assert!(err.as_str().unwrap().contains("404"), "{err}");
    text.clear().await.unwrap();
    text.send_keys(r#"{"slot": 6, "target_soc_percent": 75}"#)
        .await
        .unwrap();
    form.click().await.unwrap();
    let result = until(
        &c,
        "the call's reply",
        "const r = document.getElementById('result-start_charging'); return r && r.classList.contains('ok') && r.textContent",
    )
    .await;
    let result = result.as_str().unwrap();
    assert!(result.contains("200 OK"), "{result}");
    assert!(
        result.contains("\"eta_s\": 900") && result.contains("\"slot\": 6"),
        "{result}"
    );
    // The cabinet publishes its new charging slots; the page shows them live.
    until(
        &c,
        "the retained value to change to slot 6",
        &format!("const e = document.getElementById('{retained}'); return e && e.textContent.includes('\"6\"')"),
    )
    .await;
    assert!(cabs[2].cabinet.charging_slots() == "6");
    screenshot(&c, "device-1280x800.png").await;

    // A phone's width: nothing overflows the page sideways.
    c.goto(&format!("{base}/#/")).await.unwrap();
    viewport(&c, 390, 844).await;
    until(
        &c,
        "ten rows on a phone",
        "return document.querySelectorAll('tr.session-row').length === 10",
    )
    .await;
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than the phone: {overflow}"
    );
    let table_overflow = c
        .execute(
            "const w = document.querySelector('.table-wrap'); return w.scrollWidth - w.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        table_overflow.as_i64().unwrap() <= 0,
        "the sessions table scrolls sideways: {table_overflow}"
    );
    screenshot(&c, "fleet-phone.png").await;
    c.goto(&format!("{base}/#/device/cab-003")).await.unwrap();
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("call-start_charging"))
        .await
        .unwrap();
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the device page is wider than the phone: {overflow}"
    );
    screenshot(&c, "device-phone.png").await;

    c.close().await.unwrap();
    for cab in cabs {
        cab.close().await;
    }
}

/// A node of a cluster: the header and the cluster panel say `connected`,
/// then `degraded` with a warning while NATS is down, then `connected`
/// again, with the link's loss and resynchronisation counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_cluster_link() {
    let data = tempfile::tempdir().unwrap();
    let store = data.path().join("nats");
    let mut nats = common::Nats::start(&store, None);
    let port = nats.port;
    let server = common::serve(
        &data.path().join("a"),
        &[
            "--http",
            "127.0.0.1:0",
            "--cluster",
            &nats.url,
            "--node-id",
            "a",
        ],
    );
    let base = server.http.clone().unwrap();
    let driver = chromedriver();
    let c = browser(&driver).await;
    c.goto(&format!("{base}/")).await.unwrap();
    viewport(&c, 1280, 800).await;
    let pill = |mode: &str| {
        format!(
            "const p = document.getElementById('cluster'); \
             return !p.hidden && p.classList.contains('{mode}') \
                 && document.getElementById('cluster-text').textContent === 'node a · {mode}' \
                 && document.getElementById('cluster-mode').textContent === '{mode}'"
        )
    };
    until(&c, "the cluster connected", &pill("connected")).await;
    assert_eq!(
        c.execute(
            "return document.getElementById('cluster-warning').hidden",
            vec![]
        )
        .await
        .unwrap(),
        json!(true)
    );

    nats.child.0.kill().unwrap();
    let _ = nats.child.0.wait();
    until(&c, "the cluster degraded", &pill("degraded")).await;
    until(
        &c,
        "the warning and the lost link counted",
        "return !document.getElementById('cluster-warning').hidden \
             && /Link lost \\/ resynchronised[1-9]\\d* \\/ 0/.test(document.getElementById('cluster-facts').textContent)",
    )
    .await;
    screenshot(&c, "cluster-degraded.png").await;

    let nats = common::Nats::start(&store, Some(port));
    until(&c, "the cluster connected again", &pill("connected")).await;
    until(
        &c,
        "the resynchronisation counted",
        "return document.getElementById('cluster-warning').hidden \
             && /Link lost \\/ resynchronised[1-9]\\d* \\/ [1-9]/.test(document.getElementById('cluster-facts').textContent)",
    )
    .await;

    c.close().await.unwrap();
    drop((server, nats));
}
