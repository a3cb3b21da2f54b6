//! What the `max_len` and `range` attributes measure on each type.

use super::*;

/// Length a `max_len` attribute measures: UTF-8 bytes, bytes, elements or entries.
pub trait MaxLen {
    /// The measured length.
    fn max_len_value(&self) -> usize;
}

impl MaxLen for String {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl MaxLen for &str {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl MaxLen for Bytes {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl MaxLen for &[u8] {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<T> MaxLen for Vec<T> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<K, V> MaxLen for BTreeMap<K, V> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<K, V, S> MaxLen for HashMap<K, V, S> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<'a, T: WireView<'a>> MaxLen for ListView<'a, T> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<'a, K: WireView<'a>, V: WireView<'a>> MaxLen for MapView<'a, K, V> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<'a, M: crate::lazy::LazyMessage<'a>> MaxLen for crate::lazy::LazyList<'a, M> {
    /// Counts the elements (their lengths only): a list with a `max_len` is
    /// walked once more to check it. A malformed element ends the count; the
    /// iterator reports it.
    fn max_len_value(&self) -> usize {
        self.clone().count()
    }
}

impl<T: MaxLen> MaxLen for Option<T> {
    fn max_len_value(&self) -> usize {
        self.as_ref().map_or(0, T::max_len_value)
    }
}

/// A number a `range` attribute can check.
pub trait RangeValue {
    /// Whether the value lies in `min..=max`.
    fn in_range(&self, min: i128, max: i128) -> bool;
    /// The value, formatted for errors.
    fn describe(&self) -> String;
}

macro_rules! range_int {
    ($($t:ty),*) => {$(
        impl RangeValue for $t {
            fn in_range(&self, min: i128, max: i128) -> bool {
                (min..=max).contains(&(*self as i128))
            }
            fn describe(&self) -> String {
                alloc::format!("{self}")
            }
        }
    )*};
}
range_int!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! range_float {
    ($($t:ty),*) => {$(
        impl RangeValue for $t {
            fn in_range(&self, min: i128, max: i128) -> bool {
                let v = f64::from(*self);
                v >= min as f64 && v <= max as f64
            }
            fn describe(&self) -> String {
                alloc::format!("{self}")
            }
        }
    )*};
}
range_float!(f32, f64);

impl<T: RangeValue> RangeValue for Option<T> {
    fn in_range(&self, min: i128, max: i128) -> bool {
        self.as_ref().is_none_or(|v| v.in_range(min, max))
    }
    fn describe(&self) -> String {
        self.as_ref()
            .map_or_else(|| String::from("none"), T::describe)
    }
}
