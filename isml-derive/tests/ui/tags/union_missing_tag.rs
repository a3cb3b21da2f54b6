#[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
enum Command {
    #[isml(tag = 1)]
    Start(u32),
    Stop(u32),
    #[isml(unknown)]
    Unknown { tag: u64, class: isml_runtime::wire::Class, bytes: bytes::Bytes },
}

fn main() {}
