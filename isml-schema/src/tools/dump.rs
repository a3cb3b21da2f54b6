//! A compact, stable text rendering of the IR, for snapshot tests and for
//! humans. Spans are left out so that the dump only changes when the schema
//! means something different (or its docs change).

use std::fmt::Write as _;

use crate::ir::*;

/// Renders `schema` as indented text, one package after another.
pub(crate) fn dump(schema: &Schema) -> String {
    let mut out = String::new();
    for pkg in schema.packages_iter() {
        let _ = writeln!(out, "package {}", pkg.name);
        for line in pkg.docs {
            let _ = writeln!(out, "  //!{}", prefixed(line));
        }
        for (id, def) in &pkg.types {
            docs(&mut out, "  ", &def.docs);
            let fp = schema.fingerprint(*id);
            match &def.kind {
                TypeDefKind::Enum(e) => {
                    let _ = writeln!(out, "  enum {} (#{} fp={fp:016x})", def.name, id.0);
                    for v in &e.variants {
                        docs(&mut out, "    ", &v.docs);
                        let _ = writeln!(out, "    {} = {}", v.name, v.value);
                    }
                }
                TypeDefKind::Message(m) => {
                    let _ = writeln!(
                        out,
                        "  message {}{} (#{} fp={fp:016x})",
                        def.name,
                        id_attr(m.id),
                        id.0
                    );
                    for f in &m.fields {
                        docs(&mut out, "    ", &f.docs);
                        let _ = writeln!(
                            out,
                            "    {} {}: {}{}",
                            f.tag,
                            f.name,
                            f.ty.display(schema),
                            field_attrs(f)
                        );
                    }
                    if !m.reserved.is_empty() {
                        let list: Vec<String> = m
                            .reserved
                            .iter()
                            .map(|r| {
                                if r.start() == r.end() {
                                    r.start().to_string()
                                } else {
                                    format!("{}..={}", r.start(), r.end())
                                }
                            })
                            .collect();
                        let _ = writeln!(out, "    reserved {}", list.join(", "));
                    }
                }
                TypeDefKind::Union(u) => {
                    let _ = writeln!(
                        out,
                        "  union {}{} (#{} fp={fp:016x})",
                        def.name,
                        id_attr(u.id),
                        id.0
                    );
                    for v in &u.variants {
                        docs(&mut out, "    ", &v.docs);
                        let _ = writeln!(out, "    {} {}: {}", v.tag, v.name, v.ty.display(schema));
                    }
                }
            }
        }
        for svc in &pkg.services {
            docs(&mut out, "  ", &svc.docs);
            let _ = writeln!(out, "  service {}", svc.name);
            for m in &svc.methods {
                docs(&mut out, "    ", &m.docs);
                let name = |id: TypeId| {
                    schema
                        .get(id)
                        .map_or_else(|| format!("#{}", id.0), TypeDef::full_name)
                };
                let stream = |s: bool| if s { "stream " } else { "" };
                let response = match m.response {
                    None => String::new(),
                    Some(r) => format!(" -> {}{}", stream(m.server_streaming), name(r)),
                };
                let _ = writeln!(
                    out,
                    "    rpc {} {}({}{}){response}{} ({} fp={:016x})",
                    m.id,
                    m.name,
                    stream(m.client_streaming),
                    name(m.request),
                    if m.once { " [once]" } else { "" },
                    m.kind(),
                    m.fingerprint(schema)
                );
            }
        }
        for ch in &pkg.channels {
            docs(&mut out, "  ", &ch.docs);
            let ty = schema
                .get(ch.ty)
                .map_or_else(|| format!("#{}", ch.ty.0), TypeDef::full_name);
            let mut flags = Vec::new();
            if ch.retain {
                flags.push("retain");
            }
            if ch.keyed {
                flags.push("keyed");
            }
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", flags.join(", "))
            };
            let _ = writeln!(out, "  channel {} {}: {ty}{flags}", ch.id, ch.name);
        }
    }
    out
}

fn docs(out: &mut String, indent: &str, docs: &[String]) {
    for line in docs {
        let _ = writeln!(out, "{indent}///{}", prefixed(line));
    }
}

/// A doc line with its separating space, or nothing for an empty line.
fn prefixed(line: &str) -> String {
    if line.is_empty() {
        String::new()
    } else {
        format!(" {line}")
    }
}

fn id_attr(id: Option<u32>) -> String {
    id.map(|n| format!(" [id = {n}]")).unwrap_or_default()
}

fn field_attrs(f: &FieldDef) -> String {
    let mut attrs = Vec::new();
    if f.deprecated {
        attrs.push("deprecated".to_string());
    }
    if let Some(unit) = &f.unit {
        attrs.push(format!("unit = {unit:?}"));
    }
    if let Some(n) = f.max_len {
        attrs.push(format!("max_len = {n}"));
    }
    if let Some((lo, hi)) = f.range {
        attrs.push(format!("range = {lo}..={hi}"));
    }
    if attrs.is_empty() {
        String::new()
    } else {
        format!(" [{}]", attrs.join(", "))
    }
}
