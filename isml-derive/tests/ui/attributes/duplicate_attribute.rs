#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1)]
    #[isml(tag = 2)]
    name: String,
}

fn main() {}
