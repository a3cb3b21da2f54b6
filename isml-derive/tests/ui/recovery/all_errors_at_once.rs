#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, colour = "red")]
struct Reading {
    #[isml(tag = 1)]
    a: u8,
    b: u8,
    #[isml(tag = 3)]
    c: usize,
    #[isml(tag = 4, max_len = 2, max_len = 3)]
    d: String,
}

fn main() {}
