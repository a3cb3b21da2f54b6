const LEN: usize = 6;

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1)]
    mac: [u8; LEN],
}

fn main() {}
