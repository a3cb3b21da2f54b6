//! Lazy views: the first of the two ways to read a message without copying.
//!
//! A lazy view (`NameLazy<'a>`, generated for every message) is made in
//! O(1): it reads the presence field and keeps the rest of the buffer. Each
//! accessor decodes its field when it is called and returns a `Result`, as
//! Cap'n Proto's readers do: nothing is validated that is not read, and a
//! malformed field is an error of that accessor only. Nested messages are
//! lazy views themselves, and a list of messages is a [`LazyList`] whose
//! iterator reads each element once, as it goes. Other lists are
//! [`LazyValues`] and maps [`LazyMap`]: their iterators decode and check
//! each element (a map's key order too) as they reach it, so that they are
//! walked once; a list or map field with a `max_len` or `range` bound is
//! validated by its accessor instead (the bound needs the whole value) and
//! returned as the validated view's [`ListView`]/[`MapView`]. Other field
//! types (strings, optionals, unions) are read and validated when their
//! accessor is called, into the same types the validated view returns.
//!
//! The second way is the validated view (`NameView<'a>`, [`View`]): it checks
//! the whole message when it is made, so that its accessors are infallible
//! (planus's model). Choose it when every field will be read anyway and a
//! single error point is worth a full pass; choose a lazy view to read a few
//! fields of a large message, or to read every field exactly once.
//!
//! A derived type's lazy view returns lazy views for fields of its own type
//! (recursion); fields of other types are read through their validated view,
//! since a derive macro cannot see whether another type is a message.
//!
//! Accessors read fields in any order; reading them in tag order costs one
//! pass over the message (the view remembers where the last field it found
//! starts), reading backwards restarts from the first value.
//!
//! [`View`]: crate::View

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use crate::view::{ListView, MapView};
use crate::wire::{Class, DecodeError, Limits, Reader};
use crate::wire_type::WireView;

/// The body of a message read lazily: its presence field and its values,
/// located on demand.
#[derive(Clone)]
pub struct LazyBody<'a> {
    /// Positioned at the first value; its end is the body's end.
    values: Reader<'a>,
    /// Where the body (its presence field) starts.
    start: usize,
    /// The classes of tags 1-32.
    bits: u64,
    /// Whether tags above 32 are present (then `bits` is not used and the
    /// presence field is read again on each lookup).
    long: bool,
    /// A tag and the offset of its value (or of the next present tag's):
    /// where the last lookup or read ended, so that reads in tag order do
    /// not start over and skip nothing.
    cursor: Cell<(u32, usize)>,
}

impl fmt::Debug for LazyBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBody")
            .field("start", &self.start)
            .field("end", &(self.values.position() + self.values.remaining()))
            .finish()
    }
}

impl Default for LazyBody<'_> {
    /// The body of a message with every field at its default.
    fn default() -> Self {
        LazyBody {
            values: Reader::empty(),
            start: 0,
            bits: 0,
            long: false,
            cursor: Cell::new((1, 0)),
        }
    }
}

impl<'a> LazyBody<'a> {
    /// Reads the presence field that opens the body in `r` (the whole region
    /// of `r` is the body).
    #[inline(always)]
    pub fn read(mut r: Reader<'a>) -> Result<LazyBody<'a>, DecodeError> {
        let start = r.position();
        if let Some(bits) = r.presence_word() {
            return Ok(LazyBody {
                values: r,
                start,
                bits,
                long: false,
                cursor: Cell::new((1, r.position())),
            });
        }
        let presence = r.presence()?;
        let (bits, long) = match presence.only_known(u64::MAX) {
            Some(bits) => (bits, false),
            None => (0, true),
        };
        Ok(LazyBody {
            values: r,
            start,
            bits,
            long,
            cursor: Cell::new((1, r.position())),
        })
    }

    /// A lazy body over a frame payload, with the default [`Limits`].
    #[inline(always)]
    pub fn new(buf: &'a [u8]) -> Result<LazyBody<'a>, DecodeError> {
        LazyBody::read(Reader::with_limits(buf, &Limits::DEFAULT))
    }

    /// The whole body (presence field included), for a full decode.
    #[inline]
    pub fn reader(&self) -> Reader<'a> {
        self.values.at(self.start)
    }

    /// Finds the value of field `tag`: its class and a reader positioned at
    /// it, or `None` when the field is absent (its default applies).
    #[inline]
    pub fn locate(&self, tag: u32) -> Result<Option<(Class, Reader<'a>)>, DecodeError> {
        Ok(match self.find(tag)? {
            0 => None,
            found => Some(self.value(found)),
        })
    }

    /// Finds the value of field `tag` and returns it packed in one word (so
    /// that the common path stays in registers): its offset times 4 plus its
    /// class, or 0 when the field is absent. [`LazyBody::value`] unpacks it.
    #[inline(always)]
    pub fn find(&self, tag: u32) -> Result<u64, DecodeError> {
        if self.long {
            return self.find_long(tag);
        }
        if tag == 0 || tag > 32 {
            return Ok(0);
        }
        let shift = 2 * (tag - 1);
        let class = (self.bits >> shift) & 3;
        if class == 0 {
            return Ok(0);
        }
        let (from, mut pos) = match self.cursor.get() {
            // Reading in tag order: the last read ended at this field.
            (t, pos) if t == tag => return Ok(((pos as u64) << 2) | class),
            (t, pos) if t < tag => (t, pos),
            _ => (1, self.values.position()),
        };
        // Skip the values of the present tags in `from..tag`.
        let below = (1u64 << shift) - 1;
        let rest = self.bits & below & !((1u64 << (2 * (from - 1))) - 1);
        if rest != 0 {
            pos = self.skip_to(pos, rest)?;
            self.cursor.set((tag, pos));
        }
        Ok(((pos as u64) << 2) | class)
    }

    /// The fast path of an accessor: the value of field `tag` when it is the
    /// next field in tag order (where the last read ended) and has `class`,
    /// read by `read`; its default when it is absent. `None` in every other
    /// case, error included: the caller then takes the general path
    /// ([`LazyBody::find`]), which locates the field wherever it is and
    /// reports the error.
    #[inline(always)]
    pub fn next_value<V: Default>(
        &self,
        tag: u32,
        class: Class,
        read: impl FnOnce(&mut Reader<'a>) -> Result<V, DecodeError>,
    ) -> Option<V> {
        if tag == 0 || tag > 32 {
            return None;
        }
        let found = (self.bits >> (2 * (tag - 1))) & 3;
        let (next, pos) = self.cursor.get();
        if found == 0 {
            // With tags above 32, `bits` is not used: take the general path.
            if self.long {
                return None;
            }
            if next == tag {
                self.cursor.set((tag + 1, pos));
            }
            return Some(V::default());
        }
        if next != tag || found != class as u64 {
            return None;
        }
        let mut r = self.values.at(pos);
        let v = read(&mut r).ok()?;
        self.cursor.set((tag + 1, r.position()));
        Some(v)
    }

    /// Skips the values of the tags whose classes are in `rest`, from `pos`.
    #[inline(never)]
    fn skip_to(&self, pos: usize, mut rest: u64) -> Result<usize, DecodeError> {
        let mut r = self.values.at(pos);
        while rest != 0 {
            let group = rest.trailing_zeros() / 2;
            r.skip(Class::from_bits((rest >> (2 * group)) as u8))?;
            rest &= !(3u64 << (2 * group));
        }
        Ok(r.position())
    }

    /// The class of a value [`LazyBody::find`] found, and a reader at it.
    #[inline(always)]
    pub fn value(&self, found: u64) -> (Class, Reader<'a>) {
        (
            Class::from_bits((found & 3) as u8),
            self.values.at((found >> 2) as usize),
        )
    }

    /// Records that the value of field `tag` ends at `pos` (where the reader
    /// [`LazyBody::locate`] gave ended after reading it), so that the next
    /// lookup of a later field starts there instead of skipping it again.
    #[inline]
    pub fn advance(&self, tag: u32, pos: usize) {
        self.cursor.set((tag + 1, pos));
    }

    /// [`LazyBody::find`] for a presence field with tags above 32: reads
    /// the presence field again and walks from the first value.
    #[cold]
    fn find_long(&self, tag: u32) -> Result<u64, DecodeError> {
        let mut r = self.reader();
        let presence = r.presence()?;
        for (t, class) in presence {
            if t == tag {
                return Ok(((r.position() as u64) << 2) | class as u64);
            }
            if t > tag {
                break;
            }
            r.skip(class)?;
        }
        Ok(0)
    }
}

/// What generated lazy views implement: made from a [`LazyBody`].
pub trait LazyMessage<'a>: Sized + Default + fmt::Debug {
    /// The view of `body`.
    fn from_body(body: LazyBody<'a>) -> Self;
}

/// A message type with a generated lazy view.
pub trait LazyViewable: crate::Message {
    /// The lazy view type, borrowing from a buffer with lifetime `'a`.
    type Lazy<'a>: LazyMessage<'a>;

    /// A lazy view over the frame-payload form: reads the presence field only.
    fn lazy(buf: &[u8]) -> Result<Self::Lazy<'_>, DecodeError> {
        LazyBody::new(buf).map(<Self::Lazy<'_> as LazyMessage<'_>>::from_body)
    }
}

/// A list of messages read lazily: the iterator reads each element's length
/// and presence field as it reaches it, and stops after the first error.
pub struct LazyList<'a, M> {
    content: Reader<'a>,
    _t: PhantomData<M>,
}

/// `Clone`, `Default` (the empty list: an absent field) and `Debug` (the
/// length of its bytes) for a lazy list type: its content and a marker.
macro_rules! lazy_list_impls {
    ($name:ident) => {
        impl<T> Clone for $name<'_, T> {
            fn clone(&self) -> Self {
                $name {
                    content: self.content,
                    _t: PhantomData,
                }
            }
        }

        impl<T> Default for $name<'_, T> {
            fn default() -> Self {
                $name {
                    content: Reader::empty(),
                    _t: PhantomData,
                }
            }
        }

        impl<T> fmt::Debug for $name<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("bytes", &self.content.remaining())
                    .finish()
            }
        }
    };
}

lazy_list_impls!(LazyList);

impl<'a, M: LazyMessage<'a>> LazyList<'a, M> {
    /// A list over `content`, the bytes inside the list's length.
    pub fn new(content: Reader<'a>) -> Self {
        LazyList {
            content,
            _t: PhantomData,
        }
    }

    /// Whether the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }
}

impl<'a, M: LazyMessage<'a>> Iterator for LazyList<'a, M> {
    type Item = Result<M, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        next_until_error(&mut self.content, |c| {
            c.delimited().and_then(LazyBody::read).map(M::from_body)
        })
    }
}

/// A list of values other than messages (numbers, strings, enums, unions,
/// lists...) read lazily: nothing is checked when it is made but the
/// length of fixed-width elements; the iterator decodes and checks each
/// element as it reaches it, so that the list is walked once. It stops
/// after the first error.
///
/// [`LazyValues::to_view`] validates the whole list into the [`ListView`]
/// a validated view returns (with its length and random access).
pub struct LazyValues<'a, T> {
    content: Reader<'a>,
    _t: PhantomData<fn() -> T>,
}

lazy_list_impls!(LazyValues);

impl<'a, T: WireView<'a>> LazyValues<'a, T> {
    /// A list over `content`, the bytes inside the list's length (`at`, where
    /// the length starts, is for errors): fails only when fixed-width
    /// elements do not fill it exactly.
    #[inline]
    pub fn new(content: Reader<'a>, at: usize) -> Result<Self, DecodeError> {
        if let Some(width) = T::ELEM_WIDTH
            && !content.remaining().is_multiple_of(width)
        {
            return Err(DecodeError::RaggedList {
                at,
                len: content.remaining(),
                width,
            });
        }
        Ok(LazyValues {
            content,
            _t: PhantomData,
        })
    }

    /// Whether the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// The encoded elements, unchecked: for lists of `u8`, `i8`, `bool`,
    /// `f32` and `f64`, the little-endian values back to back.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.content.rest()
    }

    /// Validates every element: the list as a validated view.
    pub fn to_view(&self) -> Result<ListView<'a, T>, DecodeError> {
        ListView::from_content(self.content, self.content.position())
    }
}

impl<'a, T: WireView<'a>> Iterator for LazyValues<'a, T> {
    type Item = Result<T::View, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        next_until_error(&mut self.content, T::view_elem)
    }
}

/// A map read lazily: the iterator decodes each entry and checks that its
/// key is above the one before as it goes, so that the map is walked once.
/// It stops after the first error. [`LazyMap::to_view`] validates the whole
/// map into the [`MapView`] a validated view returns.
pub struct LazyMap<'a, K: WireView<'a>, V> {
    content: Reader<'a>,
    last: Option<K::View>,
    _v: PhantomData<fn() -> V>,
}

impl<'a, K: WireView<'a>, V> Clone for LazyMap<'a, K, V> {
    fn clone(&self) -> Self {
        LazyMap {
            content: self.content,
            last: self.last,
            _v: PhantomData,
        }
    }
}

impl<'a, K: WireView<'a>, V> Default for LazyMap<'a, K, V> {
    /// The empty map (an absent field).
    fn default() -> Self {
        LazyMap {
            content: Reader::empty(),
            last: None,
            _v: PhantomData,
        }
    }
}

impl<'a, K: WireView<'a>, V> fmt::Debug for LazyMap<'a, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyMap")
            .field("bytes", &self.content.remaining())
            .finish()
    }
}

impl<'a, K: WireView<'a>, V: WireView<'a>> LazyMap<'a, K, V>
where
    K::View: PartialOrd,
{
    /// A map over `content`, the bytes inside the map's length.
    #[inline]
    pub fn new(content: Reader<'a>) -> Self {
        LazyMap {
            content,
            last: None,
            _v: PhantomData,
        }
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// Validates every entry: the map as a validated view.
    pub fn to_view(&self) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::from_content(self.content)
    }
}

impl<'a, K: WireView<'a>, V: WireView<'a>> Iterator for LazyMap<'a, K, V>
where
    K::View: PartialOrd,
{
    type Item = Result<(K::View, V::View), DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let last = &mut self.last;
        next_until_error(&mut self.content, |c| {
            let at = c.position();
            let k = K::view_elem(c)?;
            if last.is_some_and(|l| l >= k) {
                return Err(DecodeError::MapKeyOrder { at });
            }
            *last = Some(k);
            Ok((k, V::view_elem(c)?))
        })
    }
}

/// The next item of a lazy list or map read from `content` by `read`, or
/// `None` at its end. After an error the rest is dropped: nothing after a
/// malformed element can be trusted.
#[inline(always)]
fn next_until_error<'a, T>(
    content: &mut Reader<'a>,
    read: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Option<Result<T, DecodeError>> {
    if content.is_empty() {
        return None;
    }
    let item = read(content);
    if item.is_err() {
        *content = Reader::empty();
    }
    Some(item)
}

/// Reads a lazy list of values other than messages in the field form.
#[inline]
pub fn values_field<'a, T: WireView<'a>>(
    r: &mut Reader<'a>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<LazyValues<'a, T>, DecodeError> {
    expect_delimited(r, class, tag, message, field)?;
    let at = r.position();
    r.delimited()
        .and_then(|c| LazyValues::new(c, at))
        .map_err(|e| e.in_field(message, field))
}

/// Reads a lazy map in the field form.
#[inline]
pub fn map_field<'a, K: WireView<'a>, V: WireView<'a>>(
    r: &mut Reader<'a>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<LazyMap<'a, K, V>, DecodeError>
where
    K::View: PartialOrd,
{
    expect_delimited(r, class, tag, message, field)?;
    r.delimited()
        .map(LazyMap::new)
        .map_err(|e| e.in_field(message, field))
}

/// What a list or map field's lazy accessor returns, from the field's owned
/// type: how derived types name [`LazyValues`] and [`LazyMap`].
pub trait LazyContainer<'a> {
    /// The lazy form.
    type Lazy: Default + fmt::Debug;
    /// Reads it in the field form.
    fn lazy_field(
        r: &mut Reader<'a>,
        class: Class,
        tag: u32,
        message: &'static str,
        field: &'static str,
    ) -> Result<Self::Lazy, DecodeError>;
}

impl<'a, T: WireView<'a>> LazyContainer<'a> for alloc::vec::Vec<T> {
    type Lazy = LazyValues<'a, T>;
    #[inline(always)]
    fn lazy_field(
        r: &mut Reader<'a>,
        class: Class,
        tag: u32,
        message: &'static str,
        field: &'static str,
    ) -> Result<Self::Lazy, DecodeError> {
        values_field(r, class, tag, message, field)
    }
}

impl<'a, K: WireView<'a> + Ord, V: WireView<'a>> LazyContainer<'a>
    for alloc::collections::BTreeMap<K, V>
where
    K::View: PartialOrd,
{
    type Lazy = LazyMap<'a, K, V>;
    #[inline(always)]
    fn lazy_field(
        r: &mut Reader<'a>,
        class: Class,
        tag: u32,
        message: &'static str,
        field: &'static str,
    ) -> Result<Self::Lazy, DecodeError> {
        map_field(r, class, tag, message, field)
    }
}

impl<'a, K, V, S> LazyContainer<'a> for std::collections::HashMap<K, V, S>
where
    K: WireView<'a> + Ord + core::hash::Hash,
    V: WireView<'a>,
    S: core::hash::BuildHasher + Default,
    K::View: PartialOrd,
{
    type Lazy = LazyMap<'a, K, V>;
    #[inline(always)]
    fn lazy_field(
        r: &mut Reader<'a>,
        class: Class,
        tag: u32,
        message: &'static str,
        field: &'static str,
    ) -> Result<Self::Lazy, DecodeError> {
        map_field(r, class, tag, message, field)
    }
}

/// Reads a lazy nested message in the field form (class checked, errors
/// naming the message and field).
#[inline]
pub fn message_field<'a, M: LazyMessage<'a>>(
    r: &mut Reader<'a>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<M, DecodeError> {
    expect_delimited(r, class, tag, message, field)?;
    r.delimited()
        .and_then(LazyBody::read)
        .map(M::from_body)
        .map_err(|e| e.in_field(message, field))
}

/// Reads a lazy list of messages in the field form.
#[inline]
pub fn list_field<'a, M: LazyMessage<'a>>(
    r: &mut Reader<'a>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<LazyList<'a, M>, DecodeError> {
    expect_delimited(r, class, tag, message, field)?;
    r.delimited()
        .map(LazyList::new)
        .map_err(|e| e.in_field(message, field))
}

#[inline]
fn expect_delimited(
    r: &Reader<'_>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<(), DecodeError> {
    r.expect_class(tag, class, Class::Delimited)
        .map_err(|e| e.in_field(message, field))
}
