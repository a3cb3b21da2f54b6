//! Error collection: every problem in the input is reported, not just the
//! first, so one `cargo build` shows them all.

use std::fmt::Display;

use quote::ToTokens;

/// Collects errors while the input is checked.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error spanning `tokens`.
    pub(crate) fn error(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records a `syn` error (from parsing an attribute).
    pub(crate) fn syn_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// How many errors were recorded so far.
    pub(crate) fn count(&self) -> usize {
        self.errors.len()
    }

    /// Whether anything was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// All errors as one, or `None`.
    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.errors.into_iter().reduce(|mut a, b| {
            a.combine(b);
            a
        })
    }
}
