//! Changes of the `max_len` and `range` bounds of a field.
//!
//! Codecs enforce both bounds on encode and on decode, so a peer refuses any
//! value outside its own version's bounds. Tightening a bound therefore
//! breaks old writers (a new reader refuses values they may send), and
//! loosening one breaks old readers (a new writer may send values they
//! refuse). Both are breaking unless [`Options::allow_bounds`] accepts them
//! as warnings.
//!
//! [`Options::allow_bounds`]: super::Options::allow_bounds

use crate::ir::{FieldDef, Type};

/// One side of a bound; `None` means no limit on that side.
type Side = Option<i128>;

/// The values a field accepts, as an inclusive interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    lo: Side,
    hi: Side,
}

impl Interval {
    /// Whether every value of `other` is also in `self`.
    fn contains(self, other: Interval) -> bool {
        let lo_ok = match (self.lo, other.lo) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a <= b,
        };
        let hi_ok = match (self.hi, other.hi) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a >= b,
        };
        lo_ok && hi_ok
    }
}

/// How a bound changed between two versions of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BoundChange {
    /// Some value the old version accepts is refused by the new one.
    pub(super) tightened: bool,
    /// Some value the new version accepts is refused by the old one.
    pub(super) loosened: bool,
    /// `max_len` or `range`.
    pub(super) attribute: &'static str,
    /// The old bound as written (`none` when absent).
    pub(super) old: String,
    /// The new bound as written (`none` when absent).
    pub(super) new: String,
}

impl BoundChange {
    /// What changed and whom it breaks, for a change message.
    pub(super) fn describe(&self) -> String {
        let verb = match (self.tightened, self.loosened) {
            (true, false) => "tightened",
            (false, true) => "loosened",
            _ => "changed",
        };
        let mut out = format!(
            "`{}` {verb} from {} to {}",
            self.attribute, self.old, self.new
        );
        let mut effects = Vec::new();
        if self.tightened {
            effects.push("new readers refuse values old writers may send");
        }
        if self.loosened {
            effects.push("old readers refuse values new writers may send");
        }
        out.push_str(": ");
        out.push_str(&effects.join(", and "));
        out
    }
}

/// The scalar a bound applies to: the field's type, inside `optional`.
fn scalar(ty: &Type) -> &Type {
    match ty {
        Type::Optional(inner) => scalar(inner),
        other => other,
    }
}

/// The change of `max_len` from `old` to `new`, if any.
pub(super) fn max_len(old: &FieldDef, new: &FieldDef) -> Option<BoundChange> {
    if old.max_len == new.max_len {
        return None;
    }
    let interval = |m: Option<u64>| Interval {
        lo: Some(0),
        hi: m.map(i128::from),
    };
    let (a, b) = (interval(old.max_len), interval(new.max_len));
    let show = |m: Option<u64>| m.map_or_else(|| "none".to_string(), |n| n.to_string());
    Some(BoundChange {
        tightened: !b.contains(a),
        loosened: !a.contains(b),
        attribute: "max_len",
        old: show(old.max_len),
        new: show(new.max_len),
    })
}

/// The change of `range` from `old` to `new`, if any. A field without
/// `range` accepts every value of its type: for an integer, the type's own
/// bounds, so `range = 0..=255` on a `u8` changes nothing.
pub(super) fn range(old: &FieldDef, new: &FieldDef) -> Option<BoundChange> {
    let interval = |f: &FieldDef| match (f.range, scalar(&f.ty).integer_bounds()) {
        (Some((lo, hi)), _) | (None, Some((lo, hi))) => Interval {
            lo: Some(lo),
            hi: Some(hi),
        },
        (None, None) => Interval { lo: None, hi: None },
    };
    let (a, b) = (interval(old), interval(new));
    if a == b {
        return None;
    }
    let show = |r: Option<(i128, i128)>| {
        r.map_or_else(|| "none".to_string(), |(lo, hi)| format!("{lo}..={hi}"))
    };
    Some(BoundChange {
        tightened: !b.contains(a),
        loosened: !a.contains(b),
        attribute: "range",
        old: show(old.range),
        new: show(new.range),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ty: Type, max_len: Option<u64>, range: Option<(i128, i128)>) -> FieldDef {
        let mut f = FieldDef::new("f", 1, ty);
        f.max_len = max_len;
        f.range = range;
        f
    }

    #[test]
    fn max_len_directions() {
        let s = |m| field(Type::String, m, None);
        let c = max_len(&s(Some(64)), &s(Some(32))).expect("changed");
        assert!(c.tightened && !c.loosened);
        assert_eq!(
            c.describe(),
            "`max_len` tightened from 64 to 32: new readers refuse values old writers may send"
        );
        let c = max_len(&s(Some(32)), &s(None)).expect("changed");
        assert!(!c.tightened && c.loosened);
        assert_eq!((c.old.as_str(), c.new.as_str()), ("32", "none"));
        assert!(max_len(&s(None), &s(Some(1))).expect("changed").tightened);
        assert_eq!(max_len(&s(Some(8)), &s(Some(8))), None);
    }

    #[test]
    fn range_directions() {
        let u = |r| field(Type::U8, None, r);
        let c = range(&u(Some((0, 100))), &u(Some((0, 50)))).expect("changed");
        assert!(c.tightened && !c.loosened);
        let c = range(&u(Some((10, 20))), &u(Some((0, 30)))).expect("changed");
        assert!(!c.tightened && c.loosened);
        // Shifted: both directions.
        let c = range(&u(Some((0, 10))), &u(Some((5, 20)))).expect("changed");
        assert!(c.tightened && c.loosened);
        assert_eq!(
            c.describe(),
            "`range` changed from 0..=10 to 5..=20: new readers refuse values old writers \
             may send, and old readers refuse values new writers may send"
        );
        // The whole domain of an integer type is the same as no range.
        assert_eq!(range(&u(None), &u(Some((0, 255)))), None);
        let opt = |r| field(Type::Optional(Box::new(Type::I8)), None, r);
        assert_eq!(range(&opt(Some((-128, 127))), &opt(None)), None);
        assert!(
            range(&u(None), &u(Some((0, 254))))
                .expect("changed")
                .tightened
        );
        // A float without a range has no bounds at all.
        let f = |r| field(Type::F32, None, r);
        let c = range(&f(Some((-40, 85))), &f(None)).expect("changed");
        assert!(!c.tightened && c.loosened);
    }
}
