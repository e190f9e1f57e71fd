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
        let _ = kms_jwt::decode_unverified(token);
        // RFC 7515 A.3's key: its own example token is the only known valid input, and it
        // is long expired, so no input may ever verify as a JWT today.
        assert!(verifier.verify::<kms_jwt::Claims>(token).map(|v| v.claims).is_err(), "accepted {token:?}");
    }
}

/// The DER -> R||S converter: whatever it accepts is canonical and round-trips.
pub(crate) fn ecdsa_der(data: &[u8]) {
    for width in [32, 48, 66] {
        if let Some(fixed) = kms_jwt::fuzzing::der_to_fixed(data, width) {
            assert_eq!(fixed.len(), 2 * width);
            assert_eq!(kms_jwt::fuzzing::fixed_to_der(&fixed).as_deref(), Some(data), "not canonical");
        }
    }
    let _ = kms_jwt::fuzzing::fixed_to_der(data);
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

/// The verifier's claims checks against `Claims::from_json`: any payload, signed with a
/// valid signature, verifies exactly when `from_json` accepts it (bar the one expiry that an
/// unbounded leeway still refuses), with the same claims; `verify_payload` agrees.
pub(crate) fn claims(data: &[u8]) {
    use std::sync::OnceLock;
    use std::task::{Context, Poll, Waker};
    static FIXTURE: OnceLock<(kms_jwt::JwtSigner<kms_jwt::LocalSigner>, kms_jwt::Verifier)> = OnceLock::new();
    let (signer, verifier) = FIXTURE.get_or_init(|| {
        let signer = kms_jwt::LocalSigner::generate(kms_jwt::Algorithm::ES256).expect("key");
        let signer = kms_jwt::JwtSigner::new(signer).expect("signer");
        let key = kms_jwt::VerifyingKey::from_jwk(&signer.jwk(), None).expect("own key");
        // Times and audiences are not what this target is about: no exp required, every nbf
        // in range, any aud.
        let verifier = kms_jwt::Verifier::new(vec![key]).require_exp(false).with_leeway(u64::MAX).allow_any_audience();
        (signer, verifier)
    });
    // The local signer never waits, so one poll finishes it.
    let Poll::Ready(token) = std::pin::pin!(signer.sign_payload(data)).poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("the local signer returned Pending");
    };
    let token = token.expect("the local signer signs any payload");
    let outcome = verifier.clone().at(0).verify::<kms_jwt::Claims>(&token).map(|v| v.claims);
    match kms_jwt::Claims::from_json(data) {
        Ok(claims) => {
            let exp = claims.get("exp").and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64)));
            match exp {
                // 0 > exp + leeway only for the most negative exp.
                Some(i64::MIN) => assert_eq!(outcome, Err(kms_jwt::TokenError::Expired { exp: i64::MIN })),
                _ => assert_eq!(outcome.as_ref(), Ok(&claims), "{:?}", String::from_utf8_lossy(data)),
            }
        }
        Err(e) => assert!(
            outcome.is_err(),
            "verified claims that from_json refuses ({e}): {:?}",
            String::from_utf8_lossy(data)
        ),
    }
    match verifier
        .clone()
        .at(0)
        .verify::<Box<serde_json::value::RawValue>>(&token)
        .map(|v| v.claims.get().as_bytes().to_vec())
    {
        Ok(payload) => assert_eq!((payload.as_slice(), outcome.is_ok()), (data, true)),
        Err(e) => assert_eq!(Err(e), outcome.map(|_| ())),
    }
}
