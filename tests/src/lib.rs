//! Integration tests for isml.
