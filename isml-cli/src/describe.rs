//! `isml describe`: a wire-cost table of a schema's messages, and a table
//! of its services' methods.

use isml_runtime::wire::{FrameHeader, stream_frame_len};
use isml_schema::size::payload_size;
use isml_schema::{Schema, TypeDef, TypeDefKind, TypeId};

use crate::cli::DescribeArgs;
use crate::output::outln;
use crate::{Failure, Outcome};

pub(crate) fn describe(a: &DescribeArgs) -> Outcome {
    if let Some(url) = &a.remote {
        return remote(a, url);
    }
    let Some(file) = &a.file else {
        return Err(Failure::usage(
            "describe needs a schema file or --remote URL",
        ));
    };
    let schema = crate::commands::load(&a.includes, std::slice::from_ref(file))?;
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut flagged = 0;
    let mut types: Vec<_> = schema
        .types_iter()
        .filter(|(_, t)| !matches!(t.kind, TypeDefKind::Enum(_)))
        .collect();
    // Messages with ids first, by id; then nested types by name.
    types.sort_by_key(|(_, t)| (t.message_id().is_none(), t.message_id(), t.full_name()));
    for (id, t) in types {
        let size = payload_size(&schema, id);
        let fields = match &t.kind {
            TypeDefKind::Message(m) => m.fields.len(),
            TypeDefKind::Union(u) => u.variants.len(),
            TypeDefKind::Enum(_) => 0,
        };
        let frame_max = match (t.message_id(), size.max) {
            (Some(mid), Some(max)) => Some(stream_frame_len(
                &FrameHeader::one_way(mid),
                usize::try_from(max).unwrap_or(usize::MAX),
            )),
            _ => None,
        };
        let flag = match (a.mtu, frame_max) {
            (Some(mtu), Some(f)) if f as u64 > mtu => {
                flagged += 1;
                "!"
            }
            _ => "",
        };
        rows.push([
            flag.to_string(),
            t.message_id().map_or("-".into(), |i| i.to_string()),
            t.full_name(),
            fields.to_string(),
            format!("{:016x}", schema.fingerprint(id)),
            size.min.to_string(),
            size.max.map_or("unbounded".into(), |m| m.to_string()),
            t.docs
                .first()
                .map(|d| d.trim().to_string())
                .unwrap_or_default(),
        ]);
    }
    let header = [
        "",
        "ID",
        "NAME",
        "FIELDS",
        "FINGERPRINT",
        "MIN",
        "MAX",
        "DESCRIPTION",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 8]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 7 {
                s.push_str(c);
            } else if matches!(i, 1 | 3 | 5 | 6) {
                s.push_str(&format!("{c:>w$}  "));
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    outln!("{}", line(header))?;
    for r in &rows {
        outln!("{}", line(r.each_ref().map(String::as_str)))?;
    }
    outln!()?;
    outln!(
        "MIN and MAX: encoded payload bytes; unbounded: a string, bytes, list or map without max_len, or recursion."
    )?;
    if let Some(mtu) = a.mtu {
        outln!(
            "! = the largest one-way stream frame (payload plus 2 or more bytes of framing) exceeds the MTU of {mtu} bytes: {flagged} message(s)."
        )?;
    }
    methods(&schema)?;
    Ok(0)
}

/// The methods of every service: id, form, request, response and method
/// fingerprint (wire format §8.1). Nothing when the schema has no service.
fn methods(schema: &Schema) -> Result<(), Failure> {
    if schema.services.is_empty() {
        return Ok(());
    }
    let name = |id: TypeId| {
        schema
            .get(id)
            .map_or_else(|| format!("#{}", id.0), TypeDef::full_name)
    };
    let header = [
        "SERVICE",
        "ID",
        "METHOD",
        "KIND",
        "REQUEST",
        "RESPONSE",
        "FINGERPRINT",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut once = false;
    for svc in &schema.services {
        for m in &svc.methods {
            once |= m.once;
            rows.push([
                svc.full_name(),
                m.id.to_string(),
                m.name.clone(),
                if m.once {
                    format!("{}, once", m.kind())
                } else {
                    m.kind().to_string()
                },
                name(m.request),
                m.response.map_or_else(|| "-".to_string(), name),
                format!("{:016x}", m.fingerprint(schema)),
            ]);
        }
    }
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 1 {
                s.push_str(&format!("{c:>w$}  "));
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    outln!()?;
    outln!("{}", line(header))?;
    for r in &rows {
        outln!("{}", line(r.each_ref().map(String::as_str)))?;
    }
    outln!()?;
    outln!(
        "KIND: one-way, unary, server streaming, client streaming or bidirectional streaming; FINGERPRINT: over the request, the response and the kind."
    )?;
    if once {
        outln!(
            "once: `[once]`, callers send it through the session's reliable state, so that it runs once across reconnects (not part of the fingerprint)."
        )?;
    }
    Ok(())
}

/// `isml describe --remote URL`: connects, asks the peer's reflection
/// service, prints its services and the `.isml` text of their types.
fn remote(a: &DescribeArgs, url: &str) -> Outcome {
    use isml_runtime::client::Client;
    use isml_runtime::handshake::Credentials;
    use std::time::Duration;

    let timeout = Duration::from_secs(a.timeout.max(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    let description = rt.block_on(async {
        let mut builder = Client::builder(url)
            .agent(concat!("isml-cli/", env!("CARGO_PKG_VERSION")))
            .handshake_timeout(timeout);
        if let Some(t) = &a.token {
            builder = builder.credentials(Credentials::Token(t.clone()));
        }
        if let Some(id) = &a.device_id {
            builder = builder.device_id(id);
        }
        let client = builder
            .connect()
            .await
            .map_err(|e| Failure::invalid(format!("cannot connect to {url}: {e}")))?;
        let d = isml_runtime::rpc::describe(&client, timeout)
            .await
            .map_err(|e| Failure::invalid(format!("{url}: {e}")));
        client.close("describe done").await;
        d
    })?;
    outln!("// {url}: {} service(s)", description.services.len())?;
    for s in &description.services {
        outln!("// service {}", s.name)?;
        for (id, fp) in &s.methods {
            outln!("//   method {id:>5}  fingerprint {fp:016x}")?;
        }
    }
    for (id, fp) in &description.types {
        outln!("// type id {id:>5}  fingerprint {fp:016x}")?;
    }
    if description.schema.is_empty() {
        outln!("// (it serves no service)")?;
    } else {
        outln!("{}", description.schema.trim_end())?;
    }
    Ok(0)
}
