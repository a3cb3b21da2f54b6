#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1, id = 7)]
    level: u8,
}

fn main() {}
