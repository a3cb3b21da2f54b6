//! The handshake payloads: `hello` (client to server) and `welcome` (server
//! to client), and the device-id check the server applies to a hello.

use isml_runtime::handshake::{Hello, PROTOCOL_VERSION, Welcome, validate_device_id};

/// Both payload decoders on the same bytes, each with its optional resume
/// section: each parses or fails with an error; what parses encodes back to
/// exactly the bytes it was read from (the format has one encoding per
/// value), and decodes to itself.
pub fn handshake(data: &[u8]) {
    if let Ok((hello, resume)) = Hello::decode_with(data) {
        if hello.version == PROTOCOL_VERSION {
            let again = hello.encode_with(resume.as_ref());
            assert_eq!(
                &again[..],
                data,
                "hello re-encodes differently: {hello:?} {resume:?}"
            );
            let (h, r) = Hello::decode_with(&again).expect("decodes again");
            assert_eq!((h, r), (hello.clone(), resume));
            // `decode` is the same hello without its resume section.
            assert_eq!(Hello::decode(data).expect("decodes"), hello);
            // The server checks a claimed id before anything else; any
            // string the peer sends is either valid or refused, and the
            // refusal renders.
            if let Err(e) = validate_device_id(&hello.device_id) {
                let _ = e.to_string();
            }
        } else {
            // Only the version is read from another version's hello.
            assert!(data.len() <= 10 || hello.device_id.is_empty());
        }
    }
    if let Ok((welcome, resume)) = Welcome::decode_with(data) {
        let again = welcome.encode_with(resume.as_ref());
        assert_eq!(
            &again[..],
            data,
            "welcome re-encodes differently: {welcome:?} {resume:?}"
        );
        let (w, r) = Welcome::decode_with(&again).expect("decodes again");
        assert_eq!((w, r), (welcome.clone(), resume));
        assert_eq!(Welcome::decode(data).expect("decodes"), welcome);
    }
}
