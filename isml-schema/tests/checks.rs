//! One focused test per check, asserting the kind, the message and where the
//! primary label points, plus tests of `Schema::validate` on IR built by hand.

use isml_schema::*;

/// Compiles `body` after a package line; returns (kind, message, primary
/// text) of every diagnostic.
fn errors(body: &str) -> Vec<(ErrorKind, String, String)> {
    let text = format!("package t;\n{body}");
    match load_str("t.isml", &text) {
        Ok(_) => Vec::new(),
        Err(err) => err
            .iter()
            .map(|d| {
                let at = d
                    .span()
                    .map(|s| text[s.start..s.end].to_string())
                    .unwrap_or_default();
                (d.kind, d.message.clone(), at)
            })
            .collect(),
    }
}

/// Asserts exactly one diagnostic of `kind` whose primary span covers `at`
/// and whose message contains `msg`.
#[track_caller]
fn expect_one(body: &str, kind: ErrorKind, msg: &str, at: &str) {
    let errs = errors(body);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let (k, m, a) = &errs[0];
    assert_eq!(*k, kind, "{m}");
    assert!(m.contains(msg), "message {m:?} lacks {msg:?}");
    assert_eq!(a, at, "primary span of {m:?}");
}

#[test]
fn valid_schema_has_no_errors() {
    assert!(errors("message M [id = 1] { a: u8 = 1; b: optional<M> = 2; }").is_empty());
}

#[test]
fn duplicate_type_names() {
    expect_one(
        "message A {}\nunion A {}",
        ErrorKind::DuplicateName,
        "defined multiple times",
        "A",
    );
    // Same name in different packages is fine.
    let ok = load_sources(&[
        ("a.isml", "package a; message X {}"),
        ("b.isml", "package b; message X {}"),
    ]);
    assert!(ok.is_ok());
}

#[test]
fn duplicate_fields_variants_methods_channels() {
    expect_one(
        "message M { a: u8 = 1; a: u8 = 2; }",
        ErrorKind::DuplicateName,
        "field `a`",
        "a",
    );
    expect_one(
        "enum E { a = 0; a = 1; }",
        ErrorKind::DuplicateName,
        "variant `a`",
        "a",
    );
    expect_one(
        "message X {}\nunion U { a: X = 1; a: X = 2; }",
        ErrorKind::DuplicateName,
        "variant `a`",
        "a",
    );
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(X) = 1; rpc f(X) = 2; }",
        ErrorKind::DuplicateName,
        "rpc `f`",
        "f",
    );
    expect_one(
        "message X [id = 1] {}\nchannel c: X = 1;\nchannel c: X = 2;",
        ErrorKind::DuplicateName,
        "channel `c`",
        "c",
    );
}

#[test]
fn duplicate_numbers() {
    expect_one(
        "message M { a: u8 = 1; b: u8 = 1; }",
        ErrorKind::DuplicateTag,
        "tag 1",
        "1",
    );
    expect_one(
        "message X {}\nunion U { a: X = 3; b: X = 3; }",
        ErrorKind::DuplicateTag,
        "tag 3",
        "3",
    );
    expect_one(
        "enum E { a = 0; b = 0x0; }",
        ErrorKind::DuplicateValue,
        "value 0",
        "0x0",
    );
    expect_one(
        "message A [id = 9] {}\nmessage B [id = 9] {}",
        ErrorKind::DuplicateMessageId,
        "message id 9",
        "9",
    );
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(X) = 4; rpc g(X) = 4; }",
        ErrorKind::DuplicateMethodId,
        "method id 4",
        "4",
    );
    // Method ids are per service.
    assert!(
        errors("message X [id = 1] {}\nservice S { rpc f(X) = 1; }\nservice T { rpc f(X) = 1; }")
            .is_empty()
    );
    expect_one(
        "message X [id = 1] {}\nchannel a: X = 2;\nchannel b: X = 2;",
        ErrorKind::DuplicateChannelId,
        "channel id 2",
        "2",
    );
}

#[test]
fn message_ids_are_unique_across_packages() {
    let err = load_sources(&[
        ("a.isml", "package a; message X [id = 5] {}"),
        ("b.isml", "package b; union Y [id = 5] {}"),
    ])
    .unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::DuplicateMessageId]);
    assert!(
        err.render()
            .contains("message id 5 is used by both `a.X` and `b.Y`")
    );
}

#[test]
fn reserved_tags() {
    expect_one(
        "message M { reserved 4; a: u8 = 4; }",
        ErrorKind::ReservedTag,
        "reserved tag 4",
        "4",
    );
    expect_one(
        "message M { reserved 2 to 9; a: u8 = 5; }",
        ErrorKind::ReservedTag,
        "reserved tag 5",
        "5",
    );
    expect_one(
        "message M { reserved 9 to 2; }",
        ErrorKind::ReservedTag,
        "is empty",
        "9 to 2",
    );
    expect_one(
        "message M { reserved 0; }",
        ErrorKind::OutOfRange,
        "reserved tag 0",
        "0",
    );
    expect_one(
        "message M { reserved 3 to 300; }",
        ErrorKind::OutOfRange,
        "reserved tag 300",
        "3 to 300",
    );
}

#[test]
fn unknown_types_with_suggestions() {
    let text = "package t;\nmessage Battery {}\nmessage M { b: Batery = 1; }";
    let err = load_str("t.isml", text).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!(d.kind, ErrorKind::UnknownType);
    assert_eq!(d.help.as_deref(), Some("did you mean `Battery`?"));
    expect_one(
        "message M { b: strin = 1; }",
        ErrorKind::UnknownType,
        "unknown type `strin`",
        "strin",
    );
    expect_one(
        "message M { b: Zzzzzz = 1; }",
        ErrorKind::UnknownType,
        "unknown type `Zzzzzz`",
        "Zzzzzz",
    );
    let errs = errors("message M { b: Zzzzzz = 1; }");
    assert_eq!(errs.len(), 1);
}

#[test]
fn attributes() {
    expect_one(
        "message M { a: string = 1 [max_lenght = 3]; }",
        ErrorKind::UnknownAttribute,
        "max_lenght",
        "max_lenght",
    );
    expect_one(
        "message M { a: u8 = 1 [retain]; }",
        ErrorKind::MisplacedAttribute,
        "not allowed on a field",
        "retain",
    );
    expect_one(
        "message M [deprecated] {}",
        ErrorKind::MisplacedAttribute,
        "not allowed on a message",
        "deprecated",
    );
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(X) = 1 [id = 2]; }",
        ErrorKind::MisplacedAttribute,
        "not allowed on an rpc",
        "id",
    );
    expect_one(
        "message M { a: u8 = 1 [deprecated, deprecated]; }",
        ErrorKind::DuplicateAttribute,
        "more than once",
        "deprecated",
    );
    expect_one(
        "message M { a: u8 = 1 [unit = 3]; }",
        ErrorKind::InvalidAttributeValue,
        "expects a string",
        "3",
    );
    expect_one(
        "message M { a: u8 = 1 [unit = V]; }",
        ErrorKind::InvalidAttributeValue,
        "found a name",
        "V",
    );
    expect_one(
        "message M [id] {}",
        ErrorKind::InvalidAttributeValue,
        "needs a value",
        "id",
    );
    expect_one(
        "message M { a: string = 1 [max_len = -1]; }",
        ErrorKind::OutOfRange,
        "max_len -1",
        "-1",
    );
}

#[test]
fn max_len_applicability() {
    for ok in [
        "string",
        "bytes",
        "list<u8>",
        "map<u8, u8>",
        "optional<string>",
        "optional<list<bool>>",
    ] {
        assert!(
            errors(&format!("message M {{ a: {ok} = 1 [max_len = 4]; }}")).is_empty(),
            "{ok}"
        );
    }
    for bad in ["u8", "f32", "bool", "array<u8, 4>", "optional<u32>"] {
        expect_one(
            &format!("message M {{ a: {bad} = 1 [max_len = 4]; }}"),
            ErrorKind::InvalidAttributeValue,
            "`max_len` does not apply",
            "max_len = 4",
        );
    }
}

#[test]
fn range_applicability_and_bounds() {
    for ok in ["u8", "i64", "f32", "f64", "optional<i16>", "optional<f64>"] {
        assert!(
            errors(&format!("message M {{ a: {ok} = 1 [range = -0..=100]; }}")).is_empty(),
            "{ok}"
        );
    }
    assert!(errors("message M { a: f32 = 1 [range = -1000..=1000000]; }").is_empty());
    for bad in ["string", "bool", "bytes", "list<u8>", "optional<string>"] {
        expect_one(
            &format!("message M {{ a: {bad} = 1 [range = 0..=1]; }}"),
            ErrorKind::InvalidAttributeValue,
            "`range` does not apply",
            "range = 0..=1",
        );
    }
    expect_one(
        "message M { a: u8 = 1 [range = 2..=1]; }",
        ErrorKind::InvalidAttributeValue,
        "is empty",
        "range = 2..=1",
    );
    expect_one(
        "message M { a: u8 = 1 [range = -1..=1]; }",
        ErrorKind::InvalidAttributeValue,
        "does not fit in `u8`",
        "range = -1..=1",
    );
}

#[test]
fn map_keys() {
    for ok in ["u8", "u64", "i32", "bool", "string"] {
        assert!(
            errors(&format!("message M {{ a: map<{ok}, u8> = 1; }}")).is_empty(),
            "{ok}"
        );
    }
    for bad in [
        "f32",
        "bytes",
        "list<u8>",
        "optional<u8>",
        "M",
        "array<u8, 2>",
    ] {
        expect_one(
            &format!("message M {{ a: map<{bad}, u8> = 1; }}"),
            ErrorKind::InvalidMapKey,
            "cannot be a map key",
            &format!("map<{bad}, u8>"),
        );
    }
}

#[test]
fn nested_optional_and_optional_variants() {
    expect_one(
        "message M { a: optional<optional<u8>> = 1; }",
        ErrorKind::NestedOptional,
        "optional<optional",
        "optional<optional<u8>>",
    );
    expect_one(
        "message M { a: map<u8, optional<optional<u8>>> = 1; }",
        ErrorKind::NestedOptional,
        "optional<optional",
        "map<u8, optional<optional<u8>>>",
    );
    assert!(errors("message M { a: optional<list<optional<u8>>> = 1; }").is_empty());
    expect_one(
        "union U { a: optional<u8> = 1; }",
        ErrorKind::OptionalVariant,
        "cannot be optional",
        "optional<u8>",
    );
}

#[test]
fn infinite_size() {
    expect_one(
        "message A { a: A = 1; }",
        ErrorKind::InfiniteSize,
        "`t.A` has infinite size",
        "A",
    );
    expect_one(
        "message A { b: B = 1; }\nmessage B { a: array<A, 3> = 1; }",
        ErrorKind::InfiniteSize,
        "`t.A`",
        "A",
    );
    expect_one(
        "union U { a: U = 1; }",
        ErrorKind::InfiniteSize,
        "`t.U`",
        "U",
    );
    // One error per cycle, even with several members.
    expect_one(
        "message A { b: B = 1; }\nmessage B { c: C = 1; }\nmessage C { a: A = 1; }",
        ErrorKind::InfiniteSize,
        "`t.A`",
        "A",
    );
    // Indirections break the cycle.
    for wrap in [
        "optional<A>",
        "list<A>",
        "map<u8, A>",
        "array<optional<A>, 2>",
    ] {
        assert!(
            errors(&format!("message A {{ a: {wrap} = 1; }}")).is_empty(),
            "{wrap}"
        );
    }
    // A type that merely uses a recursive type is not reported again.
    let errs = errors("message A { a: A = 1; }\nmessage B { a: A = 1; }");
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn number_ranges() {
    expect_one(
        "message M { a: u8 = 0; }",
        ErrorKind::OutOfRange,
        "field tag 0",
        "0",
    );
    expect_one(
        "message M { a: u8 = 256; }",
        ErrorKind::OutOfRange,
        "field tag 256",
        "256",
    );
    assert!(errors("message M { a: u8 = 255; }").is_empty());
    expect_one(
        "message X {}\nunion U { a: X = 256; }",
        ErrorKind::OutOfRange,
        "union variant tag 256",
        "256",
    );
    expect_one(
        "message M [id = 0] {}",
        ErrorKind::OutOfRange,
        "message id 0",
        "0",
    );
    expect_one(
        "message M [id = 4294967296] {}",
        ErrorKind::OutOfRange,
        "message id 4294967296",
        "4294967296",
    );
    assert!(errors("message M [id = 4294967295] {}").is_empty());
    expect_one(
        "enum E { a = -1; }",
        ErrorKind::OutOfRange,
        "enum value -1",
        "-1",
    );
    assert!(errors("enum E { a = 0; b = 4294967295; }").is_empty());
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(X) = 65536; }",
        ErrorKind::OutOfRange,
        "rpc method id 65536",
        "65536",
    );
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(X) = 0; }",
        ErrorKind::OutOfRange,
        "rpc method id 0",
        "0",
    );
    expect_one(
        "message X [id = 1] {}\nchannel c: X = 65536;",
        ErrorKind::OutOfRange,
        "channel id 65536",
        "65536",
    );
    expect_one(
        "message M { a: array<u8, 0> = 1; }",
        ErrorKind::OutOfRange,
        "array length 0",
        "array<u8, 0>",
    );
    expect_one(
        "message M { a: array<u8, 65536> = 1; }",
        ErrorKind::OutOfRange,
        "array length 65536",
        "array<u8, 65536>",
    );
    expect_one(
        "message M { a: u8 = 99999999999999999999999999999999999999999; }",
        ErrorKind::InvalidLiteral,
        "too large",
        "99999999999999999999999999999999999999999",
    );
}

#[test]
fn rpc_and_channel_types() {
    expect_one(
        "enum E { a = 0; }\nservice S { rpc f(E) = 1; }",
        ErrorKind::NotAMessage,
        "rpc request",
        "E",
    );
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(X) -> u8 = 1; }",
        ErrorKind::NotAMessage,
        "rpc response",
        "u8",
    );
    expect_one(
        "enum E { a = 0; }\nmessage X [id = 1] {}\nservice S { rpc f(X) -> stream E = 1; }",
        ErrorKind::NotAMessage,
        "rpc response",
        "E",
    );
    expect_one(
        "enum E { a = 0; }\nchannel c: E = 1;",
        ErrorKind::NotAMessage,
        "channel type",
        "E",
    );
    expect_one(
        "channel c: list<u8> = 1;",
        ErrorKind::NotAMessage,
        "channel type",
        "list<u8>",
    );
    expect_one(
        "message X {}\nservice S { rpc f(X) = 1; }",
        ErrorKind::MissingTypeId,
        "an rpc request must have a type id, but `t.X` has none",
        "X",
    );
    expect_one(
        "message X {}\nchannel c: X = 1;",
        ErrorKind::MissingTypeId,
        "channel type must have a type id",
        "X",
    );
    assert!(errors("message X [id = 1] {}\nunion U [id = 2] { x: X = 1; }\nservice S { rpc f(U) -> stream X = 1; rpc g(X) = 2; }\nchannel c: U = 1 [keyed];").is_empty());
}

#[test]
fn rpc_forms_and_streams_without_a_response() {
    let ok = "message A [id = 1] {}\nmessage B [id = 2] {}\nservice S {\n\
              rpc o(A) = 1;\n rpc u(A) -> B = 2;\n rpc s(A) -> stream B = 3;\n\
              rpc c(stream A) -> B = 4;\n rpc b(stream A) -> stream B = 5;\n}";
    assert_eq!(errors(ok), vec![]);
    let schema = load_str("t.isml", &format!("package t;\n{ok}")).unwrap();
    let kinds: Vec<MethodKind> = schema.services[0]
        .methods
        .iter()
        .map(MethodDef::kind)
        .collect();
    assert_eq!(kinds, MethodKind::ALL);
    let flags: Vec<(bool, bool)> = schema.services[0]
        .methods
        .iter()
        .map(|m| (m.client_streaming, m.server_streaming))
        .collect();
    assert_eq!(
        flags,
        [
            (false, false),
            (false, false),
            (false, true),
            (true, false),
            (true, true)
        ]
    );
    expect_one(
        "message A [id = 1] {}\nservice S { rpc up(stream A) = 1; }",
        ErrorKind::StreamWithoutResponse,
        "rpc `up` in service `t.S` takes a stream of requests but has no response",
        "A",
    );
    // The request of a client stream is checked like any other.
    expect_one(
        "enum E { a = 0; }\nmessage X [id = 1] {}\nservice S { rpc f(stream E) -> X = 1; }",
        ErrorKind::NotAMessage,
        "rpc request",
        "E",
    );
    // `stream` alone is a type name; `stream stream stream` is not an rpc.
    expect_one(
        "message X [id = 1] {}\nservice S { rpc f(stream) -> X = 1; }",
        ErrorKind::UnknownType,
        "stream",
        "stream",
    );
    let errs = errors("message A {}\nservice S { rpc f(stream A A) -> A = 1; }");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].0, ErrorKind::Syntax);
}

#[test]
fn validate_rejects_streaming_flags_without_a_response() {
    let mut client = MethodDef::new("up", 1, TypeId(0), TypeId(0));
    client.response = None;
    client.client_streaming = true;
    let mut server = MethodDef::new("down", 2, TypeId(0), TypeId(0));
    server.response = None;
    server.server_streaming = true;
    let schema = Schema {
        types: vec![message("A", Some(1), vec![])],
        services: vec![ServiceDef {
            name: "S".into(),
            package: "p".into(),
            docs: vec![],
            span: None,
            methods: vec![client.clone(), server.clone()],
        }],
        ..Schema::default()
    };
    let err = schema.validate().unwrap_err();
    assert_eq!(
        err.kinds(),
        vec![
            ErrorKind::StreamWithoutResponse,
            ErrorKind::StreamWithoutResponse
        ]
    );
    let text = err.render();
    assert!(
        text.contains("rpc `up` in service `p.S` takes a stream of requests"),
        "{text}"
    );
    assert!(
        text.contains("rpc `down` in service `p.S` is marked as streaming responses"),
        "{text}"
    );
    // Such methods still have a kind: one-way, whatever their flags say.
    assert_eq!(client.kind(), MethodKind::OneWay);
    assert_eq!(server.kind(), MethodKind::OneWay);
}

#[test]
fn missing_package_and_syntax() {
    let err = load_str("t.isml", "message M {}").unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::MissingPackage]);

    let err = load_str("t.isml", "package p; message M { a: u8 = 1 }").unwrap_err();
    assert_eq!(err.kinds(), vec![ErrorKind::Syntax]);
    assert!(
        err.render()
            .contains("error: expected attributes `[...]` or `;`, found `}`"),
        "{}",
        err.render()
    );

    let err = load_str("t.isml", "package p; message M { = }").unwrap_err();
    assert!(
        err.render().contains("expected a field, `reserved` or `}`"),
        "{}",
        err.render()
    );

    let err = load_str("t.isml", "package p; message M { a: = 1; }").unwrap_err();
    assert!(
        err.render().contains("expected a type, found `=`"),
        "{}",
        err.render()
    );

    let err = load_str("t.isml", "package p; mesage M {}").unwrap_err();
    assert!(err.render().contains("`message`"), "{}", err.render());
}

#[test]
fn errors_are_collected_across_checks() {
    let errs = errors(
        "message A [id = 1] { x: u8 = 1; x: u16 = 2; z: u9 = 3; y: map<f32, u8> = 300; }\n\
         message B [id = 1] { a: B = 1 [bogus]; }",
    );
    let kinds: Vec<ErrorKind> = errs.iter().map(|e| e.0).collect();
    for k in [
        ErrorKind::DuplicateName,
        ErrorKind::UnknownType,
        ErrorKind::OutOfRange,
        ErrorKind::DuplicateMessageId,
        ErrorKind::InfiniteSize,
        ErrorKind::UnknownAttribute,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing from {errs:#?}");
    }
}

#[test]
fn rendering_is_rustc_like() {
    let err = load_str(
        "dup.isml",
        "package p;\nmessage M {\n    a: u8 = 1;\n    b: u8 = 1;\n}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.render(),
        "error: tag 1 is used by both `a` and `b` in `p.M`\n\
         \x20--> dup.isml:4:13\n\
         \x20 |\n\
         3 |     a: u8 = 1;\n\
         \x20 |             - first used here\n\
         4 |     b: u8 = 1;\n\
         \x20 |             ^ tag 1 used again here\n\
         \x20 |\n\
         \x20 = help: each field needs its own tag; tag 2 is free\n\
         \n\
         error: aborting due to 1 previous error\n"
    );
    // Display is the same rendering, for `?` in build scripts.
    assert_eq!(err.to_string(), err.render());
}

// ---------------------------------------------------------------------------
// IR built without sources
// ---------------------------------------------------------------------------

fn message(name: &str, id: Option<u32>, fields: Vec<FieldDef>) -> TypeDef {
    TypeDef::new(
        "p",
        name,
        TypeDefKind::Message(MessageDef {
            id,
            fields,
            reserved: vec![],
        }),
    )
}

#[test]
fn validate_accepts_good_ir() {
    let schema = Schema {
        types: vec![
            message(
                "A",
                Some(1),
                vec![FieldDef::new(
                    "x",
                    1,
                    Type::List(Box::new(Type::Named(TypeId(0)))),
                )],
            ),
            TypeDef::new(
                "p",
                "E",
                TypeDefKind::Enum(EnumDef {
                    variants: vec![EnumVariant::new("a", 0)],
                }),
            ),
        ],
        ..Schema::default()
    };
    assert!(schema.validate().is_ok());
    assert_eq!(schema.lookup("p.A"), Some(TypeId(0)));
    assert_eq!(schema.lookup("p.Nope"), None);
}

#[test]
fn validate_reports_without_spans() {
    let mut bad_len = FieldDef::new("n", 2, Type::U32);
    bad_len.max_len = Some(3);
    let schema = Schema {
        types: vec![
            message(
                "A",
                Some(0),
                vec![
                    FieldDef::new("x", 1, Type::Named(TypeId(0))),
                    bad_len,
                    FieldDef::new("x", 2, Type::Map(Box::new(Type::F64), Box::new(Type::U8))),
                    FieldDef::new("d", 3, Type::Named(TypeId(7))),
                    FieldDef::new("z", 300, Type::Array(Box::new(Type::U8), 0)),
                ],
            ),
            message("A", None, vec![]),
        ],
        channels: vec![ChannelDef {
            name: "c".into(),
            package: "p".into(),
            id: 0,
            ty: TypeId(9),
            retain: false,
            keyed: false,
            docs: vec![],
            span: None,
        }],
        ..Schema::default()
    };
    let err = schema.validate().unwrap_err();
    let mut kinds = err.kinds();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        vec![
            ErrorKind::DanglingTypeId,
            ErrorKind::DanglingTypeId,
            ErrorKind::DuplicateName,
            ErrorKind::DuplicateName,
            ErrorKind::DuplicateTag,
            ErrorKind::InfiniteSize,
            ErrorKind::InvalidAttributeValue,
            ErrorKind::InvalidMapKey,
            ErrorKind::OutOfRange,
            ErrorKind::OutOfRange,
            ErrorKind::OutOfRange,
            ErrorKind::OutOfRange,
        ]
    );
    // Without spans, rendering still works: just the messages and help.
    let text = err.render();
    assert!(
        text.contains("error: message id 0 is out of range"),
        "{text}"
    );
    assert!(!text.contains("-->"), "{text}");
    assert!(err.iter().all(|d| d.span().is_none()));
}
