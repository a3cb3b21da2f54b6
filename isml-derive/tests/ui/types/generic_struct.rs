#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading<T> {
    #[isml(tag = 1)]
    value: T,
}

fn main() {}
