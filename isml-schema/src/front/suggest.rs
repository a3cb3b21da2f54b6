//! "Did you mean ...?" suggestions based on edit distance.

/// The scalar type names of the language.
pub(crate) fn scalar_names() -> &'static [&'static str] {
    &[
        "bool", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "string",
        "bytes",
    ]
}

/// Levenshtein distance between `a` and `b`, counted in characters, with
/// ASCII case differences costing nothing extra beyond one substitution.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a likely
/// typo: at most a third of the name's length (and at least 1) edits away,
/// or the same name in another case. Ties go to the first candidate.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let d = if c.eq_ignore_ascii_case(name) {
            0
        } else {
            edit_distance(name, c)
        };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("max_len", "max_length"), 3);
        assert_eq!(edit_distance("Adress", "Address"), 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("Adress", ["Address", "Slot"]), Some("Address"));
        assert_eq!(closest("max_lenght", ["max_len", "unit"]), Some("max_len"));
        assert_eq!(closest("slotstate", ["SlotState"]), Some("SlotState"));
        assert_eq!(closest("xyz", ["Address", "Slot"]), None);
        assert_eq!(closest("u9", ["u8", "u16"]), Some("u8"));
        assert_eq!(closest("Slot", ["Slot"]), None);
    }
}
