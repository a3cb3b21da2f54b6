//! Lazy views: every accessor reads what the owned decode reads; views are
//! made without reading the values; malformed bytes give errors, never
//! panics; whatever the validated view accepts, every lazy accessor accepts.

mod strategies;

use std::fmt::Debug;

use isml_codegen_tests::alltypes::{
    Containers, ContainersLazy, Limited, LimitedLazy, Node, NodeLazy, Scalars, ScalarsLazy,
};
use isml_runtime::__private::WireView;
use isml_runtime::wire::{Class, DecodeError, PresenceWriter, write};
use isml_runtime::{LazyViewable, Message, Viewable};
use proptest::prelude::*;
use strategies::{containers, node, scalars};

/// A view converted back to the owned type equals `owned`.
fn same<'a, T: WireView<'a> + PartialEq + Debug>(view: T::View, owned: &T) {
    assert_eq!(&T::from_view(&view), owned);
}

fn check_scalars(l: &ScalarsLazy<'_>, m: &Scalars) {
    assert_eq!(l.b().unwrap(), m.b);
    assert_eq!(l.u8().unwrap(), m.u8);
    assert_eq!(l.u16().unwrap(), m.u16);
    assert_eq!(l.u32().unwrap(), m.u32);
    assert_eq!(l.u64().unwrap(), m.u64);
    assert_eq!(l.i8().unwrap(), m.i8);
    assert_eq!(l.i16().unwrap(), m.i16);
    assert_eq!(l.i32().unwrap(), m.i32);
    assert_eq!(l.i64().unwrap(), m.i64);
    assert_eq!(l.f32().unwrap().to_bits(), m.f32.to_bits());
    assert_eq!(l.f64().unwrap().to_bits(), m.f64.to_bits());
    assert_eq!(l.s().unwrap(), m.s);
    assert_eq!(l.raw().unwrap(), &m.raw[..]);
    assert_eq!(l.c().unwrap(), m.c);
}

fn check_containers(l: &ContainersLazy<'_>, m: &Containers) {
    same(l.opt_u32().unwrap(), &m.opt_u32);
    same(l.opt_str().unwrap(), &m.opt_str);
    same(l.list_u8().unwrap(), &m.list_u8);
    same(l.list_u32().unwrap(), &m.list_u32);
    same(l.list_i64().unwrap(), &m.list_i64);
    let f32s: Vec<u32> = l.list_f32().unwrap().iter().map(f32::to_bits).collect();
    assert_eq!(
        f32s,
        m.list_f32.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let f64s: Vec<u64> = l.list_f64().unwrap().iter().map(f64::to_bits).collect();
    assert_eq!(
        f64s,
        m.list_f64.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    same(l.list_str().unwrap(), &m.list_str);
    same(l.list_bool().unwrap(), &m.list_bool);
    same(l.nested().unwrap(), &m.nested);
    same(l.by_name().unwrap(), &m.by_name);
    same(l.by_id().unwrap(), &m.by_id);
    same(l.flags().unwrap(), &m.flags);
    same(l.mac().unwrap(), &m.mac);
    same(l.big().unwrap(), &m.big);
    same(l.names().unwrap(), &m.names);
    same(l.opt_list().unwrap(), &m.opt_list);
    same(l.colors().unwrap(), &m.colors);
    // Messages come back as lazy views themselves.
    check_scalars(&l.scalars().unwrap(), &m.scalars);
    match (l.maybe().unwrap(), &m.maybe) {
        (Some(a), Some(b)) => check_scalars(&a, b),
        (None, None) => {}
        (a, b) => panic!("maybe: {a:?} vs {b:?}"),
    }
    let many: Vec<ScalarsLazy<'_>> = l.many().unwrap().map(Result::unwrap).collect();
    assert_eq!(many.len(), m.many.len());
    for (a, b) in many.iter().zip(&m.many) {
        check_scalars(a, b);
    }
    // Unions and everything else: the validated view of that field.
    assert_eq!(l.choice().unwrap().to_owned(), m.choice);
    same(l.choices().unwrap(), &m.choices);
    same(l.by_u64().unwrap(), &m.by_u64);
}

fn check_node(l: &NodeLazy<'_>, m: &Node) {
    assert_eq!(l.value().unwrap(), m.value);
    for (a, b) in [(l.left().unwrap(), &m.left), (l.right().unwrap(), &m.right)] {
        match (a, b) {
            (Some(a), Some(b)) => check_node(&a, b),
            (None, None) => {}
            (a, b) => panic!("child: {a:?} vs {b:?}"),
        }
    }
    let children: Vec<NodeLazy<'_>> = l.children().unwrap().map(Result::unwrap).collect();
    assert_eq!(children.len(), m.children.len());
    for (a, b) in children.iter().zip(&m.children) {
        check_node(a, b);
    }
    assert_eq!(l.label().unwrap(), m.label.as_deref());
}

/// Calls every accessor of a lazy `Containers`, following nested messages:
/// the first error, if any.
fn walk_containers(l: &ContainersLazy<'_>) -> Result<(), DecodeError> {
    l.opt_u32()?;
    l.opt_str()?;
    l.list_u8()?;
    l.list_u32()?;
    l.list_i64()?;
    l.list_f32()?;
    l.list_f64()?;
    l.list_str()?;
    l.list_bool()?;
    l.nested()?;
    l.by_name()?;
    l.by_id()?;
    l.flags()?;
    l.mac()?;
    l.big()?;
    l.names()?;
    l.opt_list()?;
    l.colors()?;
    walk_scalars(&l.scalars()?)?;
    if let Some(s) = l.maybe()? {
        walk_scalars(&s)?;
    }
    for s in l.many()? {
        walk_scalars(&s?)?;
    }
    l.choice()?;
    l.choices()?;
    l.by_u64()?;
    Ok(())
}

fn walk_scalars(l: &ScalarsLazy<'_>) -> Result<(), DecodeError> {
    // Backwards, so that lookups restart from the first value.
    l.c()?;
    l.raw()?;
    l.s()?;
    l.f64()?;
    l.f32()?;
    l.i64()?;
    l.i32()?;
    l.i16()?;
    l.i8()?;
    l.u64()?;
    l.u32()?;
    l.u16()?;
    l.u8()?;
    l.b()?;
    Ok(())
}

fn walk_node(l: &NodeLazy<'_>) -> Result<(), DecodeError> {
    l.value()?;
    if let Some(x) = l.left()? {
        walk_node(&x)?;
    }
    if let Some(x) = l.right()? {
        walk_node(&x)?;
    }
    for c in l.children()? {
        walk_node(&c?)?;
    }
    l.label()?;
    Ok(())
}

/// One edit of a valid encoding: flip, replace, insert or delete a byte.
fn mutate(bytes: &[u8], at: usize, op: u8, value: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return vec![value];
    }
    let i = at % out.len();
    match op % 4 {
        0 => out[i] ^= 1 << (value % 8),
        1 => out[i] = value,
        2 => out.insert(i, value),
        _ => {
            out.remove(i);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn lazy_accessors_read_what_was_encoded(m in containers()) {
        let bytes = m.encode_to_vec().unwrap();
        let l = Containers::lazy(&bytes).unwrap();
        check_containers(&l, &m);
        // Reading again, in any order, gives the same values.
        check_containers(&l, &m);
        prop_assert_eq!(l.to_owned_message().unwrap(), m.clone());
        prop_assert_eq!(l.to_view().unwrap().to_owned(), m);
    }

    #[test]
    fn lazy_scalars_in_any_order(m in scalars()) {
        let bytes = m.encode_to_vec().unwrap();
        let l = ScalarsLazy::new(&bytes).unwrap();
        walk_scalars(&l).unwrap();
        check_scalars(&l, &m);
    }

    #[test]
    fn lazy_recursive_messages(m in node()) {
        let bytes = m.encode_to_vec().unwrap();
        check_node(&Node::lazy(&bytes).unwrap(), &m);
    }

    /// Random bytes: errors, never panics; and anything the validated view
    /// accepts, the lazy accessors accept too.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(l) = ContainersLazy::new(&bytes) {
            let walked = walk_containers(&l);
            if Containers::view(&bytes).is_ok() {
                prop_assert!(walked.is_ok(), "{:?}", walked);
            }
        }
        if let Ok(l) = NodeLazy::new(&bytes) {
            let walked = walk_node(&l);
            if Node::view(&bytes).is_ok() {
                prop_assert!(walked.is_ok(), "{:?}", walked);
            }
        }
    }

    /// Valid encodings with one byte edited.
    #[test]
    fn mutated_encodings_never_panic(
        c in containers(),
        n in node(),
        at in any::<usize>(),
        op in any::<u8>(),
        value in any::<u8>(),
    ) {
        let bytes = mutate(&c.encode_to_vec().unwrap(), at, op, value);
        if let Ok(l) = ContainersLazy::new(&bytes) {
            let walked = walk_containers(&l);
            if let Ok(m) = Containers::decode_slice(&bytes) {
                prop_assert!(walked.is_ok(), "{:?}", walked);
                check_containers(&l, &m);
            }
        }
        let bytes = mutate(&n.encode_to_vec().unwrap(), at, op, value);
        if let Ok(l) = NodeLazy::new(&bytes) {
            let walked = walk_node(&l);
            if let Ok(m) = Node::decode_slice(&bytes) {
                prop_assert!(walked.is_ok(), "{:?}", walked);
                check_node(&l, &m);
            }
        }
    }
}

#[test]
fn a_lazy_view_reads_only_the_presence_field_when_made() {
    // Tag 12 (`s`) present as a string whose length runs past the end.
    let mut p = PresenceWriter::<4>::new();
    p.set(12, Class::Delimited);
    let mut bytes = Vec::new();
    p.encode(&mut bytes);
    bytes.push(50);
    let l = ScalarsLazy::new(&bytes).expect("made without reading values");
    assert_eq!(l.u8().unwrap(), 0, "absent fields read their default");
    assert!(matches!(
        l.s().unwrap_err().root(),
        DecodeError::LengthOutOfBounds { len: 50, .. }
    ));
    assert!(
        Scalars::view(&bytes).is_err(),
        "the validated view checks up front"
    );
    // Without even a presence field there is nothing to view.
    assert!(ScalarsLazy::new(&[]).is_err());
}

/// Map views check string keys' UTF-8 and order on their bytes, and list
/// views check strings without making them: the same errors as a decode.
#[test]
fn string_keys_and_elements_are_checked_by_views() {
    // Containers.by_name (map<string, i32>, tag 11) and list_str (tag 8).
    let body = |tag: u32, content: &[u8]| {
        let mut p = PresenceWriter::<7>::new();
        p.set(tag, Class::Delimited);
        let mut b = Vec::new();
        p.encode(&mut b);
        write::len_prefixed(&mut b, content);
        b
    };
    let entry = |k: &[u8], v: u8| [&[k.len() as u8][..], k, &[v]].concat();
    let ok = body(
        11,
        &[entry("b".as_bytes(), 2), entry("é".as_bytes(), 4)].concat(),
    );
    let view = Containers::view(&ok).unwrap();
    let keys: Vec<&str> = view.by_name().iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["b", "é"]);
    assert_eq!(
        ContainersLazy::new(&ok).unwrap().by_name().unwrap().len(),
        2
    );
    assert_eq!(Containers::decode_slice(&ok).unwrap().by_name.len(), 2);
    for (content, expected) in [
        ([entry(b"b", 2), entry(b"a", 4)].concat(), "map_key_order"),
        ([entry(b"b", 2), entry(b"b", 4)].concat(), "map_key_order"),
        ([entry(b"ab", 2), entry(b"a", 4)].concat(), "map_key_order"),
        ([entry(b"a", 2), entry(&[0xff], 4)].concat(), "invalid_utf8"),
        ([entry(b"a", 2), entry(&[0xc3], 4)].concat(), "invalid_utf8"),
    ] {
        let bad = body(11, &content);
        let kind = |e: DecodeError| match e.root() {
            DecodeError::MapKeyOrder { .. } => "map_key_order",
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            other => panic!("{other:?}"),
        };
        assert_eq!(kind(Containers::view(&bad).unwrap_err()), expected);
        assert_eq!(
            kind(ContainersLazy::new(&bad).unwrap().by_name().unwrap_err()),
            expected
        );
        assert_eq!(kind(Containers::decode_slice(&bad).unwrap_err()), expected);
    }
    let list = |items: &[&[u8]]| {
        body(
            8,
            &items
                .iter()
                .flat_map(|i| [&[i.len() as u8][..], i].concat())
                .collect::<Vec<u8>>(),
        )
    };
    let ok = list(&[b"x", "ü".as_bytes()]);
    let strings: Vec<&str> = Containers::view(&ok).unwrap().list_str().iter().collect();
    assert_eq!(strings, ["x", "ü"]);
    let bad = list(&[b"x", &[0xe2, 0x82]]);
    assert!(matches!(
        Containers::view(&bad).unwrap_err().root(),
        DecodeError::InvalidUtf8 { at: 7 }
    ));
    assert!(matches!(
        ContainersLazy::new(&bad)
            .unwrap()
            .list_str()
            .unwrap_err()
            .root(),
        DecodeError::InvalidUtf8 { at: 7 }
    ));
}

#[test]
fn lazy_accessors_check_attributes() {
    let ok = Limited {
        name: "abc".into(),
        temp: 20.0,
        level: Some(5),
        items: vec![1, 2],
        ..Limited::default()
    };
    let bytes = ok.encode_to_vec().unwrap();
    let l = LimitedLazy::new(&bytes).unwrap();
    assert_eq!(l.name().unwrap(), "abc");
    assert_eq!(l.level().unwrap(), Some(5));
    // A name of 6 bytes breaks `max_len = 4`: only its accessor fails.
    let mut p = PresenceWriter::<2>::new();
    p.set(1, Class::Delimited);
    p.set(2, Class::Fixed32);
    let mut bad = Vec::new();
    p.encode(&mut bad);
    write::len_prefixed(&mut bad, b"abcdef");
    write::f32(&mut bad, 99.0);
    let l = LimitedLazy::new(&bad).unwrap();
    let err = l.name().unwrap_err();
    assert_eq!(
        err.to_string(),
        "in `alltypes.Limited.name`: length 6 exceeds max_len 4"
    );
    assert!(matches!(l.temp().unwrap_err().root(), DecodeError::Range(r) if r.max == 85));
    assert!(Limited::decode_slice(&bad).is_err());
}

#[test]
fn a_malformed_list_element_ends_the_iteration() {
    // `many` (tag 21): a list whose second element's length runs past the list.
    let good = Scalars::default().encode_to_vec().unwrap();
    let mut list = Vec::new();
    write::len_prefixed(&mut list, &good);
    list.push(9);
    let mut p = PresenceWriter::<6>::new();
    p.set(21, Class::Delimited);
    let mut bytes = Vec::new();
    p.encode(&mut bytes);
    write::len_prefixed(&mut bytes, &list);
    let l = ContainersLazy::new(&bytes).unwrap();
    let items: Vec<_> = l.many().unwrap().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(items[1].is_err());
    assert!(<Containers as Viewable>::view(&bytes).is_err());
}
