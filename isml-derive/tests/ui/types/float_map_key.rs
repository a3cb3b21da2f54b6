use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1)]
    by_level: BTreeMap<f32, u8>,
}

fn main() {}
