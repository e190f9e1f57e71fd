//! Strict JSON object parsing: duplicate member names are an error at any depth.
//!
//! RFC 7515 section 5.2 lets a JWS parser either reject duplicate header names or use the
//! last one. Two verifiers that pick differently disagree on what a token says, so this
//! crate rejects them, in the header and in the claims, and in nested objects too.
//!
//! The check is a scan that builds nothing but the values asked for, borrowed from the
//! input where it has no escapes: verifying a batch reads every payload, and building a
//! `serde_json::Map` per token cost more than the rest of the verifier's own work.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as one JSON object with unique member names at every level.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    scan_object(bytes, [])?;
    // The scan accepted exactly this text, so the plain parser sees no duplicate to resolve.
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// A member's value as the scan saw it.
#[derive(Debug, PartialEq)]
pub(crate) enum Scanned<'a> {
    /// A number, floored and saturated to `i64` (what comparing dates needs).
    Number(i64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array whose items are all strings.
    Strings(Vec<Cow<'a, str>>),
    /// Anything else: `true`, `false`, `null`, an object, or another array.
    Other,
}

/// Checks that `bytes` is one JSON object with unique member names at every level, and
/// returns the values of the top-level members named in `names`.
pub(crate) fn scan_object<'a, const N: usize>(
    bytes: &'a [u8],
    names: [&str; N],
) -> Result<[Option<Scanned<'a>>; N], String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let found = de.deserialize_map(TopLevel { names }).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(found)
}

/// The top-level object: collects the wanted members, skips (and checks) the rest.
struct TopLevel<'n, const N: usize> {
    names: [&'n str; N],
}

impl<'de, const N: usize> Visitor<'de> for TopLevel<'_, N> {
    type Value = [Option<Scanned<'de>>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [const { None }; N];
        let mut seen = Vec::new();
        while let Some(name) = map.next_key_seed(Name)? {
            match self.names.iter().position(|wanted| *wanted == name) {
                Some(i) => found[i] = Some(map.next_value_seed(Wanted)?),
                None => map.next_value_seed(Skip)?,
            }
            seen.push(name);
        }
        unique(seen)?;
        Ok(found)
    }
}

/// Fails on the first member name that appears twice.
fn unique<E: de::Error>(mut names: Vec<Cow<'_, str>>) -> Result<(), E> {
    // Sorting keeps a hostile object with thousands of members at n log n.
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(E::custom(format_args!("duplicate member name {:?}", pair[0]))),
        None => Ok(()),
    }
}

/// A member name, borrowed from the input unless it had escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A wanted member's value.
struct Wanted;

impl<'de> DeserializeSeed<'de> for Wanted {
    type Value = Scanned<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Wanted {
    type Value = Scanned<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scanned::Number(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scanned::Number(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // `as` saturates; JSON text has no NaN.
        Ok(Scanned::Number(v.floor() as i64))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scanned::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scanned::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scanned::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scanned::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scanned::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Some(Vec::new());
        while let Some(item) = seq.next_element_seed(Wanted)? {
            match (item, &mut strings) {
                (Scanned::Str(s), Some(all)) => all.push(s),
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Scanned::Other, Scanned::Strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip.visit_map(map)?;
        Ok(Scanned::Other)
    }
}

/// A value nobody asked for: read only to check its objects' member names.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        while let Some(name) = map.next_key_seed(Name)? {
            map.next_value_seed(Skip)?;
            seen.push(name);
        }
        unique(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_only_and_no_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"b":{"c":[1,{"d":2}]}}"#).is_ok());
        let err = parse_object(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.contains("duplicate member name \"a\""), "{err}");
        for nested in [
            &br#"{"a":{"b":1,"b":1}}"#[..],
            br#"{"a":[{"b":1,"b":1}]}"#,
            br#"{"exp":{"b":1,"b":1}}"#,
            br#"{"exp":[{"b":1,"b":1}]}"#,
        ] {
            let err = parse_object(nested).unwrap_err();
            assert!(err.starts_with("duplicate member name \"b\""), "{err}");
        }
        // The same name spelled with an escape is the same name.
        assert!(parse_object(br#"{"a":1,"\u0061":2}"#).unwrap_err().starts_with("duplicate member name \"a\""));
        assert!(parse_object(b"[1]").unwrap_err().contains("expected a JSON object"));
        assert!(parse_object(b"{} {}").unwrap_err().starts_with("trailing characters"));
        assert!(parse_object(b"{\"a\":1").unwrap_err().starts_with("EOF while parsing an object"));
    }

    #[test]
    fn keeps_large_integers_exact() {
        let map = parse_object(br#"{"exp":1911744000,"big":18446744073709551615,"neg":-5}"#).unwrap();
        assert_eq!(map["exp"], Value::from(1_911_744_000_u64));
        assert_eq!(map["big"], Value::from(u64::MAX));
        assert_eq!(map["neg"], Value::from(-5));
    }

    #[test]
    fn scan_returns_the_wanted_members() {
        let [exp, aud, sub, nbf, iss] = scan_object(
            br#"{"exp":1.9,"aud":["a","\u0062"],"sub":{"x":1},"nbf":18446744073709551615,"iss":"me","other":[1]}"#,
            ["exp", "aud", "sub", "nbf", "iss"],
        )
        .unwrap();
        assert_eq!(exp, Some(Scanned::Number(1)));
        assert_eq!(aud, Some(Scanned::Strings(vec!["a".into(), "b".into()])));
        assert_eq!(sub, Some(Scanned::Other));
        assert_eq!(nbf, Some(Scanned::Number(i64::MAX)));
        assert!(matches!(iss, Some(Scanned::Str(Cow::Borrowed("me")))), "unescaped text is borrowed");
        let [missing] = scan_object(br#"{"aud":[1,"a"]}"#, ["exp"]).unwrap();
        assert_eq!(missing, None);
        assert_eq!(scan_object(br#"{"aud":["a",1]}"#, ["aud"]).unwrap(), [Some(Scanned::Other)]);
    }

    #[test]
    fn finds_a_duplicate_among_many_members() {
        let members: Vec<String> = (0..20_000).map(|i| format!("\"m{i}\":0")).collect();
        let text = format!("{{{},\"m0\":1}}", members.join(","));
        let err = parse_object(text.as_bytes()).unwrap_err();
        assert!(err.contains("duplicate member name \"m0\""), "{err}");
    }

    fn object_text(members: &[(String, String)]) -> String {
        let members: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", Value::from(k.as_str()))).collect();
        format!("{{{}}}", members.join(","))
    }

    fn has_duplicates(members: &[(String, String)]) -> bool {
        let mut names: Vec<&String> = members.iter().map(|(k, _)| k).collect();
        names.sort();
        names.windows(2).any(|w| w[0] == w[1])
    }

    proptest::proptest! {
        /// Names from a two-letter alphabet collide often; the scan must refuse exactly the
        /// objects with a repeated name, at the top level or one level down.
        #[test]
        fn refuses_exactly_the_repeated_names(
            top in proptest::collection::vec(("[ab]{1,2}", "(1|\"x\"|null|\\[1\\])"), 0..6),
            nested in proptest::collection::vec(("[ab]{1,2}", "(2|true)"), 0..6),
        ) {
            let inner = object_text(&nested);
            let mut members = top.clone();
            members.push(("nested".into(), inner));
            let text = object_text(&members);
            let result = parse_object(text.as_bytes());
            proptest::prop_assert_eq!(result.is_err(), has_duplicates(&members) || has_duplicates(&nested), "{}", text);
            if let Ok(map) = result {
                proptest::prop_assert_eq!(Value::Object(map), serde_json::from_str::<Value>(&text).unwrap());
            }
        }
    }
}
