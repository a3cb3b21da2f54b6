#[derive(Debug, Clone, PartialEq, isml_runtime::Message)]
struct Chain {
    #[isml(tag = 1)]
    value: u8,
    #[isml(tag = 2)]
    next: Box<Chain>,
}

impl Default for Chain {
    fn default() -> Self {
        unimplemented!()
    }
}

fn main() {}
