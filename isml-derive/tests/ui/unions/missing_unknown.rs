#[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
enum Command {
    #[isml(tag = 1)]
    Start(u32),
}

fn main() {}
