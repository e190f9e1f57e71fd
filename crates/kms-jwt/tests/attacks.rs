//! The attack table: every known way to get a forged or malformed token past a JWT
//! verifier, each with the exact rejection expected.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use aws_lc_rs::hmac;
use kms_jwt::Jwk;
use kms_jwt::{Algorithm, Claims, JwtSigner, KeyIdMode, LocalSigner, Signer, TokenError, Verifier, VerifyingKey};
use serde_json::json;

const FAR_FUTURE: i64 = 4_102_444_800; // 2100-01-01
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct Fixture {
    signer: JwtSigner<LocalSigner>,
    verifier: Verifier,
}

fn fixture(alg: Algorithm) -> Fixture {
    let signer = JwtSigner::new(LocalSigner::generate(alg).unwrap()).unwrap();
    let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None).unwrap()]);
    Fixture { signer, verifier }
}

fn valid_claims() -> Claims {
    Claims::new().subject("alice").issuer("issuer-a").audience("aud-a").expires_at(FAR_FUTURE)
}

/// Signs raw header and payload bytes with the fixture's key.
async fn sign_raw(f: &Fixture, header: &serde_json::Value, payload: &[u8]) -> String {
    kms_jwt::fuzzing::sign_compact(f.signer.signer(), header.to_string().as_bytes(), payload).await.unwrap()
}

fn header(f: &Fixture) -> serde_json::Value {
    json!({"alg": f.signer.signer().algorithm().name(), "typ": "JWT", "kid": f.signer.kid()})
}

fn replace_segment(token: &str, index: usize, value: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = value;
    parts.join(".")
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let f = fixture(Algorithm::ES256);
    let token = f.signer.sign(&valid_claims()).await.unwrap();
    let claims = f
        .verifier
        .clone()
        .with_issuer("issuer-a")
        .with_audience("aud-a")
        .verify::<kms_jwt::Claims>(&token)
        .map(|v| v.claims)
        .unwrap();
    assert_eq!(claims, valid_claims());
}

#[tokio::test]
async fn alg_none_in_any_case_is_refused() {
    let f = fixture(Algorithm::RS256);
    let payload = kms_jwt::fuzzing::b64_encode(valid_claims().to_json_bytes());
    for alg in ["none", "None", "NONE"] {
        let head = kms_jwt::fuzzing::b64_encode(json!({"alg": alg, "kid": f.signer.kid()}).to_string());
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&format!("{head}.{payload}.")).map(|v| v.claims).unwrap_err(),
            TokenError::AlgNone
        );
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&format!("{head}.{payload}.AAAA")).map(|v| v.claims).unwrap_err(),
            TokenError::AlgNone
        );
    }
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    let f = fixture(Algorithm::RS256);
    let public = f.signer.signer().public_key();
    for mac_key in [public.to_pem().into_bytes(), public.to_spki_der()] {
        let head =
            kms_jwt::fuzzing::b64_encode(json!({"alg": "HS256", "typ": "JWT", "kid": f.signer.kid()}).to_string());
        let input = format!("{head}.{}", kms_jwt::fuzzing::b64_encode(valid_claims().to_json_bytes()));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), input.as_bytes());
        let token = format!("{input}.{}", kms_jwt::fuzzing::b64_encode(tag.as_ref()));
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
            TokenError::UnsupportedAlg("HS256".into())
        );
    }
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let f = fixture(Algorithm::RS256);
    let token = f.signer.sign(&valid_claims()).await.unwrap();
    let forged =
        replace_segment(&token, 1, &kms_jwt::fuzzing::b64_encode(valid_claims().subject("admin").to_json_bytes()));
    assert_eq!(f.verifier.verify::<kms_jwt::Claims>(&forged).map(|v| v.claims).unwrap_err(), TokenError::BadSignature);
}

#[tokio::test]
async fn time_claims_are_enforced_with_leeway() {
    let f = fixture(Algorithm::ES256);
    let now = kms_jwt::now();
    let expired = f.signer.sign(&Claims::new().expires_at(now - 120)).await.unwrap();
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&expired).map(|v| v.claims).unwrap_err(),
        TokenError::Expired { exp: now - 120 }
    );
    // Within the default 60 s leeway it still passes; with none it does not.
    let just = f.signer.sign(&Claims::new().expires_at(now - 30)).await.unwrap();
    assert!(f.verifier.verify::<kms_jwt::Claims>(&just).map(|v| v.claims).is_ok());
    assert!(matches!(
        f.verifier.clone().with_leeway(0).verify::<kms_jwt::Claims>(&just).map(|v| v.claims),
        Err(TokenError::Expired { .. })
    ));

    let early = f.signer.sign(&Claims::new().expires_at(FAR_FUTURE).not_before(now + 3600)).await.unwrap();
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&early).map(|v| v.claims).unwrap_err(),
        TokenError::NotYetValid { nbf: now + 3600 }
    );

    let no_exp = f.signer.sign(&Claims::new().subject("x")).await.unwrap();
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&no_exp).map(|v| v.claims).unwrap_err(),
        TokenError::MissingClaim("exp")
    );
    assert!(f.verifier.clone().require_exp(false).verify::<kms_jwt::Claims>(&no_exp).map(|v| v.claims).is_ok());
}

#[tokio::test]
async fn time_claims_must_be_numbers() {
    let f = fixture(Algorithm::ES256);
    for (claim, value) in [
        ("exp", json!("4102444800")),
        ("exp", json!(true)),
        ("exp", json!(null)),
        ("nbf", json!("0")),
        ("iat", json!([])),
    ] {
        let mut claims = json!({"exp": FAR_FUTURE});
        claims[claim] = value.clone();
        let token = sign_raw(&f, &header(&f), claims.to_string().as_bytes()).await;
        let expected = TokenError::ClaimType { name: claim, expected: "a number" };
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
            expected,
            "{claim} = {value}"
        );
    }
}

#[tokio::test]
async fn registered_claims_must_have_their_types() {
    let f = fixture(Algorithm::ES256);
    for (claim, value, expected) in [
        ("iss", json!(1), "a string"),
        ("sub", json!({"id": 1}), "a string"),
        ("jti", json!(["j"]), "a string"),
        ("aud", json!(true), "a string or an array of strings"),
        ("aud", json!(["a", 1]), "a string or an array of strings"),
    ] {
        let mut claims = json!({"exp": FAR_FUTURE});
        claims[claim] = value.clone();
        let token = sign_raw(&f, &header(&f), claims.to_string().as_bytes()).await;
        let err = f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err();
        assert_eq!(err, TokenError::ClaimType { name: claim, expected }, "{claim} = {value}");
        assert_eq!(
            f.verifier
                .verify::<Box<serde_json::value::RawValue>>(&token)
                .map(|v| v.claims.get().as_bytes().to_vec())
                .unwrap_err(),
            err
        );
    }
}

#[tokio::test]
async fn non_canonical_base64url_is_refused() {
    let f = fixture(Algorithm::RS256);
    let token = f.signer.sign(&valid_claims()).await.unwrap();
    let sig = token.rsplit('.').next().unwrap();

    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&format!("{token}==")).map(|v| v.claims).unwrap_err(),
        TokenError::Base64("signature")
    );
    let header_padded = replace_segment(&token, 0, &format!("{}=", token.split('.').next().unwrap()));
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&header_padded).map(|v| v.claims).unwrap_err(),
        TokenError::Base64("header")
    );

    let std_alphabet = sig.replace('-', "+").replace('_', "/");
    if std_alphabet != sig {
        assert_eq!(
            f.verifier
                .verify::<kms_jwt::Claims>(&replace_segment(&token, 2, &std_alphabet))
                .map(|v| v.claims)
                .unwrap_err(),
            TokenError::Base64("signature")
        );
    }
    let plus = replace_segment(&token, 1, &format!("+{}", &token.split('.').nth(1).unwrap()[1..]));
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&plus).map(|v| v.claims).unwrap_err(),
        TokenError::Base64("payload")
    );

    // A 256-byte signature leaves 4 unused bits in its last character; setting one of them
    // spells the same bytes differently, which must not verify.
    let last = sig.as_bytes()[sig.len() - 1];
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    assert_eq!(index & 0b1111, 0);
    let mut twisted = sig.to_owned();
    twisted.pop();
    twisted.push(ALPHABET[index | 1] as char);
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&replace_segment(&token, 2, &twisted)).map(|v| v.claims).unwrap_err(),
        TokenError::Base64("signature")
    );
}

#[tokio::test]
async fn wrong_segment_counts_are_refused() {
    let f = fixture(Algorithm::ES256);
    let token = f.signer.sign(&valid_claims()).await.unwrap();
    let two = token.rsplit_once('.').unwrap().0;
    assert_eq!(f.verifier.verify::<kms_jwt::Claims>(two).map(|v| v.claims).unwrap_err(), TokenError::Segments(2));
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&format!("{token}.AAAA")).map(|v| v.claims).unwrap_err(),
        TokenError::Segments(4)
    );
    assert_eq!(f.verifier.verify::<kms_jwt::Claims>("").map(|v| v.claims).unwrap_err(), TokenError::Segments(1));
}

#[tokio::test]
async fn unknown_crit_is_refused() {
    let f = fixture(Algorithm::ES256);
    let mut head = header(&f);
    head["crit"] = json!(["http://example.com/unknown"]);
    head["http://example.com/unknown"] = json!(true);
    let token = sign_raw(&f, &head, &valid_claims().to_json_bytes()).await;
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
        TokenError::Crit(r#"["http://example.com/unknown"]"#.into())
    );
}

#[tokio::test]
async fn duplicate_member_names_are_refused() {
    let f = fixture(Algorithm::ES256);
    let head = format!(r#"{{"alg":"ES256","kid":"{}","alg":"ES256"}}"#, f.signer.kid());
    let token = kms_jwt::fuzzing::sign_compact(f.signer.signer(), head.as_bytes(), &valid_claims().to_json_bytes())
        .await
        .unwrap();
    assert!(matches!(
        f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
        TokenError::Json { part: "header", .. }
    ));

    let payload = format!(r#"{{"sub":"alice","exp":{FAR_FUTURE},"sub":"admin"}}"#);
    let token = sign_raw(&f, &header(&f), payload.as_bytes()).await;
    match f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err() {
        TokenError::Json { part: "claims", reason } => {
            assert!(reason.contains("duplicate member name \"sub\""), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_attacker_key_in_the_header_is_ignored() {
    let f = fixture(Algorithm::ES256);
    let attacker = LocalSigner::generate(Algorithm::ES256).unwrap();
    let attacker_jwk = Jwk { key: attacker.public_key().clone(), kid: None, alg: None }.to_json();
    for head in [
        json!({"alg": "ES256", "kid": f.signer.kid(), "jwk": attacker_jwk}),
        json!({"alg": "ES256", "jwk": attacker_jwk}),
        json!({"alg": "ES256", "kid": f.signer.kid(), "jku": "https://attacker.example/jwks.json", "x5u": "https://attacker.example/cert.pem"}),
    ] {
        let token =
            kms_jwt::fuzzing::sign_compact(&attacker, head.to_string().as_bytes(), &valid_claims().to_json_bytes())
                .await
                .unwrap();
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
            TokenError::BadSignature,
            "{head}"
        );
    }
}

#[tokio::test]
async fn malformed_ecdsa_signatures_are_refused() {
    let f = fixture(Algorithm::ES256);
    let token = f.signer.sign(&valid_claims()).await.unwrap();
    let sig = kms_jwt::fuzzing::b64_decode(token.rsplit('.').next().unwrap()).unwrap();
    assert_eq!(sig.len(), 64);
    let der = kms_jwt::fuzzing::fixed_to_der(&sig).unwrap();
    for bad in [vec![0u8; 64], der, sig[..63].to_vec(), [sig.as_slice(), &[0]].concat()] {
        let forged = replace_segment(&token, 2, &kms_jwt::fuzzing::b64_encode(&bad));
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&forged).map(|v| v.claims).unwrap_err(),
            TokenError::BadSignature,
            "{} bytes",
            bad.len()
        );
    }
}

#[tokio::test]
async fn an_rs256_token_against_a_ps256_pinned_key_is_refused() {
    let signer = JwtSigner::new(LocalSigner::generate(Algorithm::RS256).unwrap()).unwrap();
    let token = signer.sign(&valid_claims()).await.unwrap();
    let mut jwk = signer.jwk();
    jwk.alg = Some(Algorithm::PS256);
    let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&jwk, None).unwrap()]);
    assert_eq!(
        verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
        TokenError::AlgNotAllowed { got: "RS256".into(), kid: signer.kid().into(), pinned: Algorithm::PS256 }
    );
}

#[tokio::test]
async fn unknown_and_path_like_kids_are_refused() {
    let f = fixture(Algorithm::ES256);
    for kid in ["not-a-key", "../../etc/passwd"] {
        let signer =
            JwtSigner::with_kid(LocalSigner::generate(Algorithm::ES256).unwrap(), KeyIdMode::Fixed(kid.into()))
                .unwrap();
        let token = signer.sign(&valid_claims()).await.unwrap();
        assert_eq!(
            f.verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap_err(),
            TokenError::UnknownKid(kid.into())
        );
    }
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let f = fixture(Algorithm::ES256);
    let strict = f.verifier.clone().with_issuer("issuer-a").with_audience("aud-a");
    let wrong_iss = f.signer.sign(&valid_claims().issuer("issuer-b")).await.unwrap();
    assert_eq!(
        strict.verify::<kms_jwt::Claims>(&wrong_iss).map(|v| v.claims).unwrap_err(),
        TokenError::Issuer { got: "issuer-b".into() }
    );

    let aud_string =
        f.signer.sign(&Claims::new().issuer("issuer-a").audience("aud-b").expires_at(FAR_FUTURE)).await.unwrap();
    assert_eq!(strict.verify::<kms_jwt::Claims>(&aud_string).map(|v| v.claims).unwrap_err(), TokenError::Audience);
    let aud_array = f
        .signer
        .sign(&Claims::new().issuer("issuer-a").audience("aud-b").audience("aud-c").expires_at(FAR_FUTURE))
        .await
        .unwrap();
    assert_eq!(strict.verify::<kms_jwt::Claims>(&aud_array).map(|v| v.claims).unwrap_err(), TokenError::Audience);
    let aud_in_array = f
        .signer
        .sign(&Claims::new().issuer("issuer-a").audience("aud-b").audience("aud-a").expires_at(FAR_FUTURE))
        .await
        .unwrap();
    assert!(strict.verify::<kms_jwt::Claims>(&aud_in_array).map(|v| v.claims).is_ok());
    let no_aud = f.signer.sign(&Claims::new().issuer("issuer-a").expires_at(FAR_FUTURE)).await.unwrap();
    assert_eq!(
        strict.verify::<kms_jwt::Claims>(&no_aud).map(|v| v.claims).unwrap_err(),
        TokenError::MissingClaim("aud")
    );
}

/// A token for another service is not accepted by a verifier that forgot to name its own
/// audience (jsonwebtoken and PyJWT refuse it too); only an explicit opt-out takes any.
#[tokio::test]
async fn a_token_with_an_audience_is_refused_when_none_is_expected() {
    let f = fixture(Algorithm::ES256);
    let claims = || Claims::new().subject("alice").expires_at(FAR_FUTURE);
    let for_billing = f.signer.sign(&claims().audience("billing")).await.unwrap();
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&for_billing).map(|v| v.claims).unwrap_err(),
        TokenError::AudienceNotExpected
    );
    assert_eq!(TokenError::AudienceNotExpected.to_string(), "token has an audience (aud) but none is expected");
    let inspector = f.verifier.clone().allow_any_audience();
    assert_eq!(
        inspector.verify::<kms_jwt::Claims>(&for_billing).map(|v| v.claims).unwrap().get("aud").unwrap(),
        "billing"
    );
    let no_aud = f.signer.sign(&claims()).await.unwrap();
    assert!(f.verifier.verify::<kms_jwt::Claims>(&no_aud).map(|v| v.claims).is_ok(), "no aud, none expected");
    assert_eq!(
        f.verifier.clone().with_audience("api").verify::<kms_jwt::Claims>(&for_billing).map(|v| v.claims).unwrap_err(),
        TokenError::Audience
    );
}

#[test]
fn an_rsa_1024_key_is_refused_at_load() {
    let mut n = vec![0xc5u8; 128];
    n[127] = 0x01;
    let err = Jwk::from_json(&json!({"kty": "RSA", "n": kms_jwt::fuzzing::b64_encode(&n), "e": "AQAB"})).unwrap_err();
    assert_eq!(err.to_string(), "invalid key: RSA key has 1024 bits; at least 2048 are required");
}

#[test]
fn huge_inputs_are_refused_before_any_decoding() {
    let f = fixture(Algorithm::ES256);
    let dots = ".".repeat(1 << 20);
    assert_eq!(
        f.verifier.verify::<kms_jwt::Claims>(&dots).map(|v| v.claims).unwrap_err(),
        TokenError::TooLong { len: 1 << 20, max: 65_536 }
    );
    let big = format!("{}.{}.{}", "A".repeat(3 << 20), "A".repeat(3 << 20), "A".repeat(1 << 20));
    assert!(matches!(
        f.verifier.verify::<kms_jwt::Claims>(&big).map(|v| v.claims).unwrap_err(),
        TokenError::TooLong { .. }
    ));
    // Even with the bound lifted, a megabyte of dots is a clean segment error, not a panic.
    let unbounded = f.verifier.clone().with_max_token_len(usize::MAX);
    assert_eq!(
        unbounded.verify::<kms_jwt::Claims>(&dots).map(|v| v.claims).unwrap_err(),
        TokenError::Segments((1 << 20) + 1)
    );
}
