//! Short constructors for the nftables crate's expression and statement types, so that
//! ruleset.rs reads like the nft rules it writes.

use std::borrow::Cow;

use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, SetItem,
};
use nftables::stmt::{AnonymousCounter, Counter, Match, Operator, Statement};

/// `<protocol> <field>`, e.g. `udp dport`.
pub fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

/// `meta <key>`.
pub fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

/// `ct state`.
pub fn ct_state() -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed("state"),
        family: None,
        dir: None,
    }))
}

/// `a . b . c`.
pub fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

/// An anonymous set `{ a, b }`.
pub fn set_of(items: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(SetItem::Element).collect(),
    ))
}

pub fn word(text: &'static str) -> Expression<'static> {
    Expression::String(Cow::Borrowed(text))
}

pub fn words(texts: &[&'static str]) -> Expression<'static> {
    set_of(texts.iter().map(|t| word(t)).collect())
}

pub fn number(value: u32) -> Expression<'static> {
    Expression::Number(value)
}

/// A reference to a named set, `@name`.
pub fn named_set(name: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(format!("@{name}")))
}

/// `left == right` (for a set on the right, membership).
pub fn is(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

/// `left in right`: flag tests such as `ct state established,related`.
pub fn has_any(left: Expression<'static>, right: Vec<Expression<'static>>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::List(right),
        op: Operator::IN,
    })
}

/// An anonymous counter, written with zero counts so that every nft version reads it.
pub fn counter() -> Statement<'static> {
    Statement::Counter(Counter::Anonymous(Some(AnonymousCounter::default())))
}

pub fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

pub fn drop() -> Statement<'static> {
    Statement::Drop(None)
}
