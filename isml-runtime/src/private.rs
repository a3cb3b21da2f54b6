//! Items generated code refers to. Not a public API: names here may change
//! between versions without notice. Generated code names everything through
//! this module with absolute paths so that user items (`Result`, `Vec`, a module
//! called `core`) cannot shadow them.

pub use alloc::boxed::Box;
pub use alloc::collections::BTreeMap;
pub use alloc::string::String;
pub use alloc::vec::Vec;
pub use bytes::{BufMut, Bytes};
pub use core::clone::Clone;
pub use core::default::Default;
pub use core::fmt;
pub use core::marker::PhantomData;
pub use core::option::Option::{self, None, Some};
pub use core::result::Result::{self, Err, Ok};
pub use std::collections::HashMap;
pub use std::sync::OnceLock;

pub use crate::descriptor::{
    EnumDescriptor, FieldDescriptor, MessageDescriptor, MessageKind, Reflect, TypeRef, fingerprint,
};
pub use crate::lazy::{
    LazyBody, LazyContainer, LazyList, LazyMap, LazyMessage, LazyValues, LazyViewable,
    list_field as lazy_list_field, map_field as lazy_map_field,
    message_field as lazy_message_field, values_field as lazy_values_field,
};
pub use crate::message::{Enum, Message, TopLevel, View, Viewable};
pub use crate::view::{LazyView, ListView, MapView};
pub use crate::wire::{Class, DecodeError, EncodeError, PresenceWriter, Reader, varint, write};
pub use crate::wire_type::{ElemForm, Fit, Lens, MaxLen, RangeValue, Wire, WireView, deeper};

/// The nesting limit encoders enforce: the default decoding limit (§7).
pub const MAX_DEPTH: u32 = crate::wire::Limits::DEFAULT.max_depth;

/// Checks a `max_len` attribute on encode.
#[inline]
pub fn check_max_len_encode<T: MaxLen + ?Sized>(
    v: &T,
    max: u64,
    message: &'static str,
    field: &'static str,
) -> Result<(), EncodeError> {
    let len = v.max_len_value();
    if len as u64 > max {
        return Err(EncodeError::MaxLen {
            message,
            field,
            len,
            max,
        });
    }
    Ok(())
}

/// Checks a `range` attribute on encode.
#[inline]
pub fn check_range_encode<T: RangeValue + ?Sized>(
    v: &T,
    min: i128,
    max: i128,
    message: &'static str,
    field: &'static str,
) -> Result<(), EncodeError> {
    if !v.in_range(min, max) {
        return Err(EncodeError::Range {
            message,
            field,
            value: v.describe(),
            min,
            max,
        });
    }
    Ok(())
}

/// Checks a `max_len` attribute on decode.
#[inline]
pub fn check_max_len_decode<T: MaxLen + ?Sized>(v: &T, max: u64) -> Result<(), DecodeError> {
    let len = v.max_len_value();
    if len as u64 > max {
        return Err(DecodeError::MaxLen { len, max });
    }
    Ok(())
}

#[cold]
fn range_error(value: String, min: i128, max: i128) -> DecodeError {
    DecodeError::Range(Box::new(crate::wire::OutOfRange { value, min, max }))
}

/// Checks a `range` attribute on decode.
#[inline]
pub fn check_range_decode<T: RangeValue + ?Sized>(
    v: &T,
    min: i128,
    max: i128,
) -> Result<(), DecodeError> {
    if !v.in_range(min, max) {
        return Err(range_error(v.describe(), min, max));
    }
    Ok(())
}

/// Checks an unknown union variant held by the caller before it is
/// written (wire format §5.5): its class is not 0, its tag fits a union key
/// and is not one of the union's own (`known`, which a decoder would read
/// as that variant), and its bytes are exactly one value of its class.
/// Decoded unknown variants always pass.
#[cold]
pub fn check_unknown_variant(
    message: &'static str,
    tag: u64,
    class: Class,
    bytes: &[u8],
    known: &[u32],
) -> Result<(), EncodeError> {
    let invalid = |reason, bytes_error| EncodeError::InvalidUnknownVariant {
        message,
        tag,
        reason,
        bytes_error,
    };
    if class == Class::Absent {
        return Err(invalid(
            "class 0 (absent) is not allowed in a union key",
            None,
        ));
    }
    if tag > crate::wire::MAX_UNION_TAG {
        return Err(invalid(
            "the tag is above the largest union tag, 2^62-1",
            None,
        ));
    }
    if known.iter().any(|&k| u64::from(k) == tag) {
        return Err(invalid(
            "the union defines this tag: use its variant, which decoders would read it as",
            None,
        ));
    }
    Reader::check_value(class, bytes).map_err(|e| {
        invalid(
            match class {
                Class::Varint => "the bytes are not exactly one canonical varint (class 1)",
                Class::Fixed32 => "the bytes are not exactly 4 bytes (class 2)",
                _ => "the bytes are not exactly one length-delimited value (class 3)",
            },
            Some(e),
        )
    })
}

/// Implements [`Wire`] and [`WireView`] for a generated message type.
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_message {
    ($t:ident, $view:ident) => {
        impl $crate::__private::Wire for $t {
            const CLASS: $crate::__private::Class = $crate::__private::Class::Delimited;
            const ELEM_FORM: $crate::__private::ElemForm = $crate::__private::ElemForm::Delimited;
            const VALIDATES_ELEM: bool = true;
            #[inline]
            fn is_default(&self) -> bool {
                false
            }
            #[inline]
            fn elem_len(&self) -> usize {
                $crate::__private::write::delimited_len($crate::__private::Message::encoded_len(
                    self,
                ))
            }
            #[inline]
            fn encode_elem<B: $crate::__private::BufMut + ?Sized>(&self, buf: &mut B) {
                $crate::__private::varint::put(
                    buf,
                    $crate::__private::Message::encoded_len(self) as u64,
                );
                $crate::__private::Message::encode_raw(self, buf);
            }
            #[inline]
            fn decode_elem(
                r: &mut $crate::__private::Reader<'_>,
            ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                let mut c = r.delimited()?;
                <$t as $crate::__private::Message>::decode_reader(&mut c)
            }
            #[inline]
            fn field_len(&self) -> usize {
                $crate::__private::Wire::elem_len(self)
            }
            #[inline]
            fn encode_field<B: $crate::__private::BufMut + ?Sized>(&self, buf: &mut B) {
                $crate::__private::Wire::encode_elem(self, buf)
            }
            #[inline]
            fn decode_field(
                r: &mut $crate::__private::Reader<'_>,
            ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                <$t as $crate::__private::Wire>::decode_elem(r)
            }
            #[inline]
            fn validate_field(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<(), $crate::__private::EncodeError> {
                $crate::__private::Wire::validate_elem(self, depth_left)
            }
            fn validate_elem(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<(), $crate::__private::EncodeError> {
                $crate::__private::Message::validate_nested(
                    self,
                    $crate::__private::deeper(depth_left)?,
                )
            }
            #[inline]
            fn checked_field_len(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                $crate::__private::Wire::checked_elem_len(self, depth_left)
            }
            #[inline]
            fn checked_elem_len(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                let n = $crate::__private::Message::checked_len_nested(
                    self,
                    $crate::__private::deeper(depth_left)?,
                )?;
                $crate::__private::Ok($crate::__private::write::delimited_len(n))
            }
            #[inline]
            fn measure_field(
                &self,
                depth_left: u32,
                lens: &mut $crate::__private::Lens,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                $crate::__private::Wire::measure_elem(self, depth_left, lens)
            }
            #[inline]
            fn measure_elem(
                &self,
                depth_left: u32,
                lens: &mut $crate::__private::Lens,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                let d = $crate::__private::deeper(depth_left)?;
                let slot = lens.reserve();
                let n = $crate::__private::Message::measure_body(self, d, lens)?;
                lens.set(slot, n);
                $crate::__private::Ok($crate::__private::write::delimited_len(n))
            }
            #[inline]
            fn write_field<B: $crate::__private::BufMut + ?Sized>(
                &self,
                buf: &mut B,
                lens: &mut $crate::__private::Lens,
            ) {
                $crate::__private::Wire::write_elem(self, buf, lens)
            }
            #[inline]
            fn write_elem<B: $crate::__private::BufMut + ?Sized>(
                &self,
                buf: &mut B,
                lens: &mut $crate::__private::Lens,
            ) {
                let n = lens
                    .take()
                    .unwrap_or_else(|| $crate::__private::Message::encoded_len(self));
                $crate::__private::varint::put(buf, n as u64);
                $crate::__private::Message::write_body(self, buf, lens);
            }
            #[inline]
            fn fit_field(&self, w: &mut $crate::__private::Fit<'_>) {
                $crate::__private::Wire::fit_elem(self, w)
            }
            #[inline]
            fn fit_elem(&self, w: &mut $crate::__private::Fit<'_>) {
                let at = w.open();
                $crate::__private::Message::fit_body(self, w);
                w.close(at);
            }
        }
        impl $crate::__private::Viewable for $t {
            type View<'a> = $view<'a>;
        }
        impl<'a> $crate::__private::WireView<'a> for $t {
            type View = $view<'a>;
            #[inline]
            fn view_elem(
                r: &mut $crate::__private::Reader<'a>,
            ) -> $crate::__private::Result<$view<'a>, $crate::__private::DecodeError> {
                let mut c = r.delimited()?;
                <$view<'a> as $crate::__private::View<'a>>::view_reader(&mut c)
            }
            #[inline]
            fn view_field(
                r: &mut $crate::__private::Reader<'a>,
            ) -> $crate::__private::Result<$view<'a>, $crate::__private::DecodeError> {
                <$t as $crate::__private::WireView<'a>>::view_elem(r)
            }
            fn from_view(v: &$view<'a>) -> $t {
                $crate::__private::View::to_owned_message(v)
            }
        }
    };
}

/// Implements [`Wire`] and [`WireView`] for a generated union type, whose
/// inherent `__decode_value` / view `__view_value` read one union encoding.
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_union {
    ($t:ident, $view:ident) => {
        impl $crate::__private::Wire for $t {
            const CLASS: $crate::__private::Class = $crate::__private::Class::Delimited;
            const VALIDATES_ELEM: bool = true;
            #[inline]
            fn is_default(&self) -> bool {
                false
            }
            #[inline]
            fn elem_len(&self) -> usize {
                $crate::__private::Message::encoded_len(self)
            }
            #[inline]
            fn encode_elem<B: $crate::__private::BufMut + ?Sized>(&self, buf: &mut B) {
                $crate::__private::Message::encode_raw(self, buf);
            }
            #[inline]
            fn decode_elem(
                r: &mut $crate::__private::Reader<'_>,
            ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                r.descend(<$t>::__decode_value)
            }
            #[inline]
            fn field_len(&self) -> usize {
                $crate::__private::write::delimited_len($crate::__private::Message::encoded_len(
                    self,
                ))
            }
            #[inline]
            fn encode_field<B: $crate::__private::BufMut + ?Sized>(&self, buf: &mut B) {
                $crate::__private::varint::put(
                    buf,
                    $crate::__private::Message::encoded_len(self) as u64,
                );
                $crate::__private::Message::encode_raw(self, buf);
            }
            #[inline]
            fn decode_field(
                r: &mut $crate::__private::Reader<'_>,
            ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                let mut c = r.delimited()?;
                <$t as $crate::__private::Message>::decode_reader(&mut c)
            }
            #[inline]
            fn validate_field(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<(), $crate::__private::EncodeError> {
                $crate::__private::Wire::validate_elem(self, depth_left)
            }
            fn validate_elem(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<(), $crate::__private::EncodeError> {
                $crate::__private::Message::validate_nested(
                    self,
                    $crate::__private::deeper(depth_left)?,
                )
            }
            #[inline]
            fn checked_field_len(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                let n = $crate::__private::Message::checked_len_nested(
                    self,
                    $crate::__private::deeper(depth_left)?,
                )?;
                $crate::__private::Ok($crate::__private::write::delimited_len(n))
            }
            #[inline]
            fn checked_elem_len(
                &self,
                depth_left: u32,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                $crate::__private::Message::checked_len_nested(
                    self,
                    $crate::__private::deeper(depth_left)?,
                )
            }
            #[inline]
            fn measure_field(
                &self,
                depth_left: u32,
                lens: &mut $crate::__private::Lens,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                let d = $crate::__private::deeper(depth_left)?;
                let slot = lens.reserve();
                let n = $crate::__private::Message::measure_body(self, d, lens)?;
                lens.set(slot, n);
                $crate::__private::Ok($crate::__private::write::delimited_len(n))
            }
            #[inline]
            fn measure_elem(
                &self,
                depth_left: u32,
                lens: &mut $crate::__private::Lens,
            ) -> $crate::__private::Result<usize, $crate::__private::EncodeError> {
                $crate::__private::Message::measure_body(
                    self,
                    $crate::__private::deeper(depth_left)?,
                    lens,
                )
            }
            #[inline]
            fn write_field<B: $crate::__private::BufMut + ?Sized>(
                &self,
                buf: &mut B,
                lens: &mut $crate::__private::Lens,
            ) {
                let n = lens
                    .take()
                    .unwrap_or_else(|| $crate::__private::Message::encoded_len(self));
                $crate::__private::varint::put(buf, n as u64);
                $crate::__private::Message::write_body(self, buf, lens);
            }
            #[inline]
            fn write_elem<B: $crate::__private::BufMut + ?Sized>(
                &self,
                buf: &mut B,
                lens: &mut $crate::__private::Lens,
            ) {
                $crate::__private::Message::write_body(self, buf, lens);
            }
        }
        impl $crate::__private::Viewable for $t {
            type View<'a> = $view<'a>;
        }
        impl<'a> $crate::__private::WireView<'a> for $t {
            type View = $view<'a>;
            #[inline]
            fn view_elem(
                r: &mut $crate::__private::Reader<'a>,
            ) -> $crate::__private::Result<$view<'a>, $crate::__private::DecodeError> {
                r.descend(<$view<'a>>::__view_value)
            }
            #[inline]
            fn view_field(
                r: &mut $crate::__private::Reader<'a>,
            ) -> $crate::__private::Result<$view<'a>, $crate::__private::DecodeError> {
                let mut c = r.delimited()?;
                <$view<'a> as $crate::__private::View<'a>>::view_reader(&mut c)
            }
            fn from_view(v: &$view<'a>) -> $t {
                $crate::__private::View::to_owned_message(v)
            }
        }
    };
}

/// Implements [`Wire`] and [`WireView`] for a generated enum (which implements [`Enum`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_enum {
    ($t:ident) => {
        impl $crate::__private::Wire for $t {
            const CLASS: $crate::__private::Class = $crate::__private::Class::Varint;
            const ELEM_FORM: $crate::__private::ElemForm = $crate::__private::ElemForm::Varint;
            #[inline(always)]
            fn is_default(&self) -> bool {
                $crate::__private::Enum::to_u32(*self) == 0
            }
            #[inline(always)]
            fn elem_len(&self) -> usize {
                $crate::__private::varint::len($crate::__private::Enum::to_u32(*self) as u64)
            }
            #[inline(always)]
            fn encode_elem<B: $crate::__private::BufMut + ?Sized>(&self, buf: &mut B) {
                $crate::__private::varint::put(buf, $crate::__private::Enum::to_u32(*self) as u64);
            }
            #[inline(always)]
            fn decode_elem(
                r: &mut $crate::__private::Reader<'_>,
            ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                r.u32().map(<$t as $crate::__private::Enum>::from_u32)
            }
            #[inline(always)]
            fn field_len(&self) -> usize {
                $crate::__private::Wire::elem_len(self)
            }
            #[inline(always)]
            fn encode_field<B: $crate::__private::BufMut + ?Sized>(&self, buf: &mut B) {
                $crate::__private::Wire::encode_elem(self, buf)
            }
            #[inline(always)]
            fn decode_field(
                r: &mut $crate::__private::Reader<'_>,
            ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                <$t as $crate::__private::Wire>::decode_elem(r)
            }
        }
        impl<'a> $crate::__private::WireView<'a> for $t {
            type View = $t;
            #[inline(always)]
            fn view_elem(
                r: &mut $crate::__private::Reader<'a>,
            ) -> $crate::__private::Result<$t, $crate::__private::DecodeError> {
                <$t as $crate::__private::Wire>::decode_elem(r)
            }
            #[inline(always)]
            fn view_field(
                r: &mut $crate::__private::Reader<'a>,
            ) -> $crate::__private::Result<$t, $crate::__private::DecodeError> {
                <$t as $crate::__private::Wire>::decode_elem(r)
            }
            fn from_view(v: &$t) -> $t {
                *v
            }
        }
    };
}

/// Reads a known field (or union variant) of type `T`, checking its wire class
/// and naming the message and field in any error.
#[inline(always)]
pub fn decode_field<T: Wire>(
    r: &mut Reader<'_>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<T, DecodeError> {
    if class != T::CLASS {
        return Err(class_mismatch(r, class, tag, T::CLASS, message, field));
    }
    T::decode_field(r).map_err(|e| e.in_field(message, field))
}

/// Like [`decode_field`], reading a view.
#[inline(always)]
pub fn view_field<'a, T: WireView<'a>>(
    r: &mut Reader<'a>,
    class: Class,
    tag: u32,
    message: &'static str,
    field: &'static str,
) -> Result<T::View, DecodeError> {
    if class != T::CLASS {
        return Err(class_mismatch(r, class, tag, T::CLASS, message, field));
    }
    T::view_field(r).map_err(|e| e.in_field(message, field))
}

#[cold]
fn class_mismatch(
    r: &Reader<'_>,
    found: Class,
    tag: u32,
    expected: Class,
    message: &'static str,
    field: &'static str,
) -> DecodeError {
    DecodeError::ClassMismatch {
        at: r.position(),
        tag,
        expected: expected as u8,
        found: found as u8,
    }
    .in_field(message, field)
}

/// What a failed `#[derive(Message)]` or `#[derive(Union)]` expands to besides
/// its errors: impls of every trait the derive would have implemented, so
/// that code using the type reports no follow-up errors. Never runs: the
/// crate does not compile.
#[doc(hidden)]
#[macro_export]
macro_rules! __fallback_message {
    ($t:ident, $view:ident, $vis:vis, default = $default:tt, top_level = $top:tt) => {
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        $vis struct $view<'a>($crate::__private::PhantomData<&'a ()>);

        const _: () = {
            #[automatically_derived]
            impl $crate::__private::Message for $t {
                const NAME: &'static str = "";
                fn encoded_len(&self) -> usize {
                    ::core::unreachable!()
                }
                fn validate(&self) -> $crate::__private::Result<(), $crate::__private::EncodeError> {
                    ::core::unreachable!()
                }
                fn encode_raw<B: $crate::__private::BufMut + ?Sized>(&self, _: &mut B) {
                    ::core::unreachable!()
                }
                fn decode_reader(
                    _: &mut $crate::__private::Reader<'_>,
                ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                    ::core::unreachable!()
                }
            }
            #[automatically_derived]
            impl<'a> $crate::__private::View<'a> for $view<'a> {
                type Owned = $t;
                fn view_reader(
                    _: &mut $crate::__private::Reader<'a>,
                ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                    ::core::unreachable!()
                }
                fn to_owned_message(&self) -> $t {
                    ::core::unreachable!()
                }
            }
            #[automatically_derived]
            impl $crate::__private::Reflect for $t {
                const TYPE_REF: $crate::__private::TypeRef = $crate::__private::TypeRef::Bool;
            }
            #[automatically_derived]
            impl $crate::__private::Wire for $t {
                const CLASS: $crate::__private::Class = $crate::__private::Class::Delimited;
                fn is_default(&self) -> bool {
                    ::core::unreachable!()
                }
                fn elem_len(&self) -> usize {
                    ::core::unreachable!()
                }
                fn encode_elem<B: $crate::__private::BufMut + ?Sized>(&self, _: &mut B) {
                    ::core::unreachable!()
                }
                fn decode_elem(
                    _: &mut $crate::__private::Reader<'_>,
                ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                    ::core::unreachable!()
                }
                fn field_len(&self) -> usize {
                    ::core::unreachable!()
                }
                fn encode_field<B: $crate::__private::BufMut + ?Sized>(&self, _: &mut B) {
                    ::core::unreachable!()
                }
                fn decode_field(
                    _: &mut $crate::__private::Reader<'_>,
                ) -> $crate::__private::Result<Self, $crate::__private::DecodeError> {
                    ::core::unreachable!()
                }
            }
            #[automatically_derived]
            impl $crate::__private::Viewable for $t {
                type View<'a> = $view<'a>;
            }
            #[automatically_derived]
            impl<'a> $crate::__private::WireView<'a> for $t {
                type View = $view<'a>;
                fn view_elem(
                    _: &mut $crate::__private::Reader<'a>,
                ) -> $crate::__private::Result<$view<'a>, $crate::__private::DecodeError> {
                    ::core::unreachable!()
                }
                fn view_field(
                    _: &mut $crate::__private::Reader<'a>,
                ) -> $crate::__private::Result<$view<'a>, $crate::__private::DecodeError> {
                    ::core::unreachable!()
                }
                fn from_view(_: &$view<'a>) -> $t {
                    ::core::unreachable!()
                }
            }
            $crate::__fallback_message!(@default $t, $default);
            $crate::__fallback_message!(@top $t, $top);
        };
    };
    (@default $t:ident, true) => {
        #[automatically_derived]
        impl $crate::__private::Default for $t {
            fn default() -> Self {
                ::core::unreachable!()
            }
        }
    };
    (@default $t:ident, false) => {};
    (@top $t:ident, true) => {
        #[automatically_derived]
        impl $crate::__private::TopLevel for $t {
            const TYPE_ID: u32 = 0;
            fn fingerprint() -> u64 {
                ::core::unreachable!()
            }
            fn descriptor() -> &'static $crate::__private::MessageDescriptor {
                ::core::unreachable!()
            }
        }
    };
    (@top $t:ident, false) => {};
}

/// What a failed `#[derive(Enum)]` expands to besides its errors (see
/// [`__fallback_message!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __fallback_enum {
    ($t:ident) => {
        const _: () = {
            #[automatically_derived]
            impl $crate::__private::Enum for $t {
                const NAME: &'static str = "";
                fn to_u32(self) -> u32 {
                    ::core::unreachable!()
                }
                fn from_u32(_: u32) -> Self {
                    ::core::unreachable!()
                }
            }
            #[automatically_derived]
            impl $crate::__private::Default for $t {
                fn default() -> Self {
                    ::core::unreachable!()
                }
            }
            #[automatically_derived]
            impl $crate::__private::Reflect for $t {
                const TYPE_REF: $crate::__private::TypeRef = $crate::__private::TypeRef::U32;
            }
            $crate::__wire_enum!($t);
        };
    };
}

/// What generated services and clients name (`docs/rpc.md`).
#[cfg(feature = "runtime")]
pub mod rpc {
    pub use crate::rpc::{
        Call, CallError, ClientStreaming, Conn, MessageRef, MethodDescriptor, MethodKind, Reply,
        Request, Service, ServiceDescriptor, Sink, Status, Streaming,
    };

    /// A boxed future, as [`Service::call`] returns.
    pub type BoxFuture<'a, T> =
        core::pin::Pin<std::boxed::Box<dyn core::future::Future<Output = T> + Send + 'a>>;
}
