//! Lazy views: every accessor reads what the owned decode reads; views are
//! made without reading the values; malformed bytes give errors, never
//! panics; whatever the validated view accepts, every lazy accessor accepts.

mod strategies;

use std::collections::BTreeMap;
use std::fmt::Debug;

use isml_codegen_tests::alltypes::{
    Containers, ContainersLazy, Limited, LimitedLazy, Node, NodeLazy, Scalars, ScalarsLazy,
};
use isml_runtime::__private::WireView;
use isml_runtime::lazy::{LazyMap, LazyValues};
use isml_runtime::wire::{Class, DecodeError, PresenceWriter, write};
use isml_runtime::{LazyViewable, Message, Viewable};
use proptest::prelude::*;
use strategies::{containers, node, scalars};

/// A view converted back to the owned type equals `owned`.
fn same<'a, T: WireView<'a> + PartialEq + Debug>(view: T::View, owned: &T) {
    assert_eq!(&T::from_view(&view), owned);
}

/// A lazy list iterated (each element checked as it comes) equals `owned`,
/// and so does its validated view.
fn same_values<'a, T: WireView<'a> + PartialEq + Debug>(l: LazyValues<'a, T>, owned: &[T]) {
    let view = l.to_view().unwrap();
    let got: Vec<T> = l.map(|v| T::from_view(&v.unwrap())).collect();
    assert_eq!(got, owned);
    assert_eq!(view.len(), owned.len());
}

/// A lazy map iterated (order checked entry by entry) equals `owned`, and
/// so does its validated view.
fn same_map<'a, K, V>(l: LazyMap<'a, K, V>, owned: &BTreeMap<K, V>)
where
    K: WireView<'a> + Ord + Debug,
    V: WireView<'a> + PartialEq + Debug,
    K::View: PartialOrd,
{
    let view = l.to_view().unwrap();
    let got: BTreeMap<K, V> = l
        .map(|e| {
            let (k, v) = e.unwrap();
            (K::from_view(&k), V::from_view(&v))
        })
        .collect();
    assert_eq!(&got, owned);
    assert_eq!(view.len(), owned.len());
}

/// Iterates a lazy list or map to its end: the first element's error.
fn drain<T>(mut items: impl Iterator<Item = Result<T, DecodeError>>) -> Result<(), DecodeError> {
    items.try_for_each(|i| i.map(drop))
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
    same_values(l.list_u8().unwrap(), &m.list_u8);
    same_values(l.list_u32().unwrap(), &m.list_u32);
    same_values(l.list_i64().unwrap(), &m.list_i64);
    let f32s: Vec<u32> = l
        .list_f32()
        .unwrap()
        .map(|x| x.unwrap().to_bits())
        .collect();
    assert_eq!(
        f32s,
        m.list_f32.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let f64s: Vec<u64> = l
        .list_f64()
        .unwrap()
        .map(|x| x.unwrap().to_bits())
        .collect();
    assert_eq!(
        f64s,
        m.list_f64.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    same_values(l.list_str().unwrap(), &m.list_str);
    same_values(l.list_bool().unwrap(), &m.list_bool);
    same_values(l.nested().unwrap(), &m.nested);
    same_map(l.by_name().unwrap(), &m.by_name);
    same_map(l.by_id().unwrap(), &m.by_id);
    same_map(l.flags().unwrap(), &m.flags);
    same(l.mac().unwrap(), &m.mac);
    same(l.big().unwrap(), &m.big);
    same(l.names().unwrap(), &m.names);
    same_values(l.opt_list().unwrap(), &m.opt_list);
    same_values(l.colors().unwrap(), &m.colors);
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
    same_values(l.choices().unwrap(), &m.choices);
    same_map(l.by_u64().unwrap(), &m.by_u64);
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
    drain(l.list_u8()?)?;
    drain(l.list_u32()?)?;
    drain(l.list_i64()?)?;
    drain(l.list_f32()?)?;
    drain(l.list_f64()?)?;
    drain(l.list_str()?)?;
    drain(l.list_bool()?)?;
    drain(l.nested()?)?;
    drain(l.by_name()?)?;
    drain(l.by_id()?)?;
    drain(l.flags()?)?;
    l.mac()?;
    l.big()?;
    l.names()?;
    drain(l.opt_list()?)?;
    drain(l.colors()?)?;
    walk_scalars(&l.scalars()?)?;
    if let Some(s) = l.maybe()? {
        walk_scalars(&s)?;
    }
    for s in l.many()? {
        walk_scalars(&s?)?;
    }
    l.choice()?;
    drain(l.choices()?)?;
    drain(l.by_u64()?)?;
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
        ContainersLazy::new(&ok).unwrap().by_name().unwrap().count(),
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
        // The lazy map finds it at the entry, as it iterates.
        let entries: Vec<_> = ContainersLazy::new(&bad)
            .unwrap()
            .by_name()
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 2, "the first entry, then the error");
        assert!(entries[0].is_ok());
        assert_eq!(kind(entries[1].clone().unwrap_err()), expected);
        let lazy_view = ContainersLazy::new(&bad)
            .unwrap()
            .by_name()
            .unwrap()
            .to_view();
        assert_eq!(kind(lazy_view.unwrap_err()), expected);
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
    let items: Vec<_> = ContainersLazy::new(&bad)
        .unwrap()
        .list_str()
        .unwrap()
        .collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Ok("x"));
    assert!(matches!(
        items[1].clone().unwrap_err().root(),
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

/// Lists and maps other than of messages are walked once: the accessor
/// checks only the length of fixed-width elements, the iterator checks each
/// element as it reaches it and stops after the first bad one.
#[test]
fn lazy_values_check_each_element_as_they_iterate() {
    let body = |tag: u32, content: &[u8]| {
        let mut p = PresenceWriter::<4>::new();
        p.set(tag, Class::Delimited);
        let mut b = Vec::new();
        p.encode(&mut b);
        write::len_prefixed(&mut b, content);
        b
    };
    // list<u32> (tag 4): 1, 300, then a value above u32::MAX, then 5.
    let mut content = vec![1, 0xac, 0x02];
    let at = content.len();
    content.extend([0xff, 0xff, 0xff, 0xff, 0x7f, 5]);
    let bytes = body(4, &content);
    let l = ContainersLazy::new(&bytes).unwrap();
    let items: Vec<_> = l.list_u32().expect("nothing checked yet").collect();
    assert_eq!(items.len(), 3, "two values, the error, then nothing");
    assert_eq!(items[0], Ok(1));
    assert_eq!(items[1], Ok(300));
    let err = items[2].clone().unwrap_err();
    assert!(
        matches!(err.root(), DecodeError::IntegerOutOfRange { at: a, .. } if *a == bytes.len() - content.len() + at),
        "{err:?}"
    );
    assert!(l.list_u32().unwrap().to_view().is_err());
    assert!(Containers::view(&bytes).is_err());
    assert!(Containers::decode_slice(&bytes).is_err());

    // list<f64> (tag 7): 12 bytes is not a whole number of elements; the
    // accessor knows at once.
    let bytes = body(7, &[0; 12]);
    let err = ContainersLazy::new(&bytes).unwrap().list_f64().unwrap_err();
    assert!(
        matches!(
            err.root(),
            DecodeError::RaggedList {
                len: 12,
                width: 8,
                ..
            }
        ),
        "{err:?}"
    );

    // map<i32, string> (tag 12): keys 1 then -1 (zigzag 2, 1) are out of order.
    let bytes = body(12, &[2, 1, b'a', 1, 1, b'b']);
    let entries: Vec<_> = ContainersLazy::new(&bytes)
        .unwrap()
        .by_id()
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0], Ok((1, "a")));
    assert!(matches!(
        entries[1].clone().unwrap_err().root(),
        DecodeError::MapKeyOrder { .. }
    ));
}
