//! Message types for the runtime's integration tests: a subset of
//! `schemas/charging.isml` (same names, type ids and field tags), declared
//! with the derive macros so that the tests need nothing beyond the features
//! they are gated on. `isml-derive` is a dev-dependency of its own, so the
//! runtime's `derive` feature stays off unless a feature set turns it on.
//!
//! [`AnyMessage`] stands in for the dispatch table the schema compiler
//! generates: the same `types()` and `decode` shape, built from the derived
//! types' [`TopLevel`] impls.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use isml_runtime::wire::DecodeError;
use isml_runtime::{Message, TopLevel};

/// Physical state of a charging slot.
#[derive(Debug, Clone, Copy, PartialEq, isml_derive::Enum)]
#[isml(package = "charging.v1")]
#[repr(u32)]
pub(crate) enum SlotState {
    Empty = 0,
    Charging = 1,
    Full = 2,
    Fault = 3,
    #[isml(unknown)]
    Unknown(u32),
}

/// How bad a fault is.
#[derive(Debug, Clone, Copy, PartialEq, isml_derive::Enum)]
#[isml(package = "charging.v1")]
#[repr(u32)]
pub(crate) enum Severity {
    Info = 0,
    Warning = 1,
    Error = 2,
    #[isml(unknown)]
    Unknown(u32),
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, isml_derive::Enum)]
#[isml(package = "charging.v1")]
#[repr(u32)]
pub(crate) enum RefusalReason {
    NoBattery = 0,
    SlotFaulted = 1,
    Busy = 2,
    NotAllowed = 3,
    #[isml(unknown)]
    Unknown(u32),
}

/// One slot of the cabinet (nested only: no type id).
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(package = "charging.v1")]
pub(crate) struct Slot {
    #[isml(tag = 1)]
    pub(crate) index: u8,
    #[isml(tag = 2)]
    pub(crate) state: SlotState,
    #[isml(tag = 4, range = 0..=60_000, unit = "mA")]
    pub(crate) current_limit_ma: u32,
}

/// A fault raised by the cabinet or one of its slots (one-way).
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 0x04, package = "charging.v1")]
pub(crate) struct Fault {
    #[isml(tag = 1)]
    pub(crate) code: u32,
    #[isml(tag = 2)]
    pub(crate) severity: Severity,
    #[isml(tag = 3, max_len = 256)]
    pub(crate) message: String,
    #[isml(tag = 4)]
    pub(crate) slot: Option<u8>,
}

/// Periodic status of the whole cabinet (one-way, with lists and a map).
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 0x01, package = "charging.v1")]
pub(crate) struct StatusReport {
    #[isml(tag = 1, max_len = 64)]
    pub(crate) station_id: String,
    #[isml(tag = 2, max_len = 64)]
    pub(crate) slots: Vec<Slot>,
    #[isml(tag = 3, range = -40..=85, unit = "degC")]
    pub(crate) temperature_c: f32,
    #[isml(tag = 4)]
    pub(crate) firmware: Option<String>,
    #[isml(tag = 5, max_len = 16)]
    pub(crate) labels: BTreeMap<String, String>,
    #[isml(tag = 6, max_len = 32)]
    pub(crate) serial: Bytes,
    #[isml(tag = 7)]
    pub(crate) mac: [u8; 6],
    #[isml(tag = 13, unit = "s")]
    pub(crate) uptime_s: u64,
    #[isml(tag = 14, max_len = 32)]
    pub(crate) active_faults: Vec<Fault>,
}

/// Ask a slot to start charging its battery (a request).
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 0x05, package = "charging.v1")]
pub(crate) struct StartCharging {
    #[isml(tag = 1)]
    pub(crate) slot: u8,
    #[isml(tag = 2, range = 1..=100, unit = "%")]
    pub(crate) target_soc_percent: u8,
    #[isml(tag = 3, range = 0..=60_000, unit = "mA")]
    pub(crate) max_current_ma: Option<u32>,
}

/// Reply to [`StartCharging`].
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 0x07, package = "charging.v1")]
pub(crate) struct ChargeStarted {
    #[isml(tag = 1)]
    pub(crate) slot: u8,
    #[isml(tag = 2, unit = "s")]
    pub(crate) eta_s: Option<u32>,
    #[isml(tag = 3)]
    pub(crate) refused: Option<RefusalReason>,
}

/// Restart the cabinet controller (one-way).
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 0x21, package = "charging.v1")]
pub(crate) struct Reboot {
    #[isml(tag = 1, unit = "s")]
    pub(crate) delay_s: u16,
}

/// A request without fields, which the test servers have no handler for.
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 0x23, package = "charging.v1")]
pub(crate) struct GetFirmware {}

/// `(type id, full name, fingerprint)` of `M`, as in a generated table.
pub(crate) fn entry<M: TopLevel>() -> (u32, &'static str, u64) {
    (M::TYPE_ID, <M as Message>::NAME, M::fingerprint())
}

/// Declares [`AnyMessage`] from one list of types, so that its table, its
/// decoder and its type ids cannot disagree.
macro_rules! any_message {
    ($($ty:ident),+ $(,)?) => {
        /// Any top-level message of this module, like a generated `AnyMessage`.
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) enum AnyMessage {
            $($ty($ty),)+
        }

        impl AnyMessage {
            /// `(type id, full name, fingerprint)` of every message, by id: what
            /// `Server::builder().types(..)` and `Client::builder(..).types(..)` take.
            pub(crate) fn types() -> &'static [(u32, &'static str, u64)] {
                static TYPES: LazyLock<Vec<(u32, &'static str, u64)>> = LazyLock::new(|| {
                    let mut t = vec![$(entry::<$ty>()),+];
                    t.sort_unstable_by_key(|e| e.0);
                    t
                });
                &TYPES
            }

            /// Decodes a frame payload by its type id.
            pub(crate) fn decode(type_id: u32, payload: Bytes) -> Result<Self, DecodeError> {
                $(
                    if type_id == <$ty as TopLevel>::TYPE_ID {
                        return <$ty as Message>::decode(payload).map(AnyMessage::$ty);
                    }
                )+
                Err(DecodeError::UnknownMessageType { type_id })
            }

            /// The type id of the message held.
            pub(crate) fn type_id(&self) -> u32 {
                match self {
                    $(AnyMessage::$ty(_) => <$ty as TopLevel>::TYPE_ID,)+
                }
            }
        }
    };
}

any_message!(
    StatusReport,
    Fault,
    StartCharging,
    ChargeStarted,
    Reboot,
    GetFirmware,
);

/// A certificate authority, a server certificate for `localhost` and a
/// client certificate for `cabinet-17.example`, made with rcgen.
#[cfg(feature = "tls")]
pub(crate) mod pki {
    use isml_runtime::transport::tls::rustls;

    pub(crate) struct Pki {
        pub(crate) ca: rustls::pki_types::CertificateDer<'static>,
        pub(crate) server: (rustls::pki_types::CertificateDer<'static>, Vec<u8>),
        pub(crate) client: (rustls::pki_types::CertificateDer<'static>, Vec<u8>),
    }

    pub(crate) fn pki() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, usage| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &issuer).unwrap();
            (cert.der().clone(), key.serialize_der())
        };
        Pki {
            ca: ca.der().clone(),
            server: leaf(
                vec!["localhost".into()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            client: leaf(
                vec!["cabinet-17.example".into()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        }
    }

    pub(crate) fn key(der: &[u8]) -> rustls::pki_types::PrivateKeyDer<'static> {
        rustls::pki_types::PrivateKeyDer::Pkcs8(der.to_vec().into())
    }
}
