//! Postgres refuses the NUL character in `text` and `jsonb`. Input from RetailCRM may carry one;
//! it is removed here, before any write, so one such record can never fail (and so block) a
//! whole batch again and again.

use std::borrow::Cow;

use crate::model::{CustomerRecord, OrderRecord};

fn has_nul(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|v| v.contains('\0'))
}

fn clean(s: &mut Option<String>) {
    if let Some(v) = s.as_mut() {
        v.retain(|c| c != '\0');
    }
}

/// A string without NUL characters.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// The customers, with NUL characters removed from their text (borrowed when there are none).
pub(crate) fn customers(input: &[CustomerRecord]) -> Cow<'_, [CustomerRecord]> {
    let dirty = input.iter().any(|c| {
        has_nul(&c.email) || has_nul(&c.phone) || has_nul(&c.first_name) || has_nul(&c.last_name)
    });
    if !dirty {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .iter()
            .cloned()
            .map(|mut c| {
                for f in [
                    &mut c.email,
                    &mut c.phone,
                    &mut c.first_name,
                    &mut c.last_name,
                ] {
                    clean(f);
                }
                c
            })
            .collect(),
    )
}

/// The orders, with NUL characters removed from their text (borrowed when there are none).
pub(crate) fn orders(input: &[OrderRecord]) -> Cow<'_, [OrderRecord]> {
    let dirty = input.iter().any(|o| {
        let k = &o.contact;
        o.number.contains('\0')
            || o.retailcrm_status.contains('\0')
            || has_nul(&o.currency)
            || has_nul(&k.email)
            || has_nul(&k.phone)
            || has_nul(&k.first_name)
            || has_nul(&k.last_name)
    });
    if !dirty {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .iter()
            .cloned()
            .map(|mut o| {
                o.number.retain(|c| c != '\0');
                o.retailcrm_status.retain(|c| c != '\0');
                let k = &mut o.contact;
                for f in [
                    &mut o.currency,
                    &mut k.email,
                    &mut k.phone,
                    &mut k.first_name,
                    &mut k.last_name,
                ] {
                    clean(f);
                }
                o
            })
            .collect(),
    )
}

/// A JSON value with NUL characters removed from every string and key.
pub(crate) fn json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(text(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(json).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (text(k).into_owned(), json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_removed_everywhere() {
        let v = serde_json::json!({"a\u{0}": ["x\u{0}y", 1, {"b": "\u{0}"}]});
        assert_eq!(json(&v), serde_json::json!({"a": ["xy", 1, {"b": ""}]}));
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(text("a\0b"), "ab");
    }
}
