#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
#[repr(u32)]
enum SlotState {
    Empty = 0,
    Charging,
    #[isml(unknown)]
    Unknown(u32),
}

fn main() {}
