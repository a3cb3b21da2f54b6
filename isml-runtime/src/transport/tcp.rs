//! TCP transport (`tcp://host:port`).

use tokio::net::TcpStream;

use super::{Transport, TransportError};

pub(crate) fn transport(stream: TcpStream, max_frame: Option<usize>) -> Transport {
    // Frames are coalesced by the session's writer; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown".into());
    Transport::from_io(stream, "tcp", peer, max_frame)
}

pub(crate) async fn tcp_stream(addr: &str) -> Result<TcpStream, TransportError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| TransportError::io(format!("connecting to tcp://{addr}"), e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub(crate) async fn connect(
    addr: &str,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    Ok(transport(tcp_stream(addr).await?, max_frame))
}
