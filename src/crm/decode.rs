//! Tolerant decoding of RetailCRM responses.
//!
//! RetailCRM is a PHP application: empty associative arrays arrive as `[]`, numbers arrive as
//! ints, floats or (sometimes) numeric strings, ids can be strings or ints, and new fields appear
//! at any time. The helpers here absorb those quirks so the wire types in [`super::types`] stay
//! plain `serde` structs.
//!
//! Lists are decoded in two steps: the envelope first (with every item kept as raw JSON text),
//! then each item on its own. One record that does not fit our types becomes a
//! [`Decoded::Poison`] instead of failing the whole page, so the sync engine can put it aside
//! and move on.
//!
//! Money is parsed from the JSON number's own text into [`BigDecimal`] (through
//! `serde_json::value::RawValue`), never through `f64`, so `1395.16` stays exactly `1395.16`.
//! This works because every response is decoded with `serde_json::from_str`/`from_slice`.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `Y-m-d H:i:s` layout RetailCRM uses for date-times (no zone; account timezone).
pub const CRM_DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Parses a RetailCRM `Y-m-d H:i:s` value given in the account timezone `tz` into UTC.
///
/// In a DST fold the earlier instant wins; a wall time that falls into a DST gap is read as if
/// the clocks had not moved yet (one hour later in UTC terms is never invented). Returns `None`
/// for anything that is not `Y-m-d H:i:s`.
pub fn parse_crm_datetime(raw: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(raw.trim(), CRM_DATETIME_FORMAT).ok()?;
    match tz.from_local_datetime(&naive).earliest() {
        Some(dt) => Some(dt.with_timezone(&Utc)),
        // A DST gap (no such wall time): shift by an hour, which is what the clock showed.
        None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|dt| dt.with_timezone(&Utc)),
    }
}

/// One item of a list: decoded, or put aside with the reason it could not be.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<T> {
    /// The item decoded into our type.
    Ok(T),
    /// The item did not fit; kept raw so it can be stored and inspected.
    Poison(PoisonItem),
}

impl<T> Decoded<T> {
    /// The decoded item, if any.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Decoded::Ok(t) => Some(t),
            Decoded::Poison(_) => None,
        }
    }

    /// Consumes self, returning the decoded item if any.
    pub fn into_ok(self) -> Option<T> {
        match self {
            Decoded::Ok(t) => Some(t),
            Decoded::Poison(_) => None,
        }
    }

    /// The poison item, if this one failed.
    pub fn poison(&self) -> Option<&PoisonItem> {
        match self {
            Decoded::Ok(_) => None,
            Decoded::Poison(p) => Some(p),
        }
    }
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoisonItem {
    /// The record's `id`, when at least that much could be read.
    pub id: Option<i64>,
    /// The record as received (a JSON string holding the raw text if it was not even JSON).
    pub raw: serde_json::Value,
    /// Why decoding failed (serde's message, with the path inside the record).
    pub reason: String,
}

/// Decodes one item from its raw JSON text; a failure becomes a [`PoisonItem`].
pub fn decode_item<T: DeserializeOwned>(raw: &RawValue) -> Decoded<T> {
    match serde_json::from_str::<T>(raw.get()) {
        Ok(item) => Decoded::Ok(item),
        Err(err) => {
            #[derive(Deserialize)]
            struct IdOnly {
                #[serde(default, deserialize_with = "lenient_opt_i64")]
                id: Option<i64>,
            }
            let id = serde_json::from_str::<IdOnly>(raw.get())
                .ok()
                .and_then(|x| x.id);
            let value = serde_json::from_str::<serde_json::Value>(raw.get())
                .unwrap_or_else(|_| serde_json::Value::String(raw.get().to_string()));
            Decoded::Poison(PoisonItem {
                id,
                raw: value,
                reason: err.to_string(),
            })
        }
    }
}

/// Decodes every item of a list on its own.
pub fn decode_items<T: DeserializeOwned>(raws: &[&RawValue]) -> Vec<Decoded<T>> {
    raws.iter().map(|raw| decode_item(raw)).collect()
}

// ---------------------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------------------

/// Parses money text (`1395.16`, `0`, `1e3`, `"1234.50"`) exactly.
fn parse_money_text(text: &str) -> Result<BigDecimal, String> {
    let t = text.trim();
    let t = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t)
        .trim();
    if t.is_empty() || t.len() > 64 {
        return Err(format!("`{t}` is not an amount"));
    }
    BigDecimal::from_str(t).map_err(|_| format!("`{t}` is not an amount"))
}

/// `deserialize_with` for a required amount: int, float or numeric string, parsed exactly.
/// `null` reads as zero (RetailCRM sends `null` for unset sums on some fields).
pub fn money<'de, D: Deserializer<'de>>(d: D) -> Result<BigDecimal, D::Error> {
    Ok(opt_money(d)?.unwrap_or_default())
}

/// `deserialize_with` for an optional amount (`null` or absent is `None`).
pub fn opt_money<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BigDecimal>, D::Error> {
    let raw: Box<RawValue> = Deserialize::deserialize(d)?;
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('{') || text.starts_with('[') || text == "true" || text == "false" {
        return Err(de::Error::custom(format!(
            "expected an amount, found `{}`",
            truncate(text, 40)
        )));
    }
    if text.starts_with('"') {
        // A numeric string: decode the JSON string first (escapes), then parse.
        let s: String = serde_json::from_str(text).map_err(de::Error::custom)?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        return parse_money_text(&s).map(Some).map_err(de::Error::custom);
    }
    parse_money_text(text).map(Some).map_err(de::Error::custom)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

// ---------------------------------------------------------------------------------------------
// Lenient scalars
// ---------------------------------------------------------------------------------------------

struct LenientStringVisitor;

impl<'de> Visitor<'de> for LenientStringVisitor {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a number or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientStringVisitor)
    }
}

/// `deserialize_with` for an optional text field that may arrive as a string or a number
/// (`externalId`, `number`, `phone`).
pub fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(LenientStringVisitor)
}

/// `deserialize_with` for a required text field that may arrive as a string or a number.
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_opt_string(d)?.ok_or_else(|| de::Error::custom("expected a string, found null"))
}

struct LenientI64Visitor;

impl<'de> Visitor<'de> for LenientI64Visitor {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer, a numeric string or null")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("{v} does not fit an i64 id")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(Some(v as i64))
        } else {
            Err(E::custom(format!("{v} is not an integer")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<i64>()
            .map(Some)
            .map_err(|_| E::custom(format!("`{}` is not an integer", truncate(t, 40))))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LenientI64Visitor)
    }
}

/// `deserialize_with` for an optional integer given as a number or a numeric string.
pub fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(LenientI64Visitor)
}

/// `deserialize_with` for a required integer (an id) given as a number or a numeric string.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    lenient_opt_i64(d)?.ok_or_else(|| de::Error::custom("expected an integer id, found null"))
}

struct LenientBoolVisitor;

impl<'de> Visitor<'de> for LenientBoolVisitor {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, 0/1 or null")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Ok(v != 0)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Ok(v != 0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(matches!(v.trim(), "1" | "true" | "Y" | "y"))
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(LenientBoolVisitor)
    }
}

/// `deserialize_with` for a flag that may be `true`/`false`, `0`/`1` or `null` (false).
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(LenientBoolVisitor)
}

// ---------------------------------------------------------------------------------------------
// Map or empty sequence (PHP's `[]` for an empty associative array)
// ---------------------------------------------------------------------------------------------

struct MapOrSeqVisitor<K, V>(PhantomData<(K, V)>);

impl<'de, K, V> Visitor<'de> for MapOrSeqVisitor<K, V>
where
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
{
    type Value = HashMap<K, V>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or an empty array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = HashMap::with_capacity(map.size_hint().unwrap_or(0).min(256));
        while let Some((k, v)) = map.next_entry::<K, V>()? {
            out.insert(k, v);
        }
        Ok(out)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // PHP sends `[]` for an empty map. A non-empty list has no keys we could use: refuse it
        // rather than invent keys.
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "expected an object or an empty array, found a non-empty array",
            ));
        }
        Ok(HashMap::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(HashMap::new())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(HashMap::new())
    }
}

/// `deserialize_with` for an associative field (`payments`, `customFields`, reference
/// dictionaries) that is an object, `[]` when empty, or `null`.
pub fn map_or_empty<'de, D, K, V>(d: D) -> Result<HashMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Eq + Hash,
    V: Deserialize<'de>,
{
    d.deserialize_any(MapOrSeqVisitor(PhantomData))
}

struct SeqOrMapVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for SeqOrMapVisitor<V> {
    type Value = Vec<V>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array, an object or null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        while let Some(v) = seq.next_element::<V>()? {
            out.push(v);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // PHP arrays with non-sequential keys serialise as objects: keep the values.
        let mut out = Vec::new();
        while let Some((_, v)) = map.next_entry::<IgnoredAny, V>()? {
            out.push(v);
        }
        Ok(out)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

/// `deserialize_with` for a list (`phones`) that may also arrive as an object keyed by index
/// (PHP arrays with gaps) or `null`.
pub fn seq_or_map<'de, D, V>(d: D) -> Result<Vec<V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    d.deserialize_any(SeqOrMapVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct M {
        #[serde(deserialize_with = "money")]
        a: BigDecimal,
        #[serde(default, deserialize_with = "opt_money")]
        b: Option<BigDecimal>,
    }

    #[test]
    fn money_is_exact() {
        let m: M = serde_json::from_str(r#"{"a": 1395.16, "b": "1234.50"}"#).unwrap();
        assert_eq!(m.a, BigDecimal::from_str("1395.16").unwrap());
        assert_eq!(m.a.to_string(), "1395.16");
        assert_eq!(m.b, Some(BigDecimal::from_str("1234.50").unwrap()));
        let m: M = serde_json::from_str(r#"{"a": 0.1000000000000000055511151231257827}"#).unwrap();
        assert_eq!(m.a.to_string(), "0.1000000000000000055511151231257827");
        assert!(m.b.is_none());
        assert!(serde_json::from_str::<M>(r#"{"a": "abc"}"#).is_err());
        assert!(serde_json::from_str::<M>(r#"{"a": {}}"#).is_err());
    }

    #[test]
    fn datetime_in_account_zone() {
        let utc = parse_crm_datetime("2021-02-25 09:37:48", chrono_tz::Europe::Moscow).unwrap();
        assert_eq!(utc.to_rfc3339(), "2021-02-25T06:37:48+00:00");
        assert!(parse_crm_datetime("2021-02-25", chrono_tz::Europe::Moscow).is_none());
        // Europe/Berlin spring-forward gap 2021-03-28 02:30 does not exist.
        assert!(parse_crm_datetime("2021-03-28 02:30:00", chrono_tz::Europe::Berlin).is_some());
    }
}
