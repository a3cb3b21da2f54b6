#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading(u8, u32);

fn main() {}
