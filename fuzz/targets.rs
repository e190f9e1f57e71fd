// The fuzz targets' bodies, shared by `cargo fuzz` (fuzz_targets/) and by the corpus replay
// that `cargo test` runs on the stable toolchain (crates/kms-jwt/tests/fuzz_corpus.rs).
// Each checks its own invariants; any panic is a finding.

/// The token parser and verifier: never panics, and accepts nothing signed by another key.
pub(crate) fn verify(data: &[u8]) {
    use std::sync::OnceLock;
    static VERIFIER: OnceLock<kms_jwt::Verifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        // A fixed public key with no known private key: nothing the fuzzer makes can verify.
        let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        kms_jwt::Verifier::from_jwks(&kms_jwt::Jwks::parse(jwks).expect("fixed JWKS"), None).expect("fixed key")
    });
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = kms_jwt::jws::decode_unverified(token);
        // RFC 7515 A.3's key: its own example token is the only known valid input, and it
        // is long expired, so no input may ever verify as a JWT today.
        assert!(verifier.verify(token).is_err(), "accepted {token:?}");
    }
}

/// The DER -> R||S converter: whatever it accepts is canonical and round-trips.
pub(crate) fn ecdsa_der(data: &[u8]) {
    for width in [32, 48, 66] {
        if let Some(fixed) = kms_jwt::ecdsa::der_to_fixed(data, width) {
            assert_eq!(fixed.len(), 2 * width);
            assert_eq!(kms_jwt::ecdsa::fixed_to_der(&fixed).as_deref(), Some(data), "not canonical");
        }
    }
    let _ = kms_jwt::ecdsa::fixed_to_der(data);
}

/// The JWKS parser: never panics; what it accepts serialises and parses back the same.
pub(crate) fn jwks(data: &[u8]) {
    if let Ok(jwks) = kms_jwt::Jwks::parse(data) {
        let again = kms_jwt::Jwks::parse(jwks.to_json().to_string().as_bytes()).expect("own output parses");
        assert_eq!(again, jwks);
        for jwk in &jwks.keys {
            let _ = kms_jwt::VerifyingKey::from_jwk(jwk, None);
        }
    }
}
