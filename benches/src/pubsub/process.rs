//! The brokers as child processes: every broker of the comparison runs in a
//! process of its own, so that its RSS is its own and the load generator's
//! memory and threads are never counted for it.
//!
//! mosquitto is Debian's binary, started with a generated configuration.
//! rumqttd and the isml broker are embedded in the bench binary itself and
//! run by re-executing it with `--broker rumqttd|isml --port N` (see
//! [`child_main`]). Every child is held by a [`BrokerProcess`], which kills it
//! when dropped, also when the bench panics; the re-executed children also
//! exit when their standard input closes, so they do not outlive a bench that
//! was killed.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Broker;

static BROKER_STATS: AtomicBool = AtomicBool::new(false);

/// Whether isml brokers started from now on print their counters on stderr
/// every second (`--broker-stats`).
pub fn set_broker_stats(on: bool) {
    BROKER_STATS.store(on, Ordering::Relaxed);
}

/// A running broker; the process is killed and reaped on drop.
#[derive(Debug)]
pub struct BrokerProcess {
    /// Which broker it is.
    pub broker: Broker,
    /// The loopback port it listens on.
    pub port: u16,
    child: Child,
    /// mosquitto's generated configuration, removed on drop.
    config: Option<PathBuf>,
}

impl BrokerProcess {
    /// Starts `broker` on a free loopback port and waits until it accepts
    /// connections (at most 10 s).
    pub fn start(broker: Broker) -> Result<BrokerProcess, String> {
        let port = free_port()?;
        let (child, config) = match broker {
            Broker::Mosquitto => {
                let path = std::env::temp_dir().join(format!(
                    "isml-pubsub-compare-{}-{port}.conf",
                    std::process::id()
                ));
                // One loopback listener, anonymous clients, no persistence,
                // no limit on connections, mosquitto's default queue of 1,000
                // QoS 1 messages per client, and Nagle off as on the other
                // brokers' sockets (isml's always, rumqttc's clients here).
                let conf = format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     log_dest none\nmax_connections -1\nset_tcp_nodelay true\n"
                );
                std::fs::write(&path, conf)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                let child = Command::new(mosquitto_binary())
                    .arg("-c")
                    .arg(&path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| {
                        format!(
                            "cannot start mosquitto ({e}); install it with \
                             `apt-get install -y mosquitto`"
                        )
                    })?;
                (child, Some(path))
            }
            Broker::Rumqttd | Broker::Isml => {
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot find the bench binary: {e}"))?;
                let mut command = Command::new(exe);
                command.args(["--broker", broker.name(), "--port", &port.to_string()]);
                if broker == Broker::Isml && BROKER_STATS.load(Ordering::Relaxed) {
                    command.arg("--stats");
                }
                let child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start the {} child: {e}", broker.name()))?;
                (child, None)
            }
        };
        let mut process = BrokerProcess {
            broker,
            port,
            child,
            config,
        };
        process.wait_listening()?;
        Ok(process)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set size in bytes (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss(&self) -> Result<u64, String> {
        rss_of(self.pid())
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited at start: {status}", self.broker.name()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not listen on {addr} within 10 s",
                    self.broker.name()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = &self.config {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn mosquitto_binary() -> PathBuf {
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("mosquitto")
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// `VmRSS` of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS line in {path}"))
}

/// The re-executed bench as a broker: `--broker rumqttd|isml --port N`.
/// Returns `None` when the arguments do not ask for a broker. Runs until the
/// parent closes standard input (or dies), then exits the process.
pub fn child_main(args: &[String]) -> Option<()> {
    let broker = args
        .iter()
        .position(|a| a == "--broker")
        .and_then(|i| args.get(i + 1))?;
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok())?;
    // The parent holds our stdin: EOF means it is gone.
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    match broker.as_str() {
        "rumqttd" => super::rumqttd::run(port),
        "isml" => super::isml::run_broker(port, args.iter().any(|a| a == "--stats")),
        other => {
            eprintln!("unknown broker `{other}`");
            std::process::exit(2);
        }
    }
    Some(())
}
