#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
struct SlotState {
    value: u32,
}

fn main() {}
