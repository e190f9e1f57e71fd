//! ECDSA signature encodings: the DER `Ecdsa-Sig-Value` that KMS returns and the fixed-width
//! `R || S` that JWS requires (RFC 7518 section 3.4).

use der::asn1::UintRef;
use der::{Decode as _, Encode as _, Sequence};

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 section 2.2.3).
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Converts a strict-DER ECDSA signature to JOSE's `R || S`, each scalar left-padded to
/// `scalar_len` bytes (32 for P-256 and secp256k1, 48 for P-384, 66 for P-521).
///
/// Returns `None` for anything that is not exactly one minimal DER sequence of two positive
/// integers, each of which fits `scalar_len` bytes.
#[must_use]
pub(crate) fn der_to_fixed(der: &[u8], scalar_len: usize) -> Option<Vec<u8>> {
    let sig = EcdsaSigValue::from_der(der).ok()?;
    let mut out = vec![0u8; 2 * scalar_len];
    for (half, int) in out.chunks_exact_mut(scalar_len).zip([sig.r, sig.s]) {
        let bytes = int.as_bytes();
        if bytes.len() > scalar_len || bytes.iter().all(|&b| b == 0) {
            return None;
        }
        half[scalar_len - bytes.len()..].copy_from_slice(bytes);
    }
    Some(out)
}

/// Converts JOSE's `R || S` to the DER form that openssl and other X.509 tools expect.
///
/// Returns `None` if the input has an odd length or either half is zero.
#[must_use]
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) fn fixed_to_der(fixed: &[u8]) -> Option<Vec<u8>> {
    if fixed.is_empty() || !fixed.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    if r.iter().all(|&b| b == 0) || s.iter().all(|&b| b == 0) {
        return None;
    }
    let sig = EcdsaSigValue { r: UintRef::new(r).ok()?, s: UintRef::new(s).ok()? };
    sig.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encoding() {
        // r = 0x80 needs a leading zero in DER; s = 1 does not.
        let der = [0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x01];
        let mut fixed = vec![0u8; 64];
        fixed[31] = 0x80;
        fixed[63] = 0x01;
        assert_eq!(der_to_fixed(&der, 32), Some(fixed.clone()));
        assert_eq!(fixed_to_der(&fixed), Some(der.to_vec()));
    }

    #[test]
    fn rejects_non_minimal_negative_oversized_and_trailing() {
        // Leading zero that is not needed.
        assert_eq!(der_to_fixed(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01], 32), None);
        // Negative r.
        assert_eq!(der_to_fixed(&[0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01], 32), None);
        // Zero r.
        assert_eq!(der_to_fixed(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01], 32), None);
        // Trailing byte.
        assert_eq!(der_to_fixed(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00], 32), None);
        // r wider than the curve.
        let mut wide = vec![0x30, 0x25, 0x02, 0x20];
        wide.extend([0x7f; 32]);
        wide.extend([0x02, 0x01, 0x01]);
        assert!(der_to_fixed(&wide, 32).is_some());
        assert_eq!(der_to_fixed(&wide, 31), None);
        assert_eq!(fixed_to_der(&[0; 64]), None);
        assert_eq!(fixed_to_der(&[1; 63]), None);
    }

    fn scalar(len: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), len).prop_filter("non-zero scalar", |v| v.iter().any(|&b| b != 0))
    }

    proptest! {
        #[test]
        fn round_trip_every_width(
            (len, r, s) in prop_oneof![Just(32usize), Just(48), Just(66)]
                .prop_flat_map(|len| (Just(len), scalar(len), scalar(len)))
        ) {
            let fixed = [r, s].concat();
            let der = fixed_to_der(&fixed).expect("encodes");
            prop_assert_eq!(der_to_fixed(&der, len), Some(fixed));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            if let Some(fixed) = der_to_fixed(&bytes, 32) {
                // Whatever is accepted is canonical: it re-encodes to the same bytes.
                prop_assert_eq!(fixed_to_der(&fixed), Some(bytes));
            }
        }
    }
}
