#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(package = "charging/v1", name = "2fast")]
struct Reading {
    #[isml(tag = 1)]
    level: u8,
}

fn main() {}
