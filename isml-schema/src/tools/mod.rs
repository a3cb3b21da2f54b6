//! Tools on a compiled schema: the build API ([`builder`]), the formatter
//! ([`format`]), compatibility checks ([`compat`]), dynamic messages and
//! their JSON mapping ([`dynamic`]), and the IR dump of `isml check --dump`.

pub mod builder;
pub mod compat;
pub(crate) mod dump;
pub mod dynamic;
pub mod format;
