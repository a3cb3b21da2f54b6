#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
#[isml(id = 3)]
#[repr(u32)]
enum SlotState {
    Empty = 0,
    #[isml(unknown)]
    Unknown(u32),
}

fn main() {}
