//! Generated message decoding: the types `isml-schema` generated for
//! `schemas/charging.isml`, `tests/codegen/schemas/alltypes.isml` and the
//! recursion fixture, read owned, as validated views and as lazy views; and
//! the same bytes through the dynamic codec (`isml_schema::dynamic`, what
//! `isml serve` decodes peers' payloads with) over the same schemas,
//! including its JSON conversion.

use std::sync::LazyLock;

use isml_codegen_tests::{alltypes, charging::v1 as charging, fixtures::recursion};
use isml_runtime::wire::EncodeError;
use isml_runtime::{LazyViewable, Message, View, Viewable};
use isml_schema::Schema;
use isml_schema::dynamic::MessageFactory;

/// The schemas the generated types came from, compiled at run time.
static SCHEMAS: LazyLock<[Schema; 3]> = LazyLock::new(|| {
    let load = |files: &[(&str, &str)]| {
        isml_schema::load_sources(files).unwrap_or_else(|d| panic!("{}", d.render()))
    };
    [
        load(&[(
            "alltypes.isml",
            include_str!("../../tests/codegen/schemas/alltypes.isml"),
        )]),
        load(&[
            ("charging.isml", include_str!("../../schemas/charging.isml")),
            ("common.isml", include_str!("../../schemas/common.isml")),
        ]),
        load(&[(
            "recursion.isml",
            include_str!("../../isml-schema/tests/fixtures/valid/recursion.isml"),
        )]),
    ]
});

/// Which of [`SCHEMAS`] and the full name of a type in it.
type Dynamic = (usize, &'static str);

/// The dynamic codec decodes what the generated code decodes, refuses what
/// it refuses, and encodes what it decoded to the same bytes; its JSON
/// converts back to the same message.
fn dynamic(which: Dynamic, payload: &[u8], decoded: &Decoded) {
    let factory = MessageFactory::new(&SCHEMAS[which.0]);
    let value = factory.decode(which.1, payload);
    match (decoded, &value) {
        (Decoded::Refused, Err(_)) => return,
        (Decoded::Refused, Ok(v)) => {
            panic!("the dynamic codec decoded what generated code refused: {v:?}")
        }
        (_, Err(e)) => panic!("the dynamic codec refused what generated code decoded: {e}"),
        (Decoded::OmittedDefaultOutOfRange, Ok(_)) => return,
        (Decoded::Encodes(_), Ok(_)) => {}
    }
    let (Decoded::Encodes(bytes), Ok(value)) = (decoded, value) else {
        unreachable!()
    };
    assert_eq!(
        &value
            .encode()
            .expect("a dynamic message that decoded encodes"),
        bytes,
        "the dynamic codec encodes differently"
    );
    // JSON writes NaN as "NaN", without its payload bits, so the check is
    // on the JSON text: it converts back to a message with the same JSON.
    let json = value.to_json_string(false);
    match factory.message_from_json_str(which.1, &json) {
        Ok(back) => assert_eq!(back.to_json_string(false), json, "JSON round trip"),
        Err(e) => panic!("the JSON of a decoded message does not convert back: {e}\n{json}"),
    }
}

/// What [`owned_and_view`] found.
enum Decoded {
    /// Both refused the bytes.
    Refused,
    /// Both decoded them; the message's encoding.
    Encodes(Vec<u8>),
    /// Both decoded them, to a message no encoder writes (see below).
    OmittedDefaultOutOfRange,
}

/// Decodes `payload` as `M` owned and as a view: both accept the same
/// bytes and mean the same message; what decodes encodes, and the encoding
/// decodes to a message that encodes to the same bytes again.
fn owned_and_view<M: Viewable>(payload: &[u8], which: Dynamic) -> Decoded {
    let decoded = generated::<M>(payload);
    dynamic(which, payload, &decoded);
    decoded
}

fn generated<M: Viewable>(payload: &[u8]) -> Decoded {
    let owned = M::decode_slice(payload);
    let view = M::view(payload);
    match (&owned, &view) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (o, v) => panic!(
            "{}: owned decode and view disagree: {:?} vs {:?}",
            std::any::type_name::<M>(),
            o.as_ref().err(),
            v.as_ref().err()
        ),
    }
    let (Ok(msg), Ok(view)) = (owned, view) else {
        return Decoded::Refused;
    };
    let bytes = match msg.encode_to_vec() {
        Ok(bytes) => bytes,
        // Decoders check the values present on the wire, encoders every
        // value, including a default the wire left out (wire format §5.7):
        // `x: u8 [range = 1..=10]` absent decodes to 0, which no encoder
        // writes.
        Err(EncodeError::Range { value, .. }) if value.parse::<f64>() == Ok(0.0) => {
            assert!(matches!(
                view.to_owned_message().encode_to_vec(),
                Err(EncodeError::Range { .. })
            ));
            return Decoded::OmittedDefaultOutOfRange;
        }
        Err(e) => panic!("a decoded message does not encode: {e:?}\n{msg:?}"),
    };
    let from_view = view.to_owned_message();
    assert_eq!(
        from_view.encode_to_vec().expect("a viewed message encodes"),
        bytes,
        "the view means another message than the owned decode"
    );
    let again = M::decode_slice(&bytes).expect("a re-encoded message decodes");
    assert_eq!(
        again.encode_to_vec().expect("encodes"),
        bytes,
        "encoding is not stable"
    );
    assert_eq!(msg.encoded_len(), bytes.len(), "encoded_len");
    Decoded::Encodes(bytes)
}

/// As [`owned_and_view`], and the lazy view: made over any presence field,
/// it accepts whatever the validated view accepted and decodes the same
/// message.
macro_rules! with_lazy {
    ($ty:ty, $payload:expr, $which:expr) => {{
        let payload: &[u8] = $payload;
        let decoded = owned_and_view::<$ty>(payload, $which);
        if let Ok(lazy) = <$ty as LazyViewable>::lazy(payload) {
            let owned = lazy.to_owned_message();
            let view = lazy.to_view();
            match &decoded {
                Decoded::Encodes(bytes) => {
                    let owned = owned.expect("the lazy view decodes what the owned decode did");
                    assert_eq!(&owned.encode_to_vec().expect("encodes"), bytes);
                    let view = view.expect("the lazy view validates what the view did");
                    assert_eq!(
                        &view.to_owned_message().encode_to_vec().expect("encodes"),
                        bytes
                    );
                }
                Decoded::OmittedDefaultOutOfRange => {
                    assert!(
                        owned.is_ok(),
                        "the lazy view refused what the owned decode read"
                    );
                    assert!(view.is_ok(), "the lazy view refused what the view read");
                }
                Decoded::Refused => {
                    assert!(
                        owned.is_err(),
                        "the lazy view decoded what the owned decode refused"
                    );
                    assert!(
                        view.is_err(),
                        "the lazy view validated what the view refused"
                    );
                }
            }
        }
    }};
}

/// The first byte picks the type, the rest is the frame payload.
pub fn message_decode(data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 16 {
        0 => with_lazy!(alltypes::Scalars, payload, (0, "alltypes.Scalars")),
        1 => with_lazy!(alltypes::Containers, payload, (0, "alltypes.Containers")),
        2 => {
            owned_and_view::<alltypes::Choice>(payload, (0, "alltypes.Choice"));
        }
        3 => with_lazy!(alltypes::Node, payload, (0, "alltypes.Node")),
        4 => {
            owned_and_view::<alltypes::Expr>(payload, (0, "alltypes.Expr"));
        }
        5 => with_lazy!(alltypes::Type, payload, (0, "alltypes.type")),
        6 => with_lazy!(alltypes::Limited, payload, (0, "alltypes.Limited")),
        7 => with_lazy!(alltypes::Sparse, payload, (0, "alltypes.Sparse")),
        8 => with_lazy!(
            alltypes::SlotTelemetry,
            payload,
            (0, "alltypes.SlotTelemetry")
        ),
        9 => with_lazy!(
            charging::StatusReport,
            payload,
            (1, "charging.v1.StatusReport")
        ),
        10 => with_lazy!(
            charging::MeterReading,
            payload,
            (1, "charging.v1.MeterReading")
        ),
        11 => {
            owned_and_view::<charging::Command>(payload, (1, "charging.v1.Command"));
        }
        12 => with_lazy!(charging::Variable, payload, (1, "charging.v1.Variable")),
        13 => with_lazy!(recursion::Node, payload, (2, "fixtures.recursion.Node")),
        14 => {
            owned_and_view::<recursion::Json>(payload, (2, "fixtures.recursion.Json"));
        }
        _ => {
            // The dispatch table: the type id from the payload's first
            // bytes, as a session reads a frame.
            if let Some((&id, rest)) = payload.split_first() {
                let bytes = bytes::Bytes::copy_from_slice(rest);
                if let Ok(m) = alltypes::AnyMessage::decode(u32::from(id), bytes.clone()) {
                    let mut again = Vec::new();
                    m.encode(&mut again).expect("a decoded message encodes");
                    assert_eq!(again.len(), m.encoded_len());
                }
                let _ = charging::AnyMessage::decode(u32::from(id), bytes);
            }
        }
    }
}
