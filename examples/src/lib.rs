//! Runnable isml examples, and the Rust code generated from `schemas/`.

/// The charging-cabinet protocol (`schemas/charging.isml`).
pub mod charging {
    /// Version 1 of the protocol.
    pub mod v1 {
        isml_runtime::include_schema!("charging.v1");
    }
}

/// Types shared between protocols (`schemas/common.isml`).
pub mod common {
    isml_runtime::include_schema!("common");
}

pub mod cabinet;
pub mod linklab;
