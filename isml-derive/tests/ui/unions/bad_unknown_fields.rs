#[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
enum Command {
    #[isml(tag = 1)]
    Start(u32),
    #[isml(unknown)]
    Other(Vec<u8>),
}

fn main() {}
