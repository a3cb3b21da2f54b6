//! What a schema loaded at run time gives the runtime: the type table that
//! the handshake compares (ids, full names, fingerprints, exactly as generated
//! code declares them) and the channels, for `isml serve`, `isml pub` and
//! `isml sub`.

use isml_runtime::pubsub::ChannelInfo;
use isml_schema::Schema;
use isml_schema::dynamic::Descriptor;
use isml_schema::ir::ChannelDef;

use crate::Failure;

/// `(type id, full name, fingerprint)` of every message and union with an
/// id, by id. Leaked: the runtime takes `'static` tables (generated code's
/// are constants), and a command loads its schema once.
pub(crate) fn type_table(schema: &Schema) -> &'static [(u32, &'static str, u64)] {
    let mut table: Vec<(u32, &'static str, u64)> = schema
        .types
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let id = t.message_id()?;
            let name: &'static str = Box::leak(t.full_name().into_boxed_str());
            Some((
                id,
                name,
                schema.fingerprint(isml_schema::ir::TypeId(i as u32)),
            ))
        })
        .collect();
    table.sort_by_key(|e| e.0);
    Box::leak(table.into_boxed_slice())
}

/// The full name of a channel (`charging.v1.telemetry`).
pub(crate) fn full_name(c: &ChannelDef) -> String {
    if c.package.is_empty() {
        c.name.clone()
    } else {
        format!("{}.{}", c.package, c.name)
    }
}

/// The runtime's description of a channel.
pub(crate) fn channel_info(schema: &Schema, c: &ChannelDef) -> Result<ChannelInfo, Failure> {
    let ty = schema
        .get(c.ty)
        .ok_or_else(|| Failure::invalid(format!("channel `{}` names no type", full_name(c))))?;
    let type_id = ty.message_id().ok_or_else(|| {
        Failure::invalid(format!(
            "channel `{}` carries `{}`, which has no message id",
            full_name(c),
            ty.full_name()
        ))
    })?;
    Ok(ChannelInfo {
        id: c.id,
        name: full_name(c),
        type_id,
        fingerprint: schema.fingerprint(c.ty),
        retain: c.retain,
        keyed: c.keyed,
    })
}

/// Every channel of the schema (the schema compiler has checked that their
/// ids are unique across the schemas loaded together).
pub(crate) fn channels(schema: &Schema) -> Result<Vec<ChannelInfo>, Failure> {
    schema
        .channels
        .iter()
        .map(|c| channel_info(schema, c))
        .collect()
}

/// Finds a channel by full name, or by simple name when only one package
/// has it; the error lists the channels there are.
pub(crate) fn find_channel<'s>(schema: &'s Schema, name: &str) -> Result<&'s ChannelDef, Failure> {
    if let Some(c) = schema.channels.iter().find(|c| full_name(c) == name) {
        return Ok(c);
    }
    let simple: Vec<&ChannelDef> = schema.channels.iter().filter(|c| c.name == name).collect();
    match simple.as_slice() {
        [one] => Ok(one),
        [] => {
            let all: Vec<String> = schema.channels.iter().map(full_name).collect();
            Err(Failure::usage(if all.is_empty() {
                format!("--channel: no channel `{name}`: the schemas declare no channel")
            } else {
                format!(
                    "--channel: no channel `{name}`; the schemas declare {}",
                    all.join(", ")
                )
            }))
        }
        many => {
            let names: Vec<String> = many.iter().map(|c| full_name(c)).collect();
            Err(Failure::usage(format!(
                "--channel: `{name}` is ambiguous: {}",
                names.join(", ")
            )))
        }
    }
}

/// The descriptor of the type a channel carries.
pub(crate) fn channel_type<'s>(
    schema: &'s Schema,
    c: &ChannelDef,
) -> Result<Descriptor<'s>, Failure> {
    Descriptor::new(schema, c.ty)
        .ok_or_else(|| Failure::invalid(format!("channel `{}` names no type", full_name(c))))
}

/// The tokio runtime of the commands that talk to servers.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))
}
