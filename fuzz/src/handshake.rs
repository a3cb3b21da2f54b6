//! The handshake payloads: `hello` (client to server) and `welcome` (server
//! to client), and the device-id check the server applies to a hello.

use isml_runtime::handshake::{Hello, PROTOCOL_VERSION, Welcome, validate_device_id};

/// Both payload decoders on the same bytes: each parses or fails with an
/// error; what parses encodes back to exactly the bytes it was read from
/// (the format has one encoding per value), and decodes to itself.
pub fn handshake(data: &[u8]) {
    if let Ok(hello) = Hello::decode(data) {
        if hello.version == PROTOCOL_VERSION {
            let again = hello.encode();
            assert_eq!(&again[..], data, "hello re-encodes differently: {hello:?}");
            assert_eq!(Hello::decode(&again).expect("decodes again"), hello);
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
    if let Ok(welcome) = Welcome::decode(data) {
        let again = welcome.encode();
        assert_eq!(
            &again[..],
            data,
            "welcome re-encodes differently: {welcome:?}"
        );
        assert_eq!(Welcome::decode(&again).expect("decodes again"), welcome);
    }
}
