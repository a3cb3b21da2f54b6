#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Reading {
    #[isml(tag = 1)]
    slot: u8,
    #[isml(tag = 1)]
    voltage_mv: u32,
}

fn main() {}
