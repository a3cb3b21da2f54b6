#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1)]
    level: Option<Option<u8>>,
}

fn main() {}
