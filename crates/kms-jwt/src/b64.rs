//! Unpadded base64url (RFC 7515 section 2), strict on input.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes `bytes` as unpadded base64url.
#[must_use]
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the unpadded base64url encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes unpadded base64url, refusing padding, the `+`/`/` alphabet, whitespace and
/// non-zero trailing bits: each token has exactly one encoding, so a verifier never sees two
/// spellings of the same signature.
pub(crate) fn decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_every_non_canonical_spelling() {
        assert_eq!(decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(decode("AQ=="), None, "padding");
        assert_eq!(decode("A+/B"), None, "standard alphabet");
        assert_eq!(decode("AR"), None, "non-zero trailing bits");
        assert_eq!(decode("AQ"), Some(vec![1]));
        assert_eq!(decode("A QAB"), None, "whitespace");
        assert_eq!(decode("A"), None, "impossible length");
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = encode(&bytes);
            prop_assert!(!text.contains(['=', '+', '/']));
            prop_assert_eq!(decode(&text), Some(bytes));
        }
    }
}
