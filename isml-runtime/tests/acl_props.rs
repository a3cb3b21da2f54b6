//! The ACL against a reference model: the rule "allowed when an allow rule
//! matches and no deny rule does", written as plainly as possible (a
//! recursive glob, linear scans), over 10,000 generated rule sets with 32
//! requests each. Names, devices and patterns come from a small alphabet so
//! that rules do match.
#![cfg(feature = "runtime")]

use isml_runtime::pubsub::{Acl, AclRule, Action};
use proptest::prelude::*;

/// `*` any run, `?` one character: the definition, by recursion.
fn glob(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| glob(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && glob(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
    }
}

fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t)
}

fn rule_matches(
    r: &AclRule,
    device: &str,
    principal: Option<&str>,
    action: Action,
    name: &str,
) -> bool {
    let devices = match &r.devices {
        None => true,
        Some(globs) => globs.iter().any(|g| matches(g, device)),
    };
    let identities = match (&r.identities, principal) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(globs), Some(p)) => globs.iter().any(|g| matches(g, p)),
    };
    devices && identities && r.actions.contains(&action) && r.names.iter().any(|g| matches(g, name))
}

fn model(
    allow: &[AclRule],
    deny: &[AclRule],
    device: &str,
    principal: Option<&str>,
    action: Action,
    name: &str,
) -> bool {
    let mut allowed = false;
    for r in allow {
        if rule_matches(r, device, principal, action, name) {
            allowed = true;
        }
    }
    for r in deny {
        if rule_matches(r, device, principal, action, name) {
            allowed = false;
        }
    }
    allowed
}

fn chars(alphabet: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), len).prop_map(|v| v.into_iter().collect())
}

fn text() -> impl Strategy<Value = String> {
    chars(&['a', 'b', '.'], 0..5)
}

fn pattern() -> impl Strategy<Value = String> {
    chars(&['a', 'b', '.', '*', '?'], 1..5)
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

fn rule() -> impl Strategy<Value = AclRule> {
    (
        prop::option::of(prop::collection::vec(pattern(), 1..3)),
        prop::option::of(prop::collection::vec(pattern(), 1..3)),
        prop::collection::vec(action(), 1..4),
        prop::collection::vec(pattern(), 1..3),
    )
        .prop_map(|(devices, identities, actions, names)| AclRule {
            devices,
            identities,
            actions,
            names,
        })
}

type Request = (String, Option<String>, Action, String);

fn request() -> impl Strategy<Value = Request> {
    (text(), prop::option::of(text()), action(), text())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn the_acl_agrees_with_the_reference_model(
        allow in prop::collection::vec(rule(), 0..4),
        deny in prop::collection::vec(rule(), 0..3),
        requests in prop::collection::vec(request(), 32),
    ) {
        let acl = Acl::new(&allow, &deny);
        for (device, principal, action, name) in &requests {
            prop_assert_eq!(
                acl.check(device, principal.as_deref(), *action, name),
                model(&allow, &deny, device, principal.as_deref(), *action, name),
                "device {:?} principal {:?} {:?} {:?}", device, principal, action, name
            );
        }
    }
}

/// The TOML form builds the same ACL as the rules.
#[test]
fn the_file_form_is_the_rule_form() {
    let file = Acl::from_toml_str(
        r#"
[[allow]]
devices = ["a*"]
actions = ["publish", "call"]
names = ["b?"]
[[deny]]
identities = ["x"]
actions = ["*"]
names = ["*"]
"#,
    )
    .unwrap();
    let rules = Acl::new(
        &[AclRule {
            devices: Some(vec!["a*".into()]),
            identities: None,
            actions: vec![Action::Publish, Action::Call],
            names: vec!["b?".into()],
        }],
        &[AclRule {
            devices: None,
            identities: Some(vec!["x".into()]),
            actions: Action::ALL.to_vec(),
            names: vec!["*".into()],
        }],
    );
    for device in ["", "a", "ab", "b"] {
        for principal in [None, Some("x"), Some("y")] {
            for action in Action::ALL {
                for name in ["b", "ba", "bab"] {
                    assert_eq!(
                        file.check(device, principal, action, name),
                        rules.check(device, principal, action, name)
                    );
                }
            }
        }
    }
    assert!(file.check("ab", None, Action::Call, "ba"));
    assert!(!file.check("ab", Some("x"), Action::Call, "ba"));
}
