#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
enum SlotState {
    Empty = 0,
    Charging = 1,
}

fn main() {}
