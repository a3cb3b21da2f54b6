//! 10,000 concurrent reliable sessions over real TCP, each disconnected by
//! force and resumed: none is dropped, none starts over, and a message each
//! sends at least once after the resume arrives once.
//!
//! The devices run in a child process (this test binary again), so that the
//! server's and the devices' sockets (10,000 each) have a file table each.

#![cfg(feature = "tcp")]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isml_runtime::client::{Backoff, Client, ClientEvent};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::{Delivery, codes};
use tokio::task::JoinSet;

use common::{AnyMessage, Fault};

const SESSIONS: usize = 10_000;

/// Raises the open-file limit: to 65,536 where allowed (root may raise the
/// hard limit), else the soft limit to the hard one; gives the new limit.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const WANT: u64 = 65_536;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if hard < WANT && setrlimit(Resource::RLIMIT_NOFILE, WANT, WANT).is_ok() {
        return WANT;
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    hard
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The device side, run by `ten_thousand_sessions_resume_after_a_forced_disconnect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_process_for_the_many_sessions_test() {
    let Ok(url) = std::env::var("ISML_MANY_SESSIONS_URL") else {
        return; // Run by the parent test only.
    };
    raise_fd_limit();
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(2),
        jitter: 0.5,
    };
    // Connect in waves, as a fleet does after a server start.
    let mut clients = Vec::with_capacity(SESSIONS);
    let mut wave = JoinSet::new();
    for i in 0..SESSIONS {
        let builder = Client::builder(url.clone())
            .device_id(format!("cabinet-{i:05}"))
            .types(AnyMessage::types())
            .reconnect(backoff)
            .keepalive(None)
            .handshake_timeout(Duration::from_secs(60))
            .resume(true);
        wave.spawn(async move { (i, builder.connect().await) });
        if wave.len() >= 256 {
            let (i, c) = wave.join_next().await.unwrap().unwrap();
            clients.push((i, c.unwrap_or_else(|e| panic!("device {i}: {e}"))));
        }
    }
    while let Some(r) = wave.join_next().await {
        let (i, c) = r.unwrap();
        clients.push((i, c.unwrap_or_else(|e| panic!("device {i}: {e}"))));
    }
    let mut events: Vec<_> = clients
        .iter()
        .map(|(i, c)| (*i, c.clone(), c.events().unwrap()))
        .collect();
    say(&format!("connected {}", clients.len()));

    // The parent disconnects every session; each must come back resumed.
    let mut waits = JoinSet::new();
    for (i, client, mut rx) in events.drain(..) {
        waits.spawn(async move {
            let resumed = loop {
                match rx.recv().await {
                    Ok(ClientEvent::Connected { resumed, .. }) => break resumed,
                    Ok(_) => continue,
                    Err(e) => panic!("device {i}: events ended: {e}"),
                }
            };
            let handle = client
                .send_with(
                    &Fault {
                        code: i as u32,
                        message: "after resume".into(),
                        ..Default::default()
                    },
                    Delivery::AtLeastOnce,
                )
                .await
                .unwrap_or_else(|e| panic!("device {i}: {e}"));
            let acked = tokio::time::timeout(Duration::from_secs(120), handle).await;
            (resumed, matches!(acked, Ok(Ok(()))))
        });
    }
    let (mut resumed, mut fresh, mut acked) = (0, 0, 0);
    while let Some(r) = waits.join_next().await {
        let (r, a) = r.unwrap();
        if r {
            resumed += 1;
        } else {
            fresh += 1;
        }
        if a {
            acked += 1;
        }
    }
    say(&format!(
        "done resumed {resumed} not-resumed {fresh} acked {acked}"
    ));
    for (_, c) in clients {
        c.close("done").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_resume_after_a_forced_disconnect() {
    let limit = raise_fd_limit();
    assert!(
        limit as usize > SESSIONS + 1_000,
        "the open-file hard limit ({limit}) is too low for {SESSIONS} sessions"
    );
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let s = seen.clone();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::types())
        .max_connections(SESSIONS + 100)
        // Every device comes from one address, all at once.
        .handshake_rate(None)
        .max_unauthenticated(SESSIONS)
        .max_unauthenticated_per_address(SESSIONS)
        .keepalive(None)
        .handshake_timeout(Duration::from_secs(60))
        .session_expiry(Duration::from_secs(120))
        .dispatcher(Dispatcher::new().on::<Fault, _, _>(move |_ctx, m| {
            let s = s.clone();
            async move {
                s.lock().unwrap().insert(m.code);
                Ok(())
            }
        }))
        .start()
        .await
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "devices_process_for_the_many_sessions_test",
            "--exact",
            "--nocapture",
        ])
        .env("ISML_MANY_SESSIONS_URL", &server.urls()[0])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _child = Kill(child);
    let next_line = move |mut lines: std::io::Lines<BufReader<std::process::ChildStdout>>| {
        tokio::task::spawn_blocking(move || {
            let line = loop {
                let l = lines.next().expect("child output").unwrap();
                if l.starts_with("connected") || l.starts_with("done") {
                    break l;
                }
            };
            (line, lines)
        })
    };
    let (line, rest) = tokio::time::timeout(Duration::from_secs(600), next_line(lines))
        .await
        .expect("devices connected in time")
        .unwrap();
    lines = rest;
    assert_eq!(line, format!("connected {SESSIONS}"));
    assert_eq!(server.session_count(), SESSIONS);

    // Every connection torn down by the server at once.
    let started = std::time::Instant::now();
    let mut closes = JoinSet::new();
    for s in server.sessions() {
        closes.spawn(async move {
            s.close_with(codes::UNAVAILABLE, "forced disconnect").await;
        });
    }
    while closes.join_next().await.is_some() {}

    let (line, _) = tokio::time::timeout(Duration::from_secs(600), next_line(lines))
        .await
        .expect("devices resumed in time")
        .unwrap();
    eprintln!(
        "{SESSIONS} sessions resumed in {:?}: {line}",
        started.elapsed()
    );
    assert_eq!(
        line,
        format!("done resumed {SESSIONS} not-resumed 0 acked {SESSIONS}"),
        "every session resumed, none started over, every message acknowledged"
    );
    assert_eq!(seen.lock().unwrap().len(), SESSIONS, "each message handled");
    let stats = server.resume_stats();
    assert_eq!(stats.resumed as usize, SESSIONS, "{stats:?}");
    assert_eq!(stats.expired, 0, "{stats:?}");
}
