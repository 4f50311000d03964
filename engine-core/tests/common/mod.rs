//! Strategies shared by the property tests.

// Each test binary uses its own subset of these.
#![allow(dead_code)]

use proptest::prelude::*;

/// A small alphabet so that exact parts often equal each other and range options.
pub fn word() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "ab", "订单"]).prop_map(str::to_owned)
}

/// Syntactically valid topic strings (every regex compiles), built token by token.
pub fn valid_topic() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => word(),
        1 => word().prop_map(|w| format!("{{{w}}}")),
        1 => word().prop_map(|w| format!("+{w}")),
        1 => prop::collection::vec(word(), 0..3).prop_map(|ws| format!("({})", ws.join("|"))),
        1 => prop::sample::select(vec!["^a$", "a", "b|c", "^订", "a.b", ""])
            .prop_map(|p| format!("/{p}/")),
        1 => prop::sample::select(vec!["", "+", "{}", "()"]).prop_map(str::to_owned),
    ];
    prop::collection::vec(token, 0..5).prop_map(|tokens| tokens.join("."))
}
