//! JWT claims (RFC 7519 section 4) and a builder for them.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::json::{self, Scanned};
use crate::{Error, Result, TokenError, b64};

/// The JSON type each registered claim must have (RFC 7519 section 4.1).
const REGISTERED: [(&str, Kind); 7] = [
    ("exp", Kind::NumericDate),
    ("nbf", Kind::NumericDate),
    ("iat", Kind::NumericDate),
    ("iss", Kind::String),
    ("sub", Kind::String),
    ("jti", Kind::String),
    ("aud", Kind::Audience),
];

#[derive(Clone, Copy)]
enum Kind {
    NumericDate,
    String,
    /// A string or an array of strings.
    Audience,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::NumericDate => "a number",
            Kind::String => "a string",
            Kind::Audience => "a string or an array of strings",
        }
    }

    fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (Kind::NumericDate, Value::Number(_)) | (Kind::String | Kind::Audience, Value::String(_)) => true,
            (Kind::Audience, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        }
    }

    fn admits_scanned(self, value: &Scanned<'_>) -> bool {
        matches!(
            (self, value),
            (Kind::NumericDate, Scanned::Number(_))
                | (Kind::String | Kind::Audience, Scanned::Str(_))
                | (Kind::Audience, Scanned::Strings(_))
        )
    }
}

/// A JWT claims set: a JSON object with the registered claims and any others.
///
/// Serialises as that object; deserialising applies the checks of [`Claims::from_map`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Claims(#[serde(deserialize_with = "checked_map")] Map<String, Value>);

fn checked_map<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Map<String, Value>, D::Error> {
    let map = <Map<String, Value> as serde::Deserialize>::deserialize(de)?;
    Claims::from_map(map).map(Claims::into_map).map_err(serde::de::Error::custom)
}

impl Claims {
    /// An empty claims set.
    #[must_use]
    pub fn new() -> Claims {
        Claims(Map::new())
    }

    /// Parses a JSON object, rejecting duplicate member names, and type-checks the
    /// registered claims that this crate sets (`exp`, `nbf`, `iat` numbers; `iss`, `sub`,
    /// `jti` strings; `aud` a string or an array of strings).
    pub fn from_json(bytes: &[u8]) -> Result<Claims> {
        let map = json::parse_object(bytes).map_err(Error::InvalidClaims)?;
        Claims::from_map(map)
    }

    /// Wraps an existing JSON object, with the same checks as [`Claims::from_json`].
    pub fn from_map(map: Map<String, Value>) -> Result<Claims> {
        for (name, kind) in REGISTERED {
            if map.get(name).is_some_and(|value| !kind.admits(value)) {
                return Err(Error::InvalidClaims(format!("{name} must be {}", kind.describe())));
            }
        }
        Ok(Claims(map))
    }

    /// Sets `sub`.
    #[must_use]
    pub fn subject(self, sub: impl Into<String>) -> Claims {
        self.claim("sub", sub.into())
    }

    /// Sets `iss`.
    #[must_use]
    pub fn issuer(self, iss: impl Into<String>) -> Claims {
        self.claim("iss", iss.into())
    }

    /// Adds an audience: `aud` is a string while there is one, an array once there are more.
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> Claims {
        let aud = Value::String(aud.into());
        let merged = match self.0.remove("aud") {
            None => aud,
            Some(Value::Array(mut items)) => {
                items.push(aud);
                Value::Array(items)
            }
            Some(one) => Value::Array(vec![one, aud]),
        };
        self.0.insert("aud".into(), merged);
        self
    }

    /// Sets `exp` (seconds since the epoch).
    #[must_use]
    pub fn expires_at(self, exp: i64) -> Claims {
        self.claim("exp", exp)
    }

    /// Sets `nbf` (seconds since the epoch).
    #[must_use]
    pub fn not_before(self, nbf: i64) -> Claims {
        self.claim("nbf", nbf)
    }

    /// Sets `iat` (seconds since the epoch).
    #[must_use]
    pub fn issued_at(self, iat: i64) -> Claims {
        self.claim("iat", iat)
    }

    /// Sets `jti`.
    #[must_use]
    pub fn jwt_id(self, jti: impl Into<String>) -> Claims {
        self.claim("jti", jti.into())
    }

    /// Sets `jti` to 128 random bits, base64url-encoded.
    #[must_use]
    pub fn random_jwt_id(self) -> Claims {
        let mut id = [0u8; 16];
        // The system RNG only fails if the OS has no entropy source, where nothing can sign.
        aws_lc_rs::rand::fill(&mut id).expect("system random number generator");
        self.jwt_id(b64::encode(id))
    }

    /// Sets any claim, replacing an earlier value.
    #[must_use]
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Claims {
        self.0.insert(name.into(), value.into());
        self
    }

    /// A claim's value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The claims as a JSON object.
    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The claims as a JSON object, by value.
    #[must_use]
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// Compact JSON encoding: the JWS payload.
    #[must_use]
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serialising a map of JSON values cannot fail.
        serde_json::to_vec(&self.0).expect("JSON object serialises")
    }
}

/// The registered claims a verifier checks, read from a payload without building its claims
/// set (which is most of the cost of checking a token's claims).
#[derive(Debug, Default)]
pub(crate) struct Registered<'a> {
    pub(crate) exp: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) iss: Option<Cow<'a, str>>,
    /// `aud`, a single string read as a one-item list.
    pub(crate) aud: Option<Vec<Cow<'a, str>>>,
}

impl<'a> Registered<'a> {
    /// Checks that `payload` is a JSON object with unique member names at every depth whose
    /// registered claims have their types, and reads the ones a verifier compares.
    pub(crate) fn parse(payload: &'a [u8]) -> Result<Registered<'a>, TokenError> {
        let values = json::scan_object(payload, REGISTERED.map(|(name, _)| name))
            .map_err(|reason| TokenError::Json { part: "claims", reason })?;
        let mut registered = Registered::default();
        for ((name, kind), value) in REGISTERED.into_iter().zip(values) {
            let Some(value) = value else { continue };
            if !kind.admits_scanned(&value) {
                return Err(TokenError::ClaimType { name, expected: kind.describe() });
            }
            match (name, value) {
                ("exp", Scanned::Number(t)) => registered.exp = Some(t),
                ("nbf", Scanned::Number(t)) => registered.nbf = Some(t),
                ("iss", Scanned::Str(iss)) => registered.iss = Some(iss),
                ("aud", Scanned::Str(aud)) => registered.aud = Some(vec![aud]),
                ("aud", Scanned::Strings(aud)) => registered.aud = Some(aud),
                _ => {}
            }
        }
        Ok(registered)
    }
}

/// The current time in seconds since the epoch.
#[must_use]
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_sets_registered_claims() {
        let claims = Claims::new()
            .subject("test-user")
            .issuer("my-lambda")
            .audience("a")
            .audience("b")
            .expires_at(1_911_744_000)
            .not_before(1)
            .issued_at(2)
            .jwt_id("id")
            .claim("scope", json!(["read"]));
        assert_eq!(
            Value::Object(claims.as_map().clone()),
            json!({"sub":"test-user","iss":"my-lambda","aud":["a","b"],"exp":1_911_744_000,"nbf":1,"iat":2,"jti":"id","scope":["read"]})
        );
        assert_eq!(Claims::new().audience("only").get("aud"), Some(&json!("only")));
        let jti = Claims::new().random_jwt_id();
        assert_eq!(b64::decode(jti.get("jti").unwrap().as_str().unwrap()).unwrap().len(), 16);
    }

    fn json_leaf() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    proptest::proptest! {
        #[test]
        fn claims_json_round_trips(
            members in proptest::collection::btree_map("[a-z_]{1,8}", json_leaf(), 0..12),
            exp in proptest::option::of(any_i64()),
        ) {
            let mut claims = Claims::new();
            for (name, value) in members {
                if !matches!(name.as_str(), "exp" | "nbf" | "iat" | "iss" | "sub" | "jti" | "aud") {
                    claims = claims.claim(name, value);
                }
            }
            if let Some(exp) = exp {
                claims = claims.expires_at(exp);
            }
            let bytes = claims.to_json_bytes();
            proptest::prop_assert_eq!(Claims::from_json(&bytes).unwrap(), claims);
        }
    }

    fn any_i64() -> impl proptest::strategy::Strategy<Value = i64> {
        proptest::prelude::any::<i64>()
    }

    #[test]
    fn registered_claims_are_read_and_type_checked() {
        let r =
            Registered::parse(br#"{"exp":10.5,"nbf":-1,"iat":3,"iss":"me","aud":"you","sub":"x","jti":"j"}"#).unwrap();
        assert_eq!((r.exp, r.nbf, r.iss.as_deref()), (Some(10), Some(-1), Some("me")));
        assert_eq!(r.aud, Some(vec![Cow::Borrowed("you")]));
        assert_eq!(Registered::parse(br#"{"aud":["a","b"]}"#).unwrap().aud, Some(vec!["a".into(), "b".into()]));
        for (payload, name, expected) in [
            (&br#"{"exp":"1"}"#[..], "exp", "a number"),
            (br#"{"iat":null}"#, "iat", "a number"),
            (br#"{"iss":1}"#, "iss", "a string"),
            (br#"{"jti":["j"]}"#, "jti", "a string"),
            (br#"{"aud":["a",1]}"#, "aud", "a string or an array of strings"),
        ] {
            assert_eq!(Registered::parse(payload).unwrap_err(), TokenError::ClaimType { name, expected });
        }
        assert!(matches!(Registered::parse(br#"{"a":1,"a":1}"#), Err(TokenError::Json { part: "claims", .. })));
    }

    #[test]
    fn from_json_type_checks_registered_claims() {
        let refused = |json: &[u8]| Claims::from_json(json).unwrap_err().to_string();
        assert_eq!(refused(br#"{"exp":"1"}"#), "invalid claims: exp must be a number");
        assert_eq!(refused(br#"{"aud":[1]}"#), "invalid claims: aud must be a string or an array of strings");
        assert_eq!(refused(br#"{"sub":1}"#), "invalid claims: sub must be a string");
        assert!(refused(br#"{"a":1,"a":1}"#).starts_with("invalid claims: duplicate member name \"a\""));
        assert!(refused(br"[]").contains("expected a JSON object"));
        assert!(Claims::from_json(br#"{"exp":1.5,"aud":["x"],"custom":{"nested":true}}"#).is_ok());
    }
}
