use isml_runtime::{Message, TopLevel, Viewable};

// One mistake (a missing tag) is reported once: code using the type as a
// message, a top-level message, a viewable type or a field type of another
// derived type sees no trait-bound errors.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1)]
struct Reading {
    level: u8,
}

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Batch {
    #[isml(tag = 1)]
    readings: Vec<Reading>,
}

#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
enum Broken {
    A,
}

#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct UsesBroken {
    #[isml(tag = 1)]
    b: Broken,
}

fn uses<M: TopLevel + Viewable>(m: &M) -> usize {
    m.encoded_len()
}

fn main() {
    let _ = uses(&Reading::default());
    let _ = Batch::default().encode_to_vec();
    let _: Option<ReadingView<'_>> = None;
}
