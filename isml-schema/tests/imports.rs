//! Import resolution on a real file system: relative paths, include
//! directories, missing files, cycles and deduplication.

use std::fs;
use std::path::Path;

use isml_schema::{ErrorKind, LoadOptions, load, load_sources};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

#[test]
fn relative_to_the_importing_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "app/main.isml",
        "package app; import \"sub/lib.isml\"; message M { x: lib.X = 1; }",
    );
    write(
        tmp.path(),
        "app/sub/lib.isml",
        "package lib; import \"../../shared/base.isml\"; message X { b: base.B = 1; }",
    );
    write(tmp.path(), "shared/base.isml", "package base; message B {}");
    let schema = load(&LoadOptions::new([tmp.path().join("app/main.isml")])).expect("compiles");
    assert_eq!(schema.files.len(), 3);
    assert!(schema.lookup("base.B").is_some());
    assert!(schema.lookup("lib.X").is_some());
}

#[test]
fn include_dirs_are_searched_in_order_after_the_importer_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "src/main.isml",
        "package app; import \"common.isml\"; message M { x: common.Y = 1; }",
    );
    write(
        tmp.path(),
        "inc1/common.isml",
        "package common; message Y {}",
    );
    write(
        tmp.path(),
        "inc2/common.isml",
        "package common; message Z {}",
    );
    let opts = LoadOptions::new([tmp.path().join("src/main.isml")])
        .include_dir(tmp.path().join("inc1"))
        .include_dir(tmp.path().join("inc2"));
    let schema = load(&opts).expect("compiles");
    assert!(schema.lookup("common.Y").is_some());
    assert!(
        schema.lookup("common.Z").is_none(),
        "second include dir must not be used"
    );

    // A file next to the importer wins over include dirs.
    write(
        tmp.path(),
        "src/common.isml",
        "package common; message Y {} message Local {}",
    );
    let schema = load(&opts).expect("compiles");
    assert!(schema.lookup("common.Local").is_some());
}

#[test]
fn missing_import_lists_every_place_searched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "main.isml",
        "package app;\nimport \"nope.isml\";\nimport \"also_nope.isml\";\n",
    );
    let opts = LoadOptions::new([tmp.path().join("main.isml")]).include_dir(tmp.path().join("inc"));
    let err = load(&opts).unwrap_err();
    assert_eq!(
        err.kinds(),
        vec![ErrorKind::ImportNotFound, ErrorKind::ImportNotFound]
    );
    let first = err.iter().next().expect("one");
    assert_eq!(
        first.notes.len(),
        2,
        "importer dir and include dir: {:?}",
        first.notes
    );
    assert!(first.notes[1].contains("inc"), "{:?}", first.notes);
    assert!(err.render().contains("main.isml:2:1"), "{}", err.render());
}

#[test]
fn missing_root_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = load(&LoadOptions::new([tmp.path().join("absent.isml")])).unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::Io]);
    assert!(err.render().contains("cannot find schema file"));
}

#[test]
fn cycles_are_reported_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "a.isml",
        "package a; import \"b.isml\"; message A {}",
    );
    write(
        tmp.path(),
        "b.isml",
        "package b; import \"c.isml\"; message B {}",
    );
    write(
        tmp.path(),
        "c.isml",
        "package c; import \"a.isml\"; message C {}",
    );
    let err = load(&LoadOptions::new([tmp.path().join("a.isml")])).unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::ImportCycle]);
    let d = err.iter().next().expect("one");
    assert!(d.notes[0].contains("a.isml` -> `"), "{:?}", d.notes);
    assert!(d.notes[0].matches("a.isml").count() == 2, "{:?}", d.notes);

    // A file importing itself is a cycle too.
    write(tmp.path(), "self.isml", "package s; import \"self.isml\";");
    let err = load(&LoadOptions::new([tmp.path().join("self.isml")])).unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::ImportCycle]);
}

#[test]
fn diamond_imports_load_each_file_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "top.isml",
        "package top; import \"l.isml\"; import \"r.isml\"; message T { a: base.B = 1; }",
    );
    write(
        tmp.path(),
        "l.isml",
        "package l; import \"base.isml\"; message L { b: base.B = 1; }",
    );
    write(
        tmp.path(),
        "r.isml",
        "package r; import \"./base.isml\"; message R { b: base.B = 1; }",
    );
    write(
        tmp.path(),
        "base.isml",
        "package base; message B [id = 1] {}",
    );
    // `top.isml` uses base.B without importing base.isml directly.
    let err = load(&LoadOptions::new([tmp.path().join("top.isml")])).unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::UnknownType]);
    assert!(err.render().contains("which this file does not import"));

    write(
        tmp.path(),
        "top.isml",
        "package top; import \"l.isml\"; import \"r.isml\"; import \"base.isml\"; message T { a: base.B = 1; }",
    );
    // Also list base.isml as a root: still one copy (no duplicate id 1).
    let opts = LoadOptions::new([tmp.path().join("top.isml"), tmp.path().join("base.isml")]);
    let schema = load(&opts).expect("compiles");
    assert_eq!(schema.files.len(), 4);
}

#[test]
fn in_memory_sources_resolve_relative_names() {
    let schema = load_sources(&[
        (
            "proto/main.isml",
            "package m; import \"../lib/x.isml\"; message M { x: x.X = 1; }",
        ),
        ("lib/x.isml", "package x; message X {}"),
    ])
    .expect("compiles");
    assert_eq!(schema.files.len(), 2);
    let err = load_sources(&[("main.isml", "package m; import \"gone.isml\";")]).unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::ImportNotFound]);
}

/// The type a field of `message` resolved to, by full name.
fn field_type(schema: &isml_schema::Schema, message: &str, field: &str) -> String {
    let id = schema.lookup(message).expect(message);
    let isml_schema::TypeDefKind::Message(m) = &schema.types[id.index()].kind else {
        panic!("{message} is not a message");
    };
    let f = m.fields.iter().find(|f| f.name == field).expect(field);
    f.ty.display(schema).to_string()
}

#[test]
fn importing_another_package_makes_a_name_ambiguous_instead_of_rebinding_it() {
    let outer = ("geo.isml", "package acme.geo; message Point {}");
    let inner = ("site_geo.isml", "package acme.site.geo; message Point {}");
    let schema = load_sources(&[
        (
            "site.isml",
            "package acme.site; import \"geo.isml\"; message S { at: geo.Point = 1; }",
        ),
        outer,
    ])
    .expect("compiles");
    assert_eq!(field_type(&schema, "acme.site.S", "at"), "acme.geo.Point");

    // The same file, now also importing a closer `geo.Point`: protobuf would
    // quietly switch to `acme.site.geo.Point`; isml asks which one is meant.
    let text = "package acme.site;\nimport \"geo.isml\";\nimport \"site_geo.isml\";\nmessage S { at: geo.Point = 1; }";
    let err = load_sources(&[("site.isml", text), outer, inner]).unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::AmbiguousType]);
    let rendered = err.render();
    assert!(rendered.contains("--> site.isml:4:17"), "{rendered}");
    assert!(rendered.contains("::: geo.isml:1:27"), "{rendered}");
    assert!(rendered.contains("::: site_geo.isml:1:32"), "{rendered}");

    // A leading dot settles it either way.
    let text = text.replace("at: geo.Point", "at: .acme.site.geo.Point");
    let schema = load_sources(&[("site.isml", &text), outer, inner]).expect("compiles");
    assert_eq!(
        field_type(&schema, "acme.site.S", "at"),
        "acme.site.geo.Point"
    );
}

#[test]
fn a_packages_own_types_shadow_enclosing_ones_across_its_files() {
    let schema = load_sources(&[
        (
            "a.isml",
            "package acme.site; import \"kind.isml\"; import \"acme.isml\"; message M { k: Kind = 1; outer: acme.Kind = 2; }",
        ),
        ("kind.isml", "package acme.site; enum Kind { x = 0; }"),
        ("acme.isml", "package acme; enum Kind { y = 0; }"),
    ])
    .expect("compiles");
    assert_eq!(field_type(&schema, "acme.site.M", "k"), "acme.site.Kind");
    assert_eq!(field_type(&schema, "acme.site.M", "outer"), "acme.Kind");
}

#[test]
fn one_full_name_declared_twice_is_a_duplicate_not_an_ambiguity() {
    let err = load_sources(&[
        (
            "main.isml",
            "package app; import \"one.isml\"; import \"two.isml\"; message M { p: geo.P = 1; }",
        ),
        ("one.isml", "package geo; message P {}"),
        ("two.isml", "package geo; message P {}"),
    ])
    .unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::DuplicateName]);
}

#[test]
fn only_imported_files_take_part_in_resolution() {
    // `acme.site.geo.Point` is loaded (through `other.isml`) but not imported
    // by `site.isml`, so it neither wins nor makes `geo.Point` ambiguous.
    let schema = load_sources(&[
        (
            "site.isml",
            "package acme.site; import \"geo.isml\"; import \"other.isml\"; message S { at: geo.Point = 1; }",
        ),
        ("geo.isml", "package acme.geo; message Point {}"),
        (
            "other.isml",
            "package other; import \"site_geo.isml\"; message O { p: acme.site.geo.Point = 1; }",
        ),
        ("site_geo.isml", "package acme.site.geo; message Point {}"),
    ])
    .expect("compiles");
    assert_eq!(field_type(&schema, "acme.site.S", "at"), "acme.geo.Point");
}
