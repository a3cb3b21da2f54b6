//! Code generated from `schemas/*.isml` and the test fixtures, laid out in
//! modules that mirror the package paths.

/// `schemas/charging.isml`.
pub mod charging {
    /// Version 1.
    pub mod v1 {
        isml_runtime::include_schema!("charging.v1");
    }
}

/// `schemas/common.isml`.
pub mod common {
    isml_runtime::include_schema!("common");
}

/// `schemas/alltypes.isml`: every type and naming hazard.
pub mod alltypes {
    isml_runtime::include_schema!("alltypes");
}

/// Two versions of one protocol, for evolution tests.
pub mod evo {
    /// The old version.
    pub mod v1 {
        isml_runtime::include_schema!("evo.v1");
    }
    /// The new version.
    pub mod v2 {
        isml_runtime::include_schema!("evo.v2");
    }
}
