//! The built-in reflection service (service index 0, wire format §2.7):
//! `describe` answers with the `.isml` text of the services a side serves
//! and of their types, like gRPC reflection.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

use super::client::Conn;
use super::stream::{send_error, status_of};
use super::{CallError, Service, ServiceDescriptor};
use crate::descriptor::{ExportError, TypeRef, export_package, export_schema};
use crate::session::{PeerService, Session, Started, codes};
use crate::wire::{CallHeader, ErrorBody, Frame, FrameHeader, FrameKind, Reader, varint, write};

/// The method id of `describe`.
pub const DESCRIBE: u32 = 1;

/// What [`describe`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Description {
    /// The `.isml` text of the peer's services and their types.
    pub schema: String,
    /// `(type id, fingerprint)` of the types its methods take and give.
    pub types: Vec<(u32, u64)>,
    /// The services and methods (with fingerprints) it announced.
    pub services: Vec<PeerService>,
}

fn short<'a>(package: &str, full: &'a str) -> std::borrow::Cow<'a, str> {
    match full.strip_prefix(package).and_then(|r| r.strip_prefix('.')) {
        Some(name) if !package.is_empty() => name.into(),
        _ => format!(".{full}").into(),
    }
}

/// The `.isml` text of `services` and of every type their methods name,
/// one section per package.
pub fn schema_text(services: &[&'static ServiceDescriptor]) -> String {
    let mut by_package: BTreeMap<&str, Vec<&'static ServiceDescriptor>> = BTreeMap::new();
    for s in services {
        let package = s.name.rsplit_once('.').map_or("", |(p, _)| p);
        by_package.entry(package).or_default().push(s);
    }
    let mut out = String::new();
    for (package, services) in by_package {
        let types: Vec<TypeRef> = services
            .iter()
            .flat_map(|s| s.methods.iter())
            .flat_map(|m| std::iter::once(m.request).chain(m.response))
            .map(|r| TypeRef::Message(r.descriptor))
            .collect();
        match export_schema(&types) {
            Ok(text) => out.push_str(&text),
            Err(e) => {
                let _ = writeln!(out, "package {package};\n// types not exported: {e}");
            }
        }
        for s in services {
            write_service(&mut out, package, s);
        }
    }
    out
}

/// `service Name { rpc ...; }` in package `package`.
fn write_service(out: &mut String, package: &str, s: &ServiceDescriptor) {
    let name = s.name.rsplit_once('.').map_or(s.name, |(_, n)| n);
    let _ = writeln!(out, "\nservice {name} {{");
    for m in s.methods {
        let req = short(package, m.request.name);
        let stream_in = if m.kind.client_streaming() {
            "stream "
        } else {
            ""
        };
        let _ = write!(out, "    rpc {}({stream_in}{req})", m.name);
        if let Some(resp) = m.response {
            let stream_out = if m.kind.server_streaming() {
                "stream "
            } else {
                ""
            };
            let _ = write!(out, " -> {stream_out}{}", short(package, resp.name));
        }
        let once = if m.once { " [once]" } else { "" };
        let _ = writeln!(out, " = {}{once};", m.id);
    }
    out.push_str("}\n");
}

/// [`export_schema`](crate::export_schema) with services: the `.isml` text
/// of `types`, of `services`, and of every type either refers to, so that a
/// team defining its protocol in Rust (`#[derive(Message)]`,
/// `#[isml_runtime::service]`) can hand a schema to a device team. Compiling
/// the text gives the same type and method fingerprints.
///
/// A service's descriptor is `NameClient::descriptor()` (or the server's),
/// for derived and generated services alike. Everything must share one
/// package, as for `export_schema`; a service of another package is
/// [`ExportError::MixedPackages`].
///
/// ```
/// # #[cfg(feature = "derive")] {
/// use isml_runtime::rpc::{Call, Status};
///
/// #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
/// #[isml(id = 1, package = "charging.v1")]
/// struct StartCharging {
///     #[isml(tag = 1)]
///     slot: u8,
/// }
///
/// #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
/// #[isml(id = 2, package = "charging.v1")]
/// struct ChargeStarted {
///     #[isml(tag = 1)]
///     session: u32,
/// }
///
/// #[isml_runtime::service(package = "charging.v1")]
/// trait Charger {
///     #[rpc(id = 1)]
///     async fn start_charging(&self, call: Call, req: StartCharging) -> Result<ChargeStarted, Status>;
/// }
///
/// let text = isml_runtime::export_schema_with(&[], &[ChargerClient::descriptor()])?;
/// assert!(text.contains("package charging.v1;"));
/// assert!(text.contains("message StartCharging [id = 1] {"));
/// assert!(text.contains("service Charger {\n    rpc start_charging(StartCharging) -> ChargeStarted = 1;\n}"));
/// # }
/// # Ok::<(), isml_runtime::ExportError>(())
/// ```
pub fn export_schema_with(
    types: &[TypeRef],
    services: &[&'static ServiceDescriptor],
) -> Result<String, ExportError> {
    let mut all = types.to_vec();
    all.extend(
        services
            .iter()
            .flat_map(|s| s.methods.iter())
            .flat_map(|m| std::iter::once(m.request).chain(m.response))
            .map(|r| TypeRef::Message(r.descriptor)),
    );
    let (package, mut out) = export_package(&all, &[])?;
    for s in services {
        let theirs = s.name.rsplit_once('.').map_or("", |(p, _)| p);
        if theirs != package {
            return Err(ExportError::MixedPackages {
                first: package.into(),
                second: theirs.into(),
            });
        }
        write_service(&mut out, package, s);
    }
    Ok(out)
}

fn types_of(services: &[&'static ServiceDescriptor]) -> Vec<(u32, u64)> {
    let mut types: BTreeMap<u32, u64> = BTreeMap::new();
    for m in services.iter().flat_map(|s| s.methods.iter()) {
        for r in std::iter::once(m.request).chain(m.response) {
            types.entry(r.type_id).or_insert_with(|| (r.fingerprint)());
        }
    }
    types.into_iter().collect()
}

/// Answers a call of the reflection service.
pub(crate) fn answer(
    _session: &Session,
    services: &[Arc<dyn Service>],
    correlation: u64,
    method: u32,
) -> Started {
    if method != DESCRIBE {
        let body = ErrorBody {
            code: codes::UNIMPLEMENTED,
            message: &format!("the reflection service has no method id {method}"),
        };
        let mut buf = BytesMut::with_capacity(body.encoded_len());
        body.encode(&mut buf);
        return Started::Done(Some(Frame::new(
            FrameHeader::error(correlation),
            buf.freeze(),
        )));
    }
    let descs: Vec<&'static ServiceDescriptor> = services.iter().map(|s| s.descriptor()).collect();
    let schema = schema_text(&descs);
    let types = types_of(&descs);
    let mut buf = BytesMut::with_capacity(schema.len() + 16 + types.len() * 10);
    write::len_prefixed(&mut buf, schema.as_bytes());
    varint::put(&mut buf, types.len() as u64);
    for (id, fp) in types {
        varint::put(&mut buf, u64::from(id));
        buf.put_u64_le(fp);
    }
    Started::Done(Some(Frame::new(
        FrameHeader::response(1, correlation),
        buf.freeze(),
    )))
}

fn decode_description(
    payload: &[u8],
) -> Result<(String, Vec<(u32, u64)>), crate::wire::DecodeError> {
    let mut r = Reader::new(payload);
    let schema = r.str()?.to_owned();
    let n = r.uvarint()?;
    let mut types = Vec::with_capacity((n as usize).min(r.remaining() / 9));
    for _ in 0..n {
        let id = r.u32()?;
        let raw = r.raw(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(raw);
        types.push((id, u64::from_le_bytes(a)));
    }
    r.finish("describe answer")?;
    Ok((schema, types))
}

/// Asks the peer what it serves: its services, methods and their types
/// (`isml describe --remote URL` prints this).
pub async fn describe(conn: impl Into<Conn>, timeout: Duration) -> Result<Description, CallError> {
    const METHOD: &str = "isml.Reflection/describe";
    let conn = conn.into();
    let session = match &conn {
        Conn::Session(s) => s.clone(),
        Conn::Client(c) => c.session().ok_or_else(|| CallError::Closed {
            method: METHOD,
            reason: "not connected".to_owned(),
        })?,
        Conn::Remote(r) => {
            return Err(CallError::Unimplemented {
                method: METHOD,
                detail: format!(
                    " (reflection does not cross cluster nodes; device {} is on node {})",
                    r.device_id(),
                    r.node()
                ),
            });
        }
    };
    let correlation = session.next_correlation();
    let header = FrameHeader::call(
        1,
        correlation,
        CallHeader {
            service: 0,
            method: DESCRIBE,
            deadline_ms: timeout.as_millis().clamp(1, u128::from(u64::MAX)) as u64,
        },
    );
    let frame = Frame::new(header, Bytes::new());
    let reply = match session
        .exchange(frame, Some(Instant::now() + timeout))
        .await
    {
        Ok(f) => f,
        Err(crate::session::Exchange::Send(e)) => return Err(send_error(METHOD, e)),
        Err(crate::session::Exchange::Disconnected(reason)) => {
            return Err(CallError::Closed {
                method: METHOD,
                reason: reason.to_string(),
            });
        }
        Err(crate::session::Exchange::Timeout) => {
            return Err(CallError::Timeout {
                method: METHOD,
                after: timeout,
            });
        }
    };
    if reply.header.kind != FrameKind::Response {
        return Err(status_of(METHOD, &reply.payload));
    }
    let (schema, types) =
        decode_description(&reply.payload).map_err(|source| CallError::Decode {
            method: METHOD,
            message: "describe answer",
            source: Box::new(source),
        })?;
    Ok(Description {
        schema,
        types,
        services: session.peer_services().to_vec(),
    })
}
