#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 256)]
    slot: u8,
}

fn main() {}
