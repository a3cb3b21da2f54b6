#[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
enum Command {
    #[isml(tag = 1, max_len = 3)]
    Start(String),
    #[isml(unknown)]
    Unknown { tag: u64, class: isml_runtime::wire::Class, bytes: bytes::Bytes },
}

fn main() {}
