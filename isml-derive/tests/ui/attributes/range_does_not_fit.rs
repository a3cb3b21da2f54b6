#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1, range = -1..=300)]
    level: u8,
}

fn main() {}
