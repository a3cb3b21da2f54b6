//! Zero-copy views of lists, maps and boxed messages.
//!
//! A view is validated completely when it is made, then read lazily: iterating a
//! [`ListView`] decodes each element from the receive buffer again, without
//! allocating. Strings and bytes inside are borrowed slices.

use core::fmt;
use core::marker::PhantomData;

use crate::wire::{DecodeError, Reader};
use crate::wire_type::WireView;

/// A validated list (or array) in the receive buffer.
pub struct ListView<'a, T> {
    content: Reader<'a>,
    len: usize,
    _elem: PhantomData<fn() -> T>,
}

impl<T> Clone for ListView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ListView<'_, T> {}

impl<T> Default for ListView<'_, T> {
    fn default() -> Self {
        ListView {
            content: Reader::empty(),
            len: 0,
            _elem: PhantomData,
        }
    }
}

impl<'a, T: WireView<'a>> fmt::Debug for ListView<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: WireView<'a>> PartialEq for ListView<'a, T>
where
    T::View: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<'a, T: WireView<'a>> ListView<'a, T> {
    /// Reads and validates a length-delimited list.
    #[inline]
    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let at = r.position();
        let content = r.delimited()?;
        Self::from_content(content, at)
    }

    /// Validates the content of a list (the bytes inside its length; `at`
    /// is where the length starts, for errors).
    #[inline]
    pub(crate) fn from_content(content: Reader<'a>, at: usize) -> Result<Self, DecodeError> {
        if let Some(width) = T::ELEM_WIDTH {
            if !content.remaining().is_multiple_of(width) {
                return Err(DecodeError::RaggedList {
                    at,
                    len: content.remaining(),
                    width,
                });
            }
            if T::ANY_BITS {
                return Ok(ListView {
                    len: content.remaining() / width,
                    content,
                    _elem: PhantomData,
                });
            }
        }
        let mut walk = content;
        let mut len = 0;
        while !walk.is_empty() {
            T::check_elem(&mut walk)?;
            len += 1;
        }
        Ok(ListView {
            content,
            len,
            _elem: PhantomData,
        })
    }

    /// Reads and validates exactly `n` elements (an array in element form).
    pub(crate) fn read_array(r: &mut Reader<'a>, n: usize) -> Result<Self, DecodeError> {
        let start = r.position();
        r.descend(|r| {
            for _ in 0..n {
                T::check_elem(r)?;
            }
            Ok(())
        })?;
        Ok(ListView {
            content: r.since(start),
            len: n,
            _elem: PhantomData,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the elements, decoding each from the buffer.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter {
            r: self.content,
            left: self.len,
            _elem: PhantomData,
        }
    }

    /// The element at `index`. Constant time for fixed-width elements, linear otherwise.
    pub fn get(&self, index: usize) -> Option<T::View> {
        if index >= self.len {
            return None;
        }
        match T::ELEM_WIDTH {
            Some(w) => {
                let mut r = self.content;
                r.raw(index * w).ok()?;
                T::view_elem(&mut r).ok()
            }
            None => self.iter().nth(index),
        }
    }

    /// The encoded elements, borrowed from the receive buffer: for lists of
    /// `u8`, `i8`, `bool`, `f32` and `f64`, the little-endian values back to back.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.content.rest()
    }

    /// Copies the elements into a vector of owned values.
    pub fn to_vec(&self) -> alloc::vec::Vec<T> {
        self.iter().map(|v| T::from_view(&v)).collect()
    }
}

impl<'a> ListView<'a, u8> {
    /// The bytes of a `list<u8>`, borrowed from the receive buffer.
    pub fn as_slice(&self) -> &'a [u8] {
        self.content.rest()
    }
}

impl<'a, T: WireView<'a>> IntoIterator for ListView<'a, T> {
    type Item = T::View;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// Iterator over a [`ListView`].
pub struct ListIter<'a, T> {
    r: Reader<'a>,
    left: usize,
    _elem: PhantomData<fn() -> T>,
}

impl<'a, T: WireView<'a>> Iterator for ListIter<'a, T> {
    type Item = T::View;

    #[inline(always)]
    fn next(&mut self) -> Option<T::View> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The list was validated when the view was made: this cannot fail.
        T::view_elem(&mut self.r).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, T: WireView<'a>> ExactSizeIterator for ListIter<'a, T> {}

/// A validated map in the receive buffer, in ascending key order.
pub struct MapView<'a, K, V> {
    content: Reader<'a>,
    len: usize,
    _entry: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for MapView<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for MapView<'_, K, V> {}

impl<K, V> Default for MapView<'_, K, V> {
    fn default() -> Self {
        MapView {
            content: Reader::empty(),
            len: 0,
            _entry: PhantomData,
        }
    }
}

impl<'a, K: WireView<'a>, V: WireView<'a>> fmt::Debug for MapView<'a, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, K: WireView<'a>, V: WireView<'a>> MapView<'a, K, V>
where
    K::View: PartialOrd,
{
    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let content = r.delimited()?;
        Self::from_content(content)
    }

    /// Validates the content of a map (the bytes inside its length).
    pub(crate) fn from_content(content: Reader<'a>) -> Result<Self, DecodeError> {
        if K::BYTE_KEY {
            return Self::read_byte_keys(content);
        }
        let mut walk = content;
        let mut len = 0;
        let mut last: Option<K::View> = None;
        while !walk.is_empty() {
            let at = walk.position();
            let k = K::view_elem(&mut walk)?;
            if last.is_some_and(|l| l >= k) {
                return Err(DecodeError::MapKeyOrder { at });
            }
            last = Some(k);
            V::check_elem(&mut walk)?;
            len += 1;
        }
        Ok(MapView {
            content,
            len,
            _entry: PhantomData,
        })
    }

    /// [`MapView::read`] for keys ordered by their bytes (strings, bytes):
    /// the order is checked on the bytes, so no key's view is made twice
    /// (once here, once when iterating).
    fn read_byte_keys(content: Reader<'a>) -> Result<Self, DecodeError> {
        let mut walk = content;
        let mut len = 0;
        let mut last: Option<&[u8]> = None;
        while !walk.is_empty() {
            let at = walk.position();
            let k = K::check_byte_key(&mut walk)?;
            if last.is_some_and(|l| l >= k) {
                return Err(DecodeError::MapKeyOrder { at });
            }
            last = Some(k);
            V::check_elem(&mut walk)?;
            len += 1;
        }
        Ok(MapView {
            content,
            len,
            _entry: PhantomData,
        })
    }
}

impl<'a, K: WireView<'a>, V: WireView<'a>> MapView<'a, K, V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the entries in ascending key order.
    pub fn iter(&self) -> MapIter<'a, K, V> {
        MapIter {
            r: self.content,
            left: self.len,
            _entry: PhantomData,
        }
    }

    /// The value for `key` (a linear scan).
    pub fn get(&self, key: &K::View) -> Option<V::View>
    where
        K::View: PartialEq,
    {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Iterator over a [`MapView`].
pub struct MapIter<'a, K, V> {
    r: Reader<'a>,
    left: usize,
    _entry: PhantomData<fn() -> (K, V)>,
}

impl<'a, K: WireView<'a>, V: WireView<'a>> Iterator for MapIter<'a, K, V> {
    type Item = (K::View, V::View);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated when the view was made: this cannot fail.
        let k = K::view_elem(&mut self.r).ok()?;
        let v = V::view_elem(&mut self.r).ok()?;
        Some((k, v))
    }
}

/// A validated value read on demand: how views hold recursive (boxed) fields.
pub struct LazyView<'a, T> {
    at: Reader<'a>,
    field_form: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for LazyView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for LazyView<'_, T> {}

impl<T> Default for LazyView<'_, T> {
    fn default() -> Self {
        LazyView {
            at: Reader::empty(),
            field_form: true,
            _t: PhantomData,
        }
    }
}

impl<'a, T: WireView<'a>> fmt::Debug for LazyView<'a, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<'a, T: WireView<'a>> LazyView<'a, T> {
    pub(crate) fn read(r: &mut Reader<'a>, field_form: bool) -> Result<Self, DecodeError> {
        let at = *r;
        if field_form {
            T::view_field(r)?;
        } else {
            T::view_elem(r)?;
        }
        Ok(LazyView {
            at,
            field_form,
            _t: PhantomData,
        })
    }

    /// The view of the value.
    pub fn get(&self) -> T::View {
        let mut r = self.at;
        if r.is_empty() {
            return T::View::default();
        }
        // Validated when the view was made: this cannot fail.
        let v = if self.field_form {
            T::view_field(&mut r)
        } else {
            T::view_elem(&mut r)
        };
        v.unwrap_or_default()
    }
}
