//! Typed component settings: a component declares a serde struct with
//! Layotto's key names and reads it from its string metadata with
//! [`ComponentContext::settings`](crate::ComponentContext::settings) or
//! [`parse`].
//!
//! Metadata values are strings on the wire and in Layotto's JSON files, so
//! numbers and booleans are parsed from strings (`"10"`, `"true"`), an empty
//! value counts as absent for `Option` fields, and durations take Go's form
//! (`"10s"`, `"500ms"`, `"1m30s"`) through [`duration`] or, where Layotto
//! reads seconds, a bare number of seconds through [`seconds`].
//!
//! A key that no settings struct of a component knows is reported with the
//! nearest known key ("did you mean redisHost?"); the runtime decides whether
//! that is an error (our TOML) or a warning (Layotto's JSON).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, Visitor};

use crate::{Error, Metadata, Result};

/// Parses `T` from component metadata; `component` names the component in
/// errors, which are configuration errors. Unknown keys are ignored here
/// (see [`KeyTracker`] for reporting them).
pub fn parse<T: DeserializeOwned>(component: &str, metadata: &Metadata) -> Result<T> {
    parse_tracked(component, metadata).map(|parsed| parsed.value)
}

/// Like [`parse`], for metadata that came with a request (or a
/// subscription): a bad value is the caller's invalid argument.
pub fn parse_request<T: DeserializeOwned>(component: &str, metadata: &Metadata) -> Result<T> {
    parse(component, metadata).map_err(|e| Error::invalid_argument(e.message().to_owned()))
}

pub(crate) struct Parsed<T> {
    pub value: T,
    /// Keys the settings struct does not know.
    pub ignored: BTreeSet<String>,
    /// Every key name (and alias) the struct knows.
    pub known: &'static [&'static str],
}

pub(crate) fn parse_tracked<T: DeserializeOwned>(component: &str, metadata: &Metadata) -> Result<Parsed<T>> {
    let mut entries: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    entries.sort_unstable();
    let ignored = std::cell::RefCell::new(BTreeSet::new());
    let known = std::cell::Cell::new(&[][..]);
    let deserializer = MetadataDeserializer { entries: &entries, ignored: &ignored, known: &known };
    let value = T::deserialize(deserializer)
        .map_err(|e: SettingsError| Error::config(format!("{component}: metadata {}", e.0)))?;
    Ok(Parsed { value, ignored: ignored.into_inner(), known: known.get() })
}

/// The keys of one component's metadata that its settings structs claimed,
/// so the runtime can report the rest once the component is built.
#[derive(Clone, Default)]
pub struct KeyTracker(Arc<Mutex<TrackerState>>);

#[derive(Default)]
struct TrackerState {
    claimed: BTreeSet<String>,
    known: BTreeSet<&'static str>,
}

impl fmt::Debug for KeyTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyTracker")
    }
}

/// A metadata key no settings struct of the component knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub key: String,
    /// The nearest known key, when one is close enough to be a typo.
    pub suggestion: Option<&'static str>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown metadata key '{}'", self.key)?;
        if let Some(s) = self.suggestion {
            write!(f, " (did you mean {s}?)")?;
        }
        Ok(())
    }
}

impl KeyTracker {
    pub(crate) fn record<T>(&self, metadata: &Metadata, parsed: &Parsed<T>) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.known.extend(parsed.known.iter().copied());
        for key in metadata.keys().filter(|k| !parsed.ignored.contains(*k)) {
            state.claimed.insert(key.clone());
        }
    }

    /// Claims keys read without a settings struct.
    pub fn claim(&self, keys: &[&'static str]) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.known.extend(keys.iter().copied());
        state.claimed.extend(keys.iter().map(|k| (*k).to_owned()));
    }

    /// The keys of `metadata` nobody claimed, each with its nearest known key.
    pub fn unknown(&self, metadata: &Metadata) -> Vec<UnknownKey> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut unknown: Vec<UnknownKey> = metadata
            .keys()
            .filter(|k| !state.claimed.contains(*k))
            .map(|key| UnknownKey { key: key.clone(), suggestion: nearest(key, &state.known) })
            .collect();
        unknown.sort_by(|a, b| a.key.cmp(&b.key));
        unknown
    }
}

fn nearest(key: &str, known: &BTreeSet<&'static str>) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

/// For `#[serde(default, deserialize_with = "settings::duration")]` on an
/// `Option<Duration>`: Go's duration syntax (`300ms`, `10s`, `1m30s`, `1.5h`).
pub fn duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let raw: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_duration(s).map(Some).map_err(de::Error::custom),
    }
}

/// Like [`duration`], but a bare number is seconds, as Layotto reads e.g. `expire`.
pub fn seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let raw: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.parse::<f64>() {
            Ok(secs) if (0.0..1e12).contains(&secs) => Ok(Some(Duration::from_secs_f64(secs))),
            Ok(_) => Err(de::Error::custom(format!("must be a non-negative number of seconds, got '{s}'"))),
            Err(_) => parse_duration(s).map(Some).map_err(de::Error::custom),
        },
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, e.g. `1h15m30.5s`; `0` alone is zero.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let invalid = || format!("must be a duration such as 5s or 500ms, got '{text}'");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(invalid());
    }
    Ok(Duration::from_secs_f64(total))
}

#[derive(Debug)]
struct SettingsError(String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl de::Error for SettingsError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

struct MetadataDeserializer<'a> {
    entries: &'a [(&'a str, &'a str)],
    ignored: &'a std::cell::RefCell<BTreeSet<String>>,
    known: &'a std::cell::Cell<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for MetadataDeserializer<'_> {
    type Error = SettingsError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, SettingsError> {
        visitor.visit_map(Entries { entries: self.entries.iter(), current: None, ignored: self.ignored })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, SettingsError> {
        self.known.set(fields);
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (&'a str, &'a str)>,
    current: Option<(&'a str, &'a str)>,
    ignored: &'a std::cell::RefCell<BTreeSet<String>>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = SettingsError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, SettingsError> {
        let Some(&(key, value)) = self.entries.next() else { return Ok(None) };
        self.current = Some((key, value));
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, SettingsError> {
        let (key, raw) = self.current.take().ok_or_else(|| SettingsError("value without a key".into()))?;
        seed.deserialize(Value { key, raw, ignored: self.ignored }).map_err(|e| {
            // Errors of `deserialize_with` functions do not know the key.
            if e.0.starts_with(&format!("'{key}'")) { e } else { SettingsError(format!("'{key}' {}", e.0)) }
        })
    }
}

/// One metadata value: a string that numbers and booleans are parsed from.
struct Value<'a> {
    key: &'a str,
    raw: &'a str,
    ignored: &'a std::cell::RefCell<BTreeSet<String>>,
}

impl Value<'_> {
    fn invalid(&self, expected: &str) -> SettingsError {
        SettingsError(format!("'{}' must be {expected}, got '{}'", self.key, self.raw))
    }

    fn number<T: std::str::FromStr>(&self, expected: &str) -> std::result::Result<T, SettingsError> {
        self.raw.trim().parse().map_err(|_| self.invalid(expected))
    }
}

macro_rules! numbers {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, SettingsError> {
            let n: $ty = self.number($what)?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> Deserializer<'de> for Value<'_> {
    type Error = SettingsError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, SettingsError> {
        visitor.visit_str(self.raw)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, SettingsError> {
        match self.raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            _ => Err(self.invalid("true or false")),
        }
    }

    numbers! {
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_u8 visit_u8 u8, "a non-negative integer up to 255";
        deserialize_u16 visit_u16 u16, "a non-negative integer up to 65535";
        deserialize_u32 visit_u32 u32, "a non-negative integer";
        deserialize_u64 visit_u64 u64, "a non-negative integer";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> std::result::Result<V::Value, SettingsError> {
        if self.raw.trim().is_empty() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, SettingsError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, SettingsError> {
        let key = self.key;
        let raw = self.raw.trim();
        visitor
            .visit_enum(raw.into_deserializer())
            .map_err(|e: de::value::Error| SettingsError(format!("'{key}': {e}")))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, SettingsError> {
        // Only keys the struct does not know are skipped this way.
        self.ignored.borrow_mut().insert(self.key.to_owned());
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Redis {
        #[serde(rename = "redisHost", default)]
        host: Option<String>,
        #[serde(rename = "redisDB", alias = "db", default)]
        db: Option<u8>,
        #[serde(rename = "enableTLS", default)]
        tls: bool,
        #[serde(default, deserialize_with = "duration")]
        timeout: Option<Duration>,
        #[serde(default, deserialize_with = "seconds")]
        expire: Option<Duration>,
    }

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn strings_become_typed_values() {
        let m = meta(&[
            ("redisHost", "h:1"),
            ("db", "3"),
            ("enableTLS", "TRUE"),
            ("timeout", "1m30s"),
            ("expire", "10"),
        ]);
        let r: Redis = parse("c", &m).unwrap();
        assert_eq!(r.host.as_deref(), Some("h:1"));
        assert_eq!(r.db, Some(3));
        assert!(r.tls);
        assert_eq!(r.timeout, Some(Duration::from_secs(90)));
        assert_eq!(r.expire, Some(Duration::from_secs(10)));
        let empty: Redis = parse("c", &meta(&[("redisDB", ""), ("timeout", " ")])).unwrap();
        assert_eq!((empty.db, empty.timeout), (None, None));
    }

    #[test]
    fn bad_values_name_component_and_key() {
        for (key, value) in
            [("redisDB", "many"), ("enableTLS", "maybe"), ("timeout", "soon"), ("redisDB", "300")]
        {
            let err = parse::<Redis>("state 'cache' (redis)", &meta(&[(key, value)])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("state 'cache'") && msg.contains(key) && msg.contains(value), "{msg}");
        }
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let m = meta(&[("redisHots", "x"), ("db", "1"), ("somethingElse", "y")]);
        let tracker = KeyTracker::default();
        let parsed = parse_tracked::<Redis>("c", &m).unwrap();
        tracker.record(&m, &parsed);
        let unknown = tracker.unknown(&m);
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert_eq!(unknown[0].to_string(), "unknown metadata key 'redisHots' (did you mean redisHost?)");
        assert_eq!(unknown[1].suggestion, None);
        tracker.claim(&["somethingElse"]);
        assert_eq!(tracker.unknown(&m).len(), 1);
    }

    #[test]
    fn go_durations() {
        for (text, ms) in [("500ms", 500), ("10s", 10_000), ("1m30s", 90_000), ("1.5h", 5_400_000), ("0", 0)]
        {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_millis(ms), "{text}");
        }
        for bad in ["", "10", "-1s", "5 parsecs", "s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
