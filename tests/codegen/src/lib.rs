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

/// `schemas/site.isml` and `schemas/geo.isml`: two packages naming each
/// other's types relatively.
pub mod fleet {
    /// `fleet.geo`.
    pub mod geo {
        isml_runtime::include_schema!("fleet.geo");
    }
    /// `fleet.site`.
    pub mod site {
        isml_runtime::include_schema!("fleet.site");
    }
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

/// A set of two packages compiled together (`schemas/multi_a.isml`, `multi_b.isml`).
pub mod multi {
    /// `multi.a`.
    pub mod a {
        isml_runtime::include_schema!("multi.a");
    }
    /// `multi.b`.
    pub mod b {
        isml_runtime::include_schema!("multi.b");
    }
}

/// The schema compiler's valid fixtures (`isml-schema/tests/fixtures/valid`).
pub mod fixtures {
    /// `comments_and_docs.isml`.
    pub mod docs {
        isml_runtime::include_schema!("fixtures.docs");
    }
    /// `imports_main.isml`.
    pub mod shop {
        isml_runtime::include_schema!("fixtures.shop");
    }
    /// `keywords.isml`.
    pub mod keywords {
        isml_runtime::include_schema!("fixtures.keywords");
    }
    /// `literals.isml`.
    pub mod literals {
        isml_runtime::include_schema!("fixtures.literals");
    }
    /// `recursion.isml`.
    pub mod recursion {
        isml_runtime::include_schema!("fixtures.recursion");
    }
    /// `rpc_forms.isml`: the five forms of an rpc.
    pub mod rpc_forms {
        isml_runtime::include_schema!("fixtures.rpc_forms");
    }
    /// `rpc_once.isml`: `[once]` rpcs.
    pub mod rpc_once {
        isml_runtime::include_schema!("fixtures.rpc_once");
    }
}

/// `isml-schema/tests/fixtures/valid/lib/stream_pkg.isml`: a package named
/// `stream`.
pub mod stream {
    isml_runtime::include_schema!("stream");
}

/// `isml-schema/tests/fixtures/valid/lib/shapes.isml`.
pub mod geometry {
    isml_runtime::include_schema!("geometry");
}

/// The name resolution fixtures (`relative_names.isml`, `leading_dot.isml`
/// and their `lib/acme*.isml` imports).
pub mod acme {
    isml_runtime::include_schema!("acme");
    /// `acme.geo`.
    pub mod geo {
        isml_runtime::include_schema!("acme.geo");
    }
    /// `acme.site`.
    pub mod site {
        isml_runtime::include_schema!("acme.site");
    }
    /// `acme.depot`, with its own `geo` package inside.
    pub mod depot {
        isml_runtime::include_schema!("acme.depot");
        /// `acme.depot.geo`.
        pub mod geo {
            isml_runtime::include_schema!("acme.depot.geo");
        }
    }
}
