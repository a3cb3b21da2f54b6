//! Helpers of the tests that run `isml serve` as a child process: a free
//! loopback port (`:0`, the port read from its `listening on` lines) and a
//! guard that kills the child whatever happens to the test.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isml"))
}

pub(crate) fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

/// `-I schemas schemas/charging.isml`
pub(crate) fn schema_args() -> Vec<String> {
    let dir = schemas();
    vec![
        "-I".into(),
        dir.display().to_string(),
        dir.join("charging.isml").display().to_string(),
    ]
}

/// A child process, killed and reaped when dropped.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// Waits for the exit at most `limit`.
    pub(crate) fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `isml serve`.
pub(crate) struct Server {
    pub(crate) child: Guard,
    /// The first listener's URL.
    pub(crate) url: String,
    /// Every listener's URL, in the order of the `--listen` arguments.
    pub(crate) urls: Vec<String>,
    /// The gateway's URL (`http://127.0.0.1:PORT`), with `--http`.
    pub(crate) http: Option<String>,
}

/// Starts `isml serve` with `data_dir` and `extra` arguments (and
/// `--listen tcp://127.0.0.1:0` unless `extra` has a `--listen`), and waits
/// for a `listening on` line per listener.
pub(crate) fn serve(data_dir: &Path, extra: &[&str]) -> Server {
    let mut cmd = bin();
    cmd.arg("serve")
        .args(schema_args())
        .args(["--data-dir", &data_dir.display().to_string()])
        .args(extra);
    let listeners = extra.iter().filter(|a| **a == "--listen").count();
    let gateways = extra.iter().filter(|a| **a == "--http").count();
    if listeners == 0 {
        cmd.args(["--listen", "tcp://127.0.0.1:0"]);
    }
    let mut child = Guard(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("isml serve starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let mut urls: Vec<String> = (0..listeners.max(1) + gateways)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("isml serve prints `listening on URL` for each listener")
        })
        .collect();
    let http = urls
        .iter()
        .position(|u| u.starts_with("http"))
        .map(|i| urls.remove(i));
    Server {
        child,
        url: urls[0].clone(),
        urls,
        http,
    }
}

/// The resident memory of a process, in bytes (`VmRSS`).
pub(crate) fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// `isml serve` with its log lines (stderr) sent to a channel, for the
/// tests that watch what it logs; listens on `tcp://127.0.0.1:0` (and on
/// the gateway's address with `--http` in `extra`).
pub(crate) fn serve_logged(data_dir: &Path, extra: &[&str]) -> (Server, mpsc::Receiver<String>) {
    let mut cmd = bin();
    cmd.arg("serve")
        .args(schema_args())
        .args(["--data-dir", &data_dir.display().to_string()])
        .args(["--listen", "tcp://127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info");
    let gateways = extra.iter().filter(|a| **a == "--http").count();
    let mut child = Guard(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("isml serve starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let (log_tx, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = log_tx.send(line);
        }
    });
    let mut urls: Vec<String> = (0..1 + gateways)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("isml serve prints `listening on URL` for each listener")
        })
        .collect();
    let http = urls
        .iter()
        .position(|u| u.starts_with("http"))
        .map(|i| urls.remove(i));
    (
        Server {
            child,
            url: urls[0].clone(),
            urls,
            http,
        },
        logs,
    )
}

/// Waits (at most `limit`) for a log line containing `text`; the lines
/// before it are consumed.
pub(crate) fn wait_log(logs: &mpsc::Receiver<String>, text: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match logs.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line with {text:?} within {limit:?}"),
        }
    }
}

/// A `nats-server` with JetStream on, on a free loopback port, its store
/// in `store`; killed when dropped.
pub(crate) struct Nats {
    pub(crate) child: Guard,
    pub(crate) port: u16,
    pub(crate) url: String,
}

impl Nats {
    /// Starts it (on `port`, or a free one) and waits until it listens.
    pub(crate) fn start(store: &Path, port: Option<u16>) -> Nats {
        let port = port.unwrap_or_else(|| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        let child = Guard(
            Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
                .arg("-sd")
                .arg(store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server on PATH (apt-get install nats-server)"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats {
            child,
            port,
            url: format!("nats://127.0.0.1:{port}"),
        }
    }
}
