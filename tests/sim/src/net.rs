//! The isml transport over turmoil's simulated TCP: a server listener fed
//! by a turmoil `TcpListener`, and a client connector that dials through
//! turmoil's `TcpStream`. Both are the runtime's public hooks
//! ([`Listener::from_incoming`], [`ClientBuilder::connector`]).
//!
//! [`ClientBuilder::connector`]: isml_runtime::client::ClientBuilder::connector

use isml_runtime::transport::{Incoming, Listener, Transport, TransportError};

/// The port the simulated server listens on.
pub const PORT: u16 = 7000;

/// The server's host name in the simulation.
pub const SERVER: &str = "server";

/// The name of device `k`'s host.
pub fn device_host(k: u32) -> String {
    format!("device-{k}")
}

/// The device id device `k` claims.
pub fn device_id(k: u32) -> String {
    format!("device-{k}")
}

fn io_error(context: &str, e: std::io::Error) -> TransportError {
    TransportError::Io {
        context: context.to_owned(),
        source: e,
    }
}

/// Binds the server's port on the current simulated host and hands each
/// accepted connection to the server as a stream-framed transport.
pub async fn listener() -> std::io::Result<Listener> {
    let tcp = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    let connections = futures_util::stream::unfold(tcp, |tcp| async move {
        let accepted = tcp
            .accept()
            .await
            .map(|(stream, peer)| {
                let peer = peer.to_string();
                Incoming::new(peer.clone(), Transport::from_io(stream, "tcp", peer, None))
            })
            .map_err(|e| io_error("accepting a simulated connection", e));
        Some((accepted, tcp))
    });
    Ok(Listener::from_incoming(
        format!("tcp://{SERVER}:{PORT}"),
        connections,
    ))
}

/// Opens a simulated TCP connection to the server.
pub async fn connect() -> Result<Transport, TransportError> {
    let stream = turmoil::net::TcpStream::connect((SERVER, PORT))
        .await
        .map_err(|e| io_error("connecting to the simulated server", e))?;
    Ok(Transport::from_io(stream, "tcp", SERVER.to_owned(), None))
}
