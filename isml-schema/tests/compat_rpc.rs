//! `compat::compare` on changes of an rpc's form: every change between two of
//! the five forms is breaking, and the report says which side changed.

use isml_schema::compat::compare;
use isml_schema::{MethodKind, load_str};

/// How each form is written, between the rpc's name and its id.
fn written(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::OneWay => "(A)",
        MethodKind::Unary => "(A) -> B",
        MethodKind::ServerStreaming => "(A) -> stream B",
        MethodKind::ClientStreaming => "(stream A) -> B",
        MethodKind::Bidirectional => "(stream A) -> stream B",
    }
}

fn schema(kind: MethodKind, name: &str) -> isml_schema::Schema {
    let text = format!(
        "package p;\nmessage A [id = 1] {{}}\nmessage B [id = 2] {{}}\n\
         service S {{\n    rpc {name}{} = 7;\n}}\n",
        written(kind)
    );
    let schema = load_str("s.isml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(schema.services[0].methods[0].kind(), kind);
    schema
}

#[test]
fn every_change_of_form_is_breaking_and_names_the_side() {
    for old in MethodKind::ALL {
        for new in MethodKind::ALL {
            let report = compare(&schema(old, "m"), &schema(new, "m"));
            let breaking: Vec<String> = report.breaking().map(|c| c.message.clone()).collect();
            if old == new {
                assert!(report.is_compatible(), "{old} to itself: {breaking:?}");
                continue;
            }
            assert!(!report.is_compatible(), "{old} to {new} must break");
            let request_side = old.client_streaming() != new.client_streaming();
            let response_added_or_removed = old.has_response() != new.has_response();
            let response_side =
                !response_added_or_removed && old.server_streaming() != new.server_streaming();
            let mut expected = Vec::new();
            if response_added_or_removed {
                let resp = |k: MethodKind| {
                    if k.has_response() {
                        "`p.B`"
                    } else {
                        "nothing (one-way)"
                    }
                };
                expected.push(format!(
                    "method `p.S.m` changed its response from {} to {}",
                    resp(old),
                    resp(new)
                ));
            }
            let what = |s: bool| if s { "a stream" } else { "a single message" };
            if request_side {
                expected.push(format!(
                    "method `p.S.m` changed its request side from {} to {} ({old} to {new})",
                    what(old.client_streaming()),
                    what(new.client_streaming()),
                ));
            }
            if response_side {
                expected.push(format!(
                    "method `p.S.m` changed its response side from {} to {} ({old} to {new})",
                    what(old.server_streaming()),
                    what(new.server_streaming()),
                ));
            }
            assert_eq!(breaking, expected, "{old} to {new}");
        }
    }
}

#[test]
fn renaming_a_streaming_method_is_safe() {
    for kind in MethodKind::ALL {
        let report = compare(&schema(kind, "before"), &schema(kind, "after"));
        assert!(report.is_compatible(), "{kind}: {}", report.render());
        let safe: Vec<String> = report.safe().map(|c| c.message.clone()).collect();
        assert_eq!(
            safe,
            ["method `p.S.before` was renamed to `after`"],
            "{kind}"
        );
    }
}
