#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1, maxlen = 4)]
    name: String,
}

fn main() {}
