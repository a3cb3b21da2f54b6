//! Runnable isml examples.
