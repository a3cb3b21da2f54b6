#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1, max_len = 4)]
    level: u8,
}

fn main() {}
