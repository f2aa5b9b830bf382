//! Properties of scope parsing (RFC 6749 §3.3) over generated input: any text is read or refused
//! without a panic, what is accepted is exactly the valid tokens, and the set operations agree
//! with their definitions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use gatehouse_core::ScopeSet;
use proptest::prelude::*;

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`
fn token() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,16}"
}

fn is_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn set(tokens: &[String]) -> ScopeSet {
    ScopeSet::from_tokens(tokens).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text: accepted exactly when every space-separated word is a valid token, and then
    /// the set holds those words.
    #[test]
    fn parsing_accepts_exactly_valid_tokens(text in prop_oneof![".{0,80}", "[ a-c\"\\\\!~\t]{0,40}"]) {
        let words: BTreeSet<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        match ScopeSet::parse(&text) {
            Ok(parsed) => {
                prop_assert!(words.iter().all(|w| is_token(w)));
                prop_assert_eq!(parsed.iter().collect::<BTreeSet<_>>(), words);
            }
            Err(_) => prop_assert!(words.iter().any(|w| !is_token(w))),
        }
    }

    /// Sorted, without repeats, single spaces: the wire form parses back to the same set, and
    /// printing is independent of order and repetition in the input.
    #[test]
    fn the_wire_form_round_trips(tokens in prop::collection::vec(token(), 0..8), spaces in 1usize..4) {
        let text = tokens.join(" ".repeat(spaces).as_str());
        let parsed = ScopeSet::parse(&text).unwrap();
        let wire = parsed.to_string();
        prop_assert_eq!(ScopeSet::parse(&wire).unwrap(), parsed.clone());
        let mut sorted = tokens.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(wire, sorted.join(" "));
        let mut reversed = tokens.clone();
        reversed.reverse();
        prop_assert_eq!(set(&reversed), parsed);
    }

    /// Subset, difference, intersection and union agree with each other.
    #[test]
    fn set_operations_agree(
        a in prop::collection::vec(token(), 0..6),
        b in prop::collection::vec(token(), 0..6),
    ) {
        let (a, b) = (set(&a), set(&b));
        let both = a.intersection(&b);
        let either = a.union(&b);
        prop_assert!(both.is_subset(&a) && both.is_subset(&b));
        prop_assert!(a.is_subset(&either) && b.is_subset(&either));
        let outside: Vec<&str> = a.outside(&b).collect();
        prop_assert_eq!(a.is_subset(&b), outside.is_empty());
        for scope in a.iter() {
            prop_assert_eq!(outside.contains(&scope), !b.contains(scope));
            prop_assert_eq!(both.contains(scope), b.contains(scope));
        }
        prop_assert_eq!(either.iter().count(), a.iter().count() + b.iter().filter(|s| !a.contains(s)).count());
    }

    /// A list is accepted only when every member is a token.
    #[test]
    fn from_tokens_refuses_any_bad_member(
        good in prop::collection::vec(token(), 0..4),
        bad in prop_oneof![Just(String::new()), "[ \"\\\\\u{0}-\u{1f}\u{7f}é]{1,4}", "[a-z]{129,140}"],
        at in 0usize..5,
    ) {
        let mut tokens = good.clone();
        tokens.insert(at.min(tokens.len()), bad);
        prop_assert!(ScopeSet::from_tokens(&tokens).is_err());
        prop_assert!(ScopeSet::from_tokens(&good).is_ok());
    }
}
