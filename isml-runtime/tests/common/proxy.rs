//! What the reliability and cluster tests share: a TCP proxy that cuts
//! connections, and small helpers around it. Included with `#[path]` by
//! the test binaries that use it.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use isml_runtime::client::Backoff;
use isml_runtime::server::Server;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinSet;

/// A TCP proxy whose connections can be cut (both sockets dropped, as when
/// a modem loses its carrier) and which can refuse new ones for a while.
pub(crate) struct Proxy {
    pub(crate) url: String,
    pub(crate) cut: broadcast::Sender<()>,
    refusing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let (cut, _) = broadcast::channel::<()>(4);
        let refusing = Arc::new(AtomicBool::new(false));
        let (cut2, refusing2) = (cut.clone(), refusing.clone());
        let task = tokio::spawn(async move {
            let mut pipes = JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if refusing2.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let mut stop = cut2.subscribe();
                pipes.spawn(async move {
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = stop.recv() => {}
                    }
                });
                while pipes.try_join_next().is_some() {}
            }
        });
        Proxy {
            url,
            cut,
            refusing,
            task,
        }
    }

    /// Drops every connection through the proxy.
    pub(crate) fn cut(&self) {
        let _ = self.cut.send(());
    }

    pub(crate) fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn tcp_target(server: &Server) -> String {
    server.urls()[0].trim_start_matches("tcp://").to_owned()
}

pub(crate) fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        jitter: 0.5,
    }
}

pub(crate) async fn within<T>(
    what: &str,
    secs: u64,
    fut: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"))
}
