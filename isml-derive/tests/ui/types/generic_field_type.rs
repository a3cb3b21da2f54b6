#[derive(Debug, Clone, PartialEq, Default)]
struct Wrapper<T>(T);

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1)]
    value: Wrapper<u8>,
}

fn main() {}
