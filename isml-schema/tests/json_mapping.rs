//! The JSON mapping's decisions on the edges of the wire format, through the
//! dynamic codec: the bits of `"NaN"`, `range` against NaN, infinities and
//! -0.0, `-0` and non-integer numbers for integer types, `f32` overflow,
//! union variants the schema does not define and union tag 0
//! (`docs/wire-format.md` §1.3, §5.5, §5.7; `docs/cli.md`, JSON mapping).

use isml_schema::Schema;
use isml_schema::dynamic::{self, DecodeErrorKind, Descriptor, MessageFactory, Value};

const SCHEMA: &str = "package t;
message Floats [id = 1] {
    a: f32 = 1;
    b: f64 = 2;
    c: list<f32> = 3;
    d: optional<f64> = 4;
}
message Ranged [id = 2] {
    t: f32 = 1 [range = -40..=85];
    z: f64 = 2 [range = 0..=10];
    p: optional<f32> = 3 [range = 1..=10];
}
message Ints [id = 3] {
    u: u64 = 1;
    i: i32 = 2;
    e: optional<E> = 3;
}
enum E { zero = 0; one = 1; }
union U [id = 4] {
    small: u8 = 1;
    text: string = 2;
}
message Holder [id = 5] {
    u: U = 1;
}
union Nothing [id = 6] {}
";

fn schema() -> Schema {
    isml_schema::load_str("t.isml", SCHEMA).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn desc<'s>(s: &'s Schema, name: &str) -> Descriptor<'s> {
    MessageFactory::new(s).find(name).unwrap()
}

/// Encodes JSON as `name`, or gives the error text (conversion or encoding).
fn encode(s: &Schema, name: &str, json: &str) -> Result<Vec<u8>, String> {
    let v = dynamic::from_json_str(desc(s, name), json).map_err(|e| e.to_string())?;
    v.encode().map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let t: String = text.split_whitespace().collect();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
        .collect()
}

fn json_of(s: &Schema, name: &str, bytes: &[u8]) -> String {
    dynamic::decode(desc(s, name), bytes)
        .unwrap()
        .to_json_string(false)
}

#[test]
fn json_nan_is_the_quiet_nan_with_sign_and_payload_zero() {
    let s = schema();
    let bytes = encode(
        &s,
        "Floats",
        r#"{"a": "NaN", "b": "NaN", "c": ["NaN"], "d": "NaN"}"#,
    )
    .unwrap();
    // Presence 0b11_11_11_10 (254); f32 7fc00000; f64 7ff8000000000000 in
    // field form (length 8); the list element; the optional f64.
    assert_eq!(
        hex(&bytes),
        "fe01\
         0000c07f\
         08000000000000f87f\
         040000c07f\
         08000000000000f87f"
    );
    // Any other NaN reads as "NaN" too, and comes back as the quiet NaN: JSON
    // keeps neither the sign nor the payload.
    let odd = unhex("02 0100c0ff"); // a = f32 bits ffc00001
    let json = json_of(&s, "Floats", &odd);
    assert_eq!(json, r#"{"a":"NaN","b":0.0,"c":[]}"#);
    assert_eq!(hex(&encode(&s, "Floats", &json).unwrap()), "020000c07f");
    // The infinities are exact.
    assert_eq!(
        hex(&encode(&s, "Floats", r#"{"a": "-Infinity", "b": "Infinity"}"#).unwrap()),
        "0e000080ff08000000000000f07f"
    );
}

#[test]
fn range_excludes_nan_and_the_infinities_and_admits_negative_zero() {
    let s = schema();
    for (json, want) in [
        (r#"{"t": "NaN"}"#, "value NaN is outside range -40..=85"),
        (
            r#"{"t": "Infinity"}"#,
            "value inf is outside range -40..=85",
        ),
        (
            r#"{"t": "-Infinity"}"#,
            "value -inf is outside range -40..=85",
        ),
        (r#"{"z": "NaN"}"#, "value NaN is outside range 0..=10"),
        (r#"{"t": 85.00001}"#, "outside range -40..=85"),
        (r#"{"p": -0.0}"#, "value -0 is outside range 1..=10"),
        (r#"{"p": "NaN"}"#, "value NaN is outside range 1..=10"),
    ] {
        let err = encode(&s, "Ranged", json).unwrap_err();
        assert!(err.contains(want), "{json}: {err}");
    }
    // -0.0 compares equal to 0, so it is inside 0..=10; it is not the default
    // +0.0, so it is written, and decodes to -0.0 again.
    let bytes = encode(&s, "Ranged", r#"{"z": -0.0, "t": 85}"#).unwrap();
    assert_eq!(hex(&bytes), "0e0000aa42080000000000000080");
    let back = dynamic::decode(desc(&s, "Ranged"), &bytes).unwrap();
    let z = back.as_message().unwrap().get_f64("z").unwrap();
    assert_eq!(z.to_bits(), (-0.0f64).to_bits());
    // Decoders apply the same rule to what they read.
    for (wire, what) in [
        ("02 0000c07f", "NaN"),
        ("02 0000807f", "+infinity"),
        ("0c 08 000000000000f87f", "NaN in z"),
        ("20 000080bf", "p = -1"),
    ] {
        let err = dynamic::decode(desc(&s, "Ranged"), &unhex(wire)).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::Range, "{what}: {err}");
    }
    assert!(dynamic::decode(desc(&s, "Ranged"), &unhex("02 00000080")).is_ok());
}

#[test]
fn integers_take_integer_literals_and_minus_zero() {
    let s = schema();
    // `-0` is 0: the default, so nothing is written.
    assert_eq!(encode(&s, "Ints", r#"{"u": -0, "i": -0}"#).unwrap(), [0x00]);
    assert_eq!(
        json_of(&s, "Ints", &encode(&s, "Ints", r#"{"e": -0}"#).unwrap()),
        r#"{"u":0,"i":0,"e":"zero"}"#
    );
    for (json, want) in [
        (
            r#"{"u": 1.0}"#,
            "expected an integer for `u64`, found 1.0 (integers are written without a fraction or exponent)",
        ),
        (
            r#"{"u": 1e2}"#,
            "expected an integer for `u64`, found 100.0",
        ),
        (r#"{"u": 0.0}"#, "expected an integer for `u64`, found 0.0"),
        (r#"{"i": 2.5}"#, "expected an integer for `i32`, found 2.5"),
        (r#"{"u": 1e30}"#, "is out of range for `u64`"),
        (
            r#"{"u": 18446744073709551616}"#,
            "is out of range for `u64` (0..=18446744073709551615)",
        ),
        (r#"{"i": -3e9}"#, "is out of range for `i32`"),
    ] {
        let err = encode(&s, "Ints", json).unwrap_err();
        assert!(err.contains(want), "{json}: {err}");
    }
}

#[test]
fn f32_values_beyond_its_range_are_refused_not_made_infinite() {
    let s = schema();
    for json in [r#"{"a": 1e39}"#, r#"{"a": -3.5e38}"#] {
        let err = encode(&s, "Floats", json).unwrap_err();
        assert!(
            err.contains("is out of range for `f32`, whose finite values stop at ±3.4028235e38"),
            "{json}: {err}"
        );
    }
    // The largest f32, and a decimal that rounds down to it, are fine.
    for json in [r#"{"a": 3.4028235e38}"#, r#"{"a": 3.40282356e38}"#] {
        assert_eq!(
            hex(&encode(&s, "Floats", json).unwrap()),
            "02ffff7f7f",
            "{json}"
        );
    }
    // Below the smallest subnormal, a number rounds to zero, keeping its sign.
    assert_eq!(encode(&s, "Floats", r#"{"a": 1e-46}"#).unwrap(), [0x00]);
    assert_eq!(
        hex(&encode(&s, "Floats", r#"{"a": -1e-46}"#).unwrap()),
        "0200000080"
    );
}

#[test]
fn unknown_union_variants_round_trip_and_are_checked() {
    let s = schema();
    // Tag 9 in each class: key 9*4+c, then the value in its class encoding.
    for (wire, json) in [
        ("25 ac02", r#"{"9":{"class":1,"bytes":"rAI="}}"#),
        ("26 01020304", r#"{"9":{"class":2,"bytes":"AQIDBA=="}}"#),
        ("27 02 6869", r#"{"9":{"class":3,"bytes":"Amhp"}}"#),
        // tag 0, which no schema can define, is an unknown variant like any other
        ("01 00", r#"{"0":{"class":1,"bytes":"AA=="}}"#),
    ] {
        let bytes = unhex(wire);
        assert_eq!(json_of(&s, "U", &bytes), json, "{wire}");
        assert_eq!(encode(&s, "U", json).unwrap(), bytes, "{wire}");
    }
    // Inside a message the variant's bytes are length-delimited content.
    let holder = unhex("03 03 25 ac02");
    let json = json_of(&s, "Holder", &holder);
    assert_eq!(json, r#"{"u":{"9":{"class":1,"bytes":"rAI="}}}"#);
    assert_eq!(encode(&s, "Holder", &json).unwrap(), holder);

    let refused = [
        // bytes that are not one value of the class
        (
            r#"{"9":{"class":1,"bytes":"gAA="}}"#,
            "`t.U.9`: unknown variant 9: bytes `80 00` are not exactly one canonical varint (class 1): non-canonical varint at byte 0: written longer than needed",
        ),
        (
            r#"{"9":{"class":1,"bytes":"gA=="}}"#,
            "`t.U.9`: unknown variant 9: bytes `80` are not exactly one canonical varint (class 1): unexpected end of input at byte 1: 1 more byte(s) needed",
        ),
        (
            r#"{"9":{"class":1,"bytes":"AQI="}}"#,
            "`t.U.9`: unknown variant 9: bytes `01 02` are not exactly one canonical varint (class 1): 1 byte(s) left over at byte 1, after the end of the varint",
        ),
        (
            r#"{"9":{"class":1,"bytes":"/////////////w=="}}"#,
            "`t.U.9`: unknown variant 9: bytes `ff ff ff ff ff ff ff ff ff ff` are not exactly one canonical varint (class 1): varint at byte 0 overflows 64 bits",
        ),
        (
            r#"{"9":{"class":2,"bytes":"AQID"}}"#,
            "`t.U.9`: unknown variant 9: bytes `01 02 03` are not exactly 4 bytes (class 2): unexpected end of input at byte 0: 1 more byte(s) needed",
        ),
        (
            r#"{"9":{"class":2,"bytes":"AQIDBAU="}}"#,
            "`t.U.9`: unknown variant 9: bytes `01 02 03 04 05` are not exactly 4 bytes (class 2): 1 byte(s) left over at byte 4, after the end of the 4 bytes",
        ),
        (
            r#"{"9":{"class":3,"bytes":"BWhp"}}"#,
            "`t.U.9`: unknown variant 9: bytes `05 68 69` are not exactly one length-delimited value, uvarint(n) then n bytes (class 3): length 5 at byte 0 exceeds the 2 byte(s) remaining",
        ),
        (
            r#"{"9":{"class":3,"bytes":"AmhpAA=="}}"#,
            "`t.U.9`: unknown variant 9: bytes `02 68 69 00` are not exactly one length-delimited value, uvarint(n) then n bytes (class 3): 1 byte(s) left over at byte 3, after the end of the length-delimited value",
        ),
        (
            r#"{"9":{"class":3,"bytes":""}}"#,
            "`t.U.9`: unknown variant 9: bytes (empty) are not exactly one length-delimited value, uvarint(n) then n bytes (class 3): unexpected end of input at byte 0: 1 more byte(s) needed",
        ),
        // the shape of the object
        (
            r#"{"9":{"class":0,"bytes":"AA=="}}"#,
            "`t.U.9`: `class` is 0; it is 1 (varint), 2 (fixed32) or 3 (length-delimited)",
        ),
        (
            r#"{"9":{"class":"1","bytes":"AA=="}}"#,
            "`t.U.9`: `class` is a string; it is the number 1",
        ),
        (
            r#"{"9":{"class":1}}"#,
            "`t.U.9`: an unknown variant is written {\"<tag>\": {\"class\": <1, 2 or 3>, \"bytes\": \"<base64>\"}}; `bytes` is missing",
        ),
        (r#"{"9":{"bytes":"AA=="}}"#, "`class` is missing"),
        (
            r#"{"9":{"class":1,"bytes":"AA==","tag":9}}"#,
            "`tag` is not one of its keys",
        ),
        (
            r#"{"9":{"class":1,"bytes":"A"}}"#,
            "invalid base64 in `bytes`",
        ),
        (
            r#"{"9":{"class":1,"bytes":[0]}}"#,
            "`bytes` is an array; it is base64 text",
        ),
        (r#"{"9":7}"#, "found a number instead of the object"),
        // the key
        (
            r#"{"1":{"class":1,"bytes":"AA=="}}"#,
            "`t.U.1`: tag 1 is variant `small` of `t.U`: write it by name, as {\"small\": ...}",
        ),
        (
            r#"{"09":{"class":1,"bytes":"AA=="}}"#,
            "`t.U.09`: write the tag of an unknown variant in decimal without leading zeros: `9`, not `09`",
        ),
        (
            r#"{"4611686018427387904":{"class":1,"bytes":"AA=="}}"#,
            "tag 4611686018427387904 is above the largest union tag, 4611686018427387903 (a union key is uvarint(tag * 4 + class))",
        ),
        (
            r#"{"-1":{"class":1,"bytes":"AA=="}}"#,
            "`t.U`: unknown variant `-1` of union `t.U`; expected one of: small, text (or the tag, in decimal, of a variant the schema does not define)",
        ),
    ];
    for (json, want) in refused {
        let err = encode(&s, "U", json).unwrap_err();
        assert!(err.contains(want), "{json}:\n  got  {err}\n  want {want}");
    }
    // The largest tag fits the key's 64 bits.
    assert_eq!(
        hex(&encode(
            &s,
            "U",
            r#"{"4611686018427387903":{"class":1,"bytes":"AA=="}}"#
        )
        .unwrap()),
        "fdffffffffffffffff0100"
    );
}

#[test]
fn a_union_without_variants_defaults_to_tag_0() {
    let s = schema();
    let d = desc(&s, "Nothing");
    let default = d.default_value();
    assert_eq!(default.encode().unwrap(), [0x01, 0x00]);
    assert_eq!(
        default.to_json_string(false),
        r#"{"0":{"class":1,"bytes":"AA=="}}"#
    );
    let Value::Union(u) = dynamic::decode(d, &[0x01, 0x00]).unwrap() else {
        panic!("a union")
    };
    assert_eq!(u.variant_name(), None);
}
