//! The `isml` command-line tool.
fn main() {}
