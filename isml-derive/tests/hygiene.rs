//! Derived code compiles where the user's scope shadows every name it could
//! trip on: `Result`, `Option`, `Vec`, `String`, `Box`, `Default`, `core`,
//! `std`, `isml_runtime` and `bytes` are all local items here.

#![allow(dead_code, non_camel_case_types, unreachable_pub)]

mod shadowed {
    // Shadow the prelude and the crates the expansion names.
    pub struct Result;
    pub struct Option;
    pub struct Vec;
    pub struct String;
    pub struct Box;
    pub struct Some;
    pub struct None;
    pub struct Ok;
    pub struct Err;
    pub trait Default {}
    pub trait Clone {}
    pub trait Debug {}
    pub mod core {}
    pub mod std {}
    pub mod isml_runtime {}
    pub mod bytes {}
    pub mod alloc {}
    pub struct PhantomData;
    pub struct OnceLock;

    /// A colour.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::marker::Copy,
        ::core::cmp::PartialEq,
        ::isml_runtime::Enum,
    )]
    #[repr(u32)]
    pub enum Color {
        Red = 0,
        Green = 1,
        #[isml(unknown)]
        Unknown(u32),
    }

    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        ::core::default::Default,
        ::isml_runtime::Message,
    )]
    #[isml(id = 1, package = "hygiene")]
    pub struct Reading {
        #[isml(tag = 1)]
        pub name: ::std::string::String,
        #[isml(tag = 2, max_len = 4)]
        pub values: ::std::vec::Vec<u32>,
        #[isml(tag = 3)]
        pub maybe: ::core::option::Option<::std::boxed::Box<Reading>>,
        #[isml(tag = 4)]
        pub color: Color,
        #[isml(tag = 5)]
        pub raw: ::std::vec::Vec<u8>,
        #[isml(tag = 6)]
        pub small: [u16; 8],
        #[isml(tag = 7)]
        pub choice: Choice,
    }

    #[derive(
        ::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, ::isml_runtime::Union,
    )]
    #[isml(id = 2, package = "hygiene")]
    pub enum Choice {
        #[isml(tag = 1)]
        Text(::std::string::String),
        #[isml(tag = 2)]
        Number(i64),
        #[isml(unknown)]
        Unknown {
            tag: u64,
            class: ::isml_runtime::wire::Class,
            bytes: ::bytes::Bytes,
        },
    }
}

use ::isml_runtime::{Message as _, View as _, Viewable as _};

#[test]
fn derived_code_ignores_shadowed_names() {
    let r = shadowed::Reading {
        name: "a".into(),
        values: vec![1, 2],
        maybe: Some(Box::new(shadowed::Reading::default())),
        color: shadowed::Color::Green,
        raw: vec![9],
        small: [7; 8],
        choice: shadowed::Choice::Number(-3),
    };
    let bytes = r.encode_to_vec().unwrap();
    assert_eq!(shadowed::Reading::decode_slice(&bytes).unwrap(), r);
    let view = shadowed::Reading::view(&bytes).unwrap();
    assert_eq!(view.name(), "a");
    assert_eq!(view.to_owned_message(), r);
    assert_ne!(
        <shadowed::Reading as ::isml_runtime::TopLevel>::fingerprint(),
        0
    );
}
