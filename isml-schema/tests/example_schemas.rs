//! The example schemas in the repository's `schemas/` directory compile
//! cleanly and have the shape the rest of the project relies on.

use std::path::Path;

use isml_schema::{LoadOptions, MethodDef, MethodKind, TypeDefKind, load};

fn load_charging() -> isml_schema::Schema {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    match load(&LoadOptions::new([dir.join("charging.isml")])) {
        Ok(schema) => schema,
        Err(err) => panic!("{}", err.render()),
    }
}

#[test]
fn charging_schema_loads_with_its_import() {
    let schema = load_charging();
    assert_eq!(schema.files.len(), 2, "charging.isml and common.isml");
    assert!(schema.validate().is_ok());
    let packages: Vec<&str> = schema.packages_iter().map(|p| p.name).collect();
    assert_eq!(packages, ["charging.v1", "common"]);
    assert!(!schema.packages["charging.v1"].docs.is_empty());
}

#[test]
fn frequent_messages_have_small_ids() {
    let schema = load_charging();
    for name in [
        "StatusReport",
        "MeterReading",
        "Fault",
        "Command",
        "Variable",
        "SlotReading",
    ] {
        let id = schema.lookup(&format!("charging.v1.{name}")).expect(name);
        let mid = schema
            .get(id)
            .and_then(|t| t.message_id())
            .expect("has an id");
        assert!(mid < 16, "{name} has id {mid}");
    }
}

#[test]
fn service_and_channels() {
    let schema = load_charging();
    let charger = schema
        .services
        .iter()
        .find(|s| s.name == "Charger")
        .expect("Charger");
    let kinds: Vec<MethodKind> = charger.methods.iter().map(MethodDef::kind).collect();
    for kind in [
        MethodKind::Unary,
        MethodKind::ServerStreaming,
        MethodKind::OneWay,
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(charger.methods.iter().all(|m| !m.client_streaming));
    let telemetry = schema
        .channels
        .iter()
        .find(|c| c.name == "telemetry")
        .expect("telemetry");
    assert!(telemetry.retain && !telemetry.keyed);
    let variables = schema
        .channels
        .iter()
        .find(|c| c.name == "variables")
        .expect("variables");
    assert!(variables.retain && variables.keyed);
    let command = schema.lookup("charging.v1.Command").expect("Command");
    assert!(matches!(
        schema.types[command.index()].kind,
        TypeDefKind::Union(_)
    ));
}

#[test]
fn charging_schema_dump() {
    insta::assert_snapshot!(load_charging().dump());
}

#[test]
fn site_schema_names_other_packages_relatively() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let schema = load(&LoadOptions::new([dir.join("site.isml")]))
        .unwrap_or_else(|err| panic!("{}", err.render()));
    let packages: Vec<&str> = schema.packages_iter().map(|p| p.name).collect();
    assert_eq!(packages, ["common", "fleet.geo", "fleet.site"]);
    // The text says `geo.Position`, `geo.Area` and `common.Address`.
    let site = schema.lookup("fleet.site.SiteInfo").expect("SiteInfo");
    let TypeDefKind::Message(m) = &schema.types[site.index()].kind else {
        panic!("SiteInfo is a message");
    };
    let field_type = |name: &str| {
        let f = m.fields.iter().find(|f| f.name == name).expect(name);
        f.ty.display(&schema).to_string()
    };
    assert_eq!(field_type("location"), "fleet.geo.Position");
    assert_eq!(field_type("boundary"), "optional<fleet.geo.Area>");
    assert_eq!(field_type("address"), "common.Address");
    assert_eq!(field_type("access"), "fleet.site.Access");
}
