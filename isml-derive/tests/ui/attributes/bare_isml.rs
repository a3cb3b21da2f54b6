#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml]
struct Reading {
    #[isml(tag = 1)]
    level: u8,
}

fn main() {}
