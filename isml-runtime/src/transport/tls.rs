//! TLS over TCP with rustls (`tls://host:port`), server and client, with
//! optional client certificates (mutual TLS).
//!
//! The peer's certificate chain is passed to the
//! [`Authenticator`](crate::handshake::Authenticator) as
//! [`AuthRequest::peer_certificates`](crate::handshake::AuthRequest::peer_certificates).

use std::sync::Arc;

pub use rustls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Transport, TransportError};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(e: rustls::Error) -> TransportError {
    TransportError::Protocol {
        layer: "tls",
        peer: "configuration".into(),
        message: e.to_string(),
    }
}

/// A server configuration from a certificate chain and its key. With
/// `client_roots`, clients must present a certificate issued by one of them
/// (mutual TLS); without, client certificates are not requested.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<RootCertStore>,
) -> Result<Arc<ServerConfig>, TransportError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| TransportError::Protocol {
                layer: "tls",
                peer: "configuration".into(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map(Arc::new)
        .map_err(config_error)
}

/// A client configuration trusting `roots`, presenting `identity` (a chain and
/// key) when the server asks for a client certificate.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TransportError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(config_error)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

pub(crate) async fn connect(
    addr: &str,
    host: &str,
    config: Arc<ClientConfig>,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    let stream = super::tcp::tcp_stream(addr).await?;
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| TransportError::InvalidEndpoint {
            url: format!("tls://{addr}"),
            reason: "host is not a valid TLS server name",
        })?;
    let tls = TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| TransportError::Protocol {
            layer: "tls",
            peer: addr.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Transport::from_io(tls, "tls", addr.to_owned(), max_frame))
}

pub(crate) async fn accept(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: String,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    let _ = stream.set_nodelay(true);
    let tls = acceptor
        .accept(stream)
        .await
        .map_err(|e| TransportError::Protocol {
            layer: "tls",
            peer: peer.clone(),
            message: e.to_string(),
        })?;
    let certs: Option<Vec<Vec<u8>>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect());
    let mut t = Transport::from_io(tls, "tls", peer, max_frame);
    if let Some(certs) = certs {
        t.set_peer_certificates(certs);
    }
    Ok(t)
}

pub(crate) fn acceptor(config: Arc<ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}
