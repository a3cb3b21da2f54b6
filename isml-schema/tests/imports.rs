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
