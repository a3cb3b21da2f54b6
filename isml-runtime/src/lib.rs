//! The isml runtime.
//!
//! - [`wire`]: the wire format v1 codec core, the `isml-wire` crate re-exported
//!   (no I/O, no tokio, `no_std`).
//! - [`Message`], [`View`], [`Enum`], [`TopLevel`]: what generated types implement.
//! - [`lazy`]: lazy views, made in O(1) and decoded field by field; the
//!   validated [`View`] is the other way to read without copying.
//! - [`descriptor`]: reflection data generated for every schema type.
//! - [`codec`]: tokio-util `Decoder`/`Encoder` framing for streams and serial lines
//!   (feature `codec`).
//! - [`include_schema!`]: includes the code `isml-schema` generated for a package.
//! - [`transport`], [`handshake`], [`session`], [`dispatch`], [`server`],
//!   [`client`]: the runtime (feature `runtime`; transports behind `tcp`, `tls`,
//!   `serial`, `websocket`). See `docs/runtime.md`.
//!
//! # Derive
//!
//! With the `derive` feature (on by default), Rust types can be the source of
//! truth instead of `.isml` files. `#[derive(Message)]`, `#[derive(Enum)]` and
//! `#[derive(Union)]` lower the type into the schema compiler's IR, run its
//! checks, and emit code through the same generator as schemas: a derived
//! type encodes byte for byte like the schema-generated type of the
//! equivalent schema and has the same fingerprint, whatever the order of its
//! Rust fields. [`export_schema`] prints that schema for teams that work from
//! `.isml` files.
//!
//! ```
//! # #[cfg(feature = "derive")] {
//! use isml_runtime::descriptor::TypeRef;
//! use isml_runtime::wire::Class;
//! use isml_runtime::{Message, TopLevel, View, Viewable};
//!
//! /// Physical state of a charging slot.
//! #[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
//! #[isml(package = "charging.v1")]
//! #[repr(u32)]
//! enum SlotState {
//!     Empty = 0,
//!     Charging = 1,
//!     #[isml(unknown)]
//!     Unknown(u32),
//! }
//!
//! /// A report sent on its own: it has a type id.
//! #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
//! #[isml(id = 0x10, package = "charging.v1")]
//! struct StatusReport {
//!     #[isml(tag = 1, max_len = 16)]
//!     station_id: String,
//!     #[isml(tag = 3, range = -40..=85, unit = "degC")]
//!     temperature_c: f32,
//!     #[isml(tag = 2)]
//!     state: SlotState,
//!     #[isml(tag = 4)]
//!     serial: Vec<u8>,
//!     #[isml(tag = 5)]
//!     command: Option<Command>,
//! }
//!
//! #[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
//! #[isml(package = "charging.v1")]
//! enum Command {
//!     #[isml(tag = 1)]
//!     Start(u8),
//!     #[isml(tag = 2)]
//!     Stop(u8),
//!     #[isml(unknown)]
//!     Unknown { tag: u64, class: Class, bytes: bytes::Bytes },
//! }
//!
//! let report = StatusReport {
//!     station_id: "cab-7".into(),
//!     temperature_c: 21.5,
//!     state: SlotState::Charging,
//!     serial: vec![0xde, 0xad],
//!     command: Some(Command::Start(3)),
//! };
//! let bytes = report.encode_to_vec()?;
//! assert_eq!(StatusReport::decode_slice(&bytes)?, report);
//! // The derive also declares a zero-copy view type.
//! let view: StatusReportView<'_> = StatusReport::view(&bytes)?;
//! assert_eq!(view.station_id(), "cab-7");
//! assert_eq!(view.to_owned_message(), report);
//! // And a lazy view: made in O(1), each accessor decodes its field.
//! let lazy = StatusReportLazy::new(&bytes)?;
//! assert_eq!(lazy.station_id()?, "cab-7");
//! assert!(matches!(lazy.command()?, Some(CommandView::Start(3))));
//! // Attributes are enforced.
//! let hot = StatusReport { temperature_c: 90.0, ..report.clone() };
//! assert!(hot.encode_to_vec().is_err());
//!
//! assert_eq!(<StatusReport as TopLevel>::TYPE_ID, 0x10);
//! let schema = isml_runtime::export_schema(&[TypeRef::of::<StatusReport>()])?;
//! assert!(schema.contains("message StatusReport [id = 16] {"));
//! assert!(schema.contains("    temperature_c: f32 = 3 [unit = \"degC\", range = -40..=85];"));
//! assert!(schema.contains("    start: u8 = 1;"));
//! # let _ = <StatusReport as TopLevel>::fingerprint();
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Attributes, all inside `#[isml(...)]`:
//!
//! | where | attribute | meaning |
//! | --- | --- | --- |
//! | message, union | `id = N` | type id (1..=2^32-1); without it the type is nested-only. Ids are checked within one derive only: a macro cannot see other types, so [`export_schema`] (and compiling its output) is where duplicates across types show |
//! | message, union, enum | `package = "a.b"` | schema package; default: the crate name (`CARGO_CRATE_NAME`) |
//! | message, union, enum | `name = "N"` | schema name; default: the Rust name |
//! | field, union variant | `tag = N` | required, 1..=255 |
//! | field | `max_len = N`, `range = A..=B`, `unit = "…"`, `deprecated` | as in schemas, enforced on encode and decode |
//! | field | `name = "n"` | schema field name; default: the Rust name (raw identifiers unescaped) |
//! | field | `list` | a `Vec<u8>` that is `list<u8>` rather than `bytes` |
//! | enum, union variant | `name = "n"` | schema name; default: the Rust name in snake_case |
//! | enum, union variant | `unknown` | the required catch-all variant |
//!
//! Field types: all integer types, `f32`, `f64`, `bool`, `String`, `Vec<u8>`
//! and `bytes::Bytes` (both `bytes`), `Option<T>`, `Vec<T>`, `[T; N]`,
//! `HashMap<K, V>`, `BTreeMap<K, V>`, other derived or generated types, and
//! `Box<T>` for recursion (`Option<Box<Self>>`). Types are recognised by their
//! last path segment (`std::vec::Vec` and `Vec` alike).
//!
//! What the derives need and provide:
//!
//! - `Message` needs `Debug`, `Clone`, `PartialEq` and `Default` on the
//!   struct (derive them, or write `Default` by hand for arrays longer than
//!   32); decoding starts each field from its type's default, not from the
//!   struct's `Default`. It implements [`Message`], [`Viewable`],
//!   [`Reflect`], [`TopLevel`] (with an `id`), [`LazyViewable`] and declares
//!   `NameView<'a>` and `NameLazy<'a>` (see [`lazy`]).
//! - `Enum` needs a fieldless enum with explicit values (`Empty = 0`, which
//!   Rust accepts next to the catch-all with a `#[repr(u32)]`) and an
//!   `#[isml(unknown)] Unknown(u32)` variant, placed last or given an unused
//!   value so its implicit discriminant clashes with nothing. It implements
//!   [`Enum`], [`Reflect`] and `Default` (value 0, as schema enums do).
//! - `Union` needs one-value variants with tags and an `#[isml(unknown)]
//!   Unknown { tag: u64, class: Class, bytes: Bytes }` variant (any name) that
//!   keeps variants from newer peers so they can be forwarded unchanged. It
//!   implements what `Message` does plus `Default` (the lowest tag's variant).
//!
//! # Services without a schema
//!
//! With `derive` and `runtime`, `#[isml_runtime::service]` on a trait makes
//! it an rpc service, as `service` in a schema does: it rewrites the trait
//! as the schema generator writes it and adds `NameServer<T>`, `NameClient`
//! and the descriptor, with the same method fingerprints as the equivalent
//! schema. Arguments: `package = "a.b"` (default: the crate name) and
//! `name = "Name"` (the wire name; default: the trait's). Each method is an
//! `async fn` with `#[rpc(id = N)]` (1..=65535; `name = "m"` renames it on
//! the wire; `once` is the schema's `[once]`), and its signature gives its
//! form (see `docs/rpc.md`):
//!
//! ```
//! # #[cfg(all(feature = "derive", feature = "runtime"))] {
//! use isml_runtime::rpc::{Call, Sink, Status};
//!
//! #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
//! #[isml(id = 1, package = "charging.v1")]
//! struct WatchSlot {
//!     #[isml(tag = 1)]
//!     slot: u8,
//! }
//!
//! #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
//! #[isml(id = 2, package = "charging.v1")]
//! struct SlotReading {
//!     #[isml(tag = 1)]
//!     voltage_mv: u32,
//! }
//!
//! #[isml_runtime::service(package = "charging.v1")]
//! trait Charger {
//!     /// One request, one reply.
//!     #[rpc(id = 1)]
//!     async fn read_slot(&self, call: Call, req: WatchSlot) -> Result<SlotReading, Status>;
//!     /// A stream of readings.
//!     #[rpc(id = 2)]
//!     async fn watch_slot(&self, call: Call, req: WatchSlot, out: Sink<SlotReading>) -> Result<(), Status>;
//! }
//!
//! struct Cabinet;
//!
//! impl Charger for Cabinet {
//!     async fn read_slot(&self, _call: Call, _req: WatchSlot) -> Result<SlotReading, Status> {
//!         Ok(SlotReading { voltage_mv: 48_000 })
//!     }
//!     async fn watch_slot(&self, _call: Call, _req: WatchSlot, out: Sink<SlotReading>) -> Result<(), Status> {
//!         out.send(SlotReading { voltage_mv: 48_000 }).await?;
//!         Ok(())
//!     }
//! }
//!
//! let _dispatcher = isml_runtime::Dispatcher::new().service(ChargerServer::new(Cabinet));
//! let schema = isml_runtime::export_schema_with(&[], &[ChargerClient::descriptor()])?;
//! assert!(schema.contains("rpc watch_slot(WatchSlot) -> stream SlotReading = 2;"));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`export_schema_with`] (feature `runtime`) prints the schema of types and
//! services together.
//!
//! Derived types have no inherent items except the view type's. Their
//! descriptors record fingerprint `0`: [`TopLevel::fingerprint`] computes it
//! from the descriptors on first use ([`descriptor::fingerprint`]). Generic
//! types are not supported. The expansion names the runtime as
//! `::isml_runtime`, so the crate must not be renamed in `Cargo.toml`.
// Without a feature its modules do not exist, so the links above would not
// resolve: in such builds they lead to the documentation of every feature.
#![cfg_attr(
    not(feature = "codec"),
    doc = "",
    doc = "[`codec`]: https://docs.rs/isml-runtime/latest/isml_runtime/codec/"
)]
#![cfg_attr(
    not(feature = "runtime"),
    doc = "",
    doc = "[`transport`]: https://docs.rs/isml-runtime/latest/isml_runtime/transport/",
    doc = "[`handshake`]: https://docs.rs/isml-runtime/latest/isml_runtime/handshake/",
    doc = "[`session`]: https://docs.rs/isml-runtime/latest/isml_runtime/session/",
    doc = "[`dispatch`]: https://docs.rs/isml-runtime/latest/isml_runtime/dispatch/",
    doc = "[`server`]: https://docs.rs/isml-runtime/latest/isml_runtime/server/",
    doc = "[`client`]: https://docs.rs/isml-runtime/latest/isml_runtime/client/",
    doc = "[`export_schema_with`]: https://docs.rs/isml-runtime/latest/isml_runtime/fn.export_schema_with.html"
)]
#![warn(missing_docs)]

extern crate alloc;
// Generated code names the runtime `::isml_runtime`, also inside it
// (the text protocol's types, `text`).
#[cfg(feature = "runtime")]
extern crate self as isml_runtime;

#[cfg(feature = "runtime")]
pub mod client;
#[cfg(feature = "codec")]
pub mod codec;
pub mod descriptor;
#[cfg(feature = "runtime")]
pub mod dispatch;
#[cfg(feature = "runtime")]
pub mod handshake;
pub mod lazy;
mod message;
#[cfg(feature = "runtime")]
pub mod outbox;
pub mod pubsub;
#[cfg(feature = "runtime")]
pub mod rpc;
#[cfg(feature = "runtime")]
pub mod server;
#[cfg(feature = "runtime")]
pub mod session;
#[cfg(feature = "runtime")]
pub mod text;
#[cfg(feature = "runtime")]
pub mod transport;
pub mod view;
pub mod wire_type;

/// The wire format v1: the `isml-wire` crate (varints, presence fields,
/// [`Reader`](wire::Reader), frame headers, stream and serial framing,
/// fragmentation, canonical forms), re-exported so that generated code and
/// applications name one path.
pub use isml_wire as wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use descriptor::{ExportError, Reflect, export_schema, export_schema_with_channels};
pub use lazy::{LazyMessage, LazyViewable};
pub use message::{Enum, Message, TopLevel, View, Viewable};
/// Several servers as one fleet: see [`server::cluster`].
#[cfg(feature = "runtime")]
pub use server::cluster;
#[cfg(feature = "runtime")]
pub use {
    client::Client,
    dispatch::{Context, Dispatcher, HandlerError},
    rpc::export_schema_with,
    server::Server,
    session::{CloseReason, Key, Session, SessionConfig},
};

/// Derive macros (feature `derive`, on by default): see the [derive section](crate#derive).
///
/// They live in the macro namespace, so `isml_runtime::Message` names both
/// the trait and the derive.
#[cfg(feature = "derive")]
pub use isml_derive::{Enum, Message, Union, service};

/// Includes the Rust code generated by `isml-schema` for one package, from the
/// build script's `OUT_DIR`.
///
/// Nest it in modules mirroring the package path, so that references across
/// packages (`common.Address` -> `super::super::common::Address`) resolve:
///
/// ```ignore
/// pub mod charging {
///     pub mod v1 {
///         isml_runtime::include_schema!("charging.v1");
///     }
/// }
/// ```
#[macro_export]
macro_rules! include_schema {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
    };
}
