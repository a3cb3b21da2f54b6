#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
enum SlotState {
    Empty,
    Fault(u8),
    #[isml(unknown)]
    Unknown(u32),
}

fn main() {}
