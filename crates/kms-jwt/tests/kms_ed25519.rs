//! Ed25519 keys in KMS (`ECC_NIST_EDWARDS25519`, `ED25519_SHA_512` with `MessageType=RAW`)
//! against `MiniStack`, the emulator here that has them (`LocalStack` 4.14 refuses the spec):
//! `EdDSA` and RFC 9864's `Ed25519` tokens cross-checked by jsonwebtoken, openssl, `PyJWT` and
//! jose (npm);
//! the 4,096-byte limit of a raw message, checked before KMS is called; and a key set that
//! moves from RSA to Ed25519 by rotation.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use jsonwebtoken::Validation;
use kms_jwt::fuzzing::{b64_decode, b64_encode};
use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest};
use kms_jwt::kms::KmsSigner;
use kms_jwt::{Algorithm, Claims, Error, Jwks, JwtSigner, PublicKey, Signer, TokenError, Verifier};
use serde::de::IgnoredAny;
use support::proxy::FaultProxy;

const FAR_FUTURE: i64 = 4_102_444_800;

fn claims() -> Claims {
    Claims::new().subject("test-user").issuer("my-lambda").expires_at(FAR_FUTURE)
}

#[tokio::test]
async fn ed25519_tokens_from_kms_verify_everywhere() {
    let kms = support::ministack_kms().await;
    let key_id = support::signing_key(kms.sdk(), "ECC_NIST_EDWARDS25519").await;
    let spki = kms.sdk().get_public_key().key_id(&key_id).send().await.unwrap().public_key.unwrap();

    let eddsa = JwtSigner::new(KmsSigner::new(&kms, &key_id).await.unwrap()).unwrap();
    assert_eq!(eddsa.signer().algorithm(), Algorithm::EdDSA, "EdDSA unless asked otherwise");
    let public = eddsa.signer().public_key().clone();
    assert!(matches!(&public, PublicKey::Ed25519 { x } if x.len() == 32), "{public:?}");
    assert_eq!(public.to_spki_der(), spki.as_ref(), "our SPKI encoding is KMS's");
    let token = eddsa.sign(&claims()).await.unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = b64_decode(signature).unwrap();
    assert_eq!(signature.len(), 64);

    // Ours, from the JWKS a verifier is given.
    let jwk = eddsa.jwk().to_json();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let ours = Verifier::from_jwks(&Jwks { keys: vec![eddsa.jwk()] }, None).unwrap();
    assert_eq!(ours.verify::<Claims>(&token).unwrap().claims, claims());
    // jsonwebtoken.
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["my-lambda"]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &support::jsonwebtoken_key(&public), &validation).unwrap();
    // openssl, over the raw signing input.
    let out = support::openssl_verify(&public.to_pem(), Algorithm::EdDSA, input, &signature);
    assert!(
        out.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // PyJWT.
    let seen = support::pyjwt_verify(&[(token.clone(), public.to_pem(), "EdDSA".into())]);
    assert_eq!(seen[0].as_ref().unwrap()["sub"], "test-user");

    // RFC 9864's fully specified name, on request: the same key and signature scheme.
    let fully =
        JwtSigner::new(KmsSigner::builder(&kms, &key_id).algorithm(Algorithm::Ed25519).build().await.unwrap()).unwrap();
    let named = fully.sign(&claims()).await.unwrap();
    assert_eq!(kms_jwt::decode_unverified(&named).unwrap().0["alg"], "Ed25519");
    assert_eq!(fully.jwk().to_json()["alg"], "Ed25519");
    let pinned = Verifier::from_jwks(&Jwks { keys: vec![fully.jwk()] }, None).unwrap();
    assert_eq!(pinned.verify::<Claims>(&named).unwrap().claims, claims());
    // Each key is pinned to one name: a token cannot pick the other.
    assert!(matches!(
        ours.verify::<IgnoredAny>(&named).unwrap_err(),
        TokenError::AlgNotAllowed { pinned: Algorithm::EdDSA, .. }
    ));
    assert!(matches!(
        pinned.verify::<IgnoredAny>(&token).unwrap_err(),
        TokenError::AlgNotAllowed { pinned: Algorithm::Ed25519, .. }
    ));

    // jose (npm), under both names.
    let jose = support::jose(
        &[(token, eddsa.jwk().to_json(), "EdDSA".into()), (named, fully.jwk().to_json(), "Ed25519".into())],
        &[],
    );
    for seen in jose.verified {
        assert_eq!(seen.unwrap()["claims"]["sub"], "test-user");
    }

    // An ECDSA algorithm on an Ed25519 key is refused before any signature.
    let err = KmsSigner::builder(&kms, &key_id).algorithm(Algorithm::ES256).build().await.unwrap_err();
    assert!(matches!(&err, Error::AlgorithmMismatch { alg: Algorithm::ES256, .. }), "{err}");
}

/// A protected header (`{"alg":"EdDSA"}`, padded with spaces) and a payload whose signing input
/// is exactly `input_len` bytes.
fn header_and_payload_for(input_len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut header = br#"{"alg":"EdDSA"}"#.to_vec();
    loop {
        let header_b64 = b64_encode(&header).len();
        let rest = input_len - header_b64 - 1;
        if rest.is_multiple_of(4) {
            return (header, vec![b'x'; rest / 4 * 3]);
        }
        header.insert(header.len() - 1, b' ');
    }
}

#[tokio::test]
async fn a_signing_input_over_4096_bytes_is_refused_before_kms_is_called() {
    let kms = support::ministack_kms().await;
    let key_id = support::signing_key(kms.sdk(), "ECC_NIST_EDWARDS25519").await;
    let proxy = FaultProxy::forwarding(&support::ministack_endpoint());
    let via_proxy = kms_jwt::kms::KmsOptions::endpoint(&proxy.url, "us-east-1").connect().await.unwrap();
    let signer = KmsSigner::new(&via_proxy, &key_id).await.unwrap();

    // Exactly 4,096 bytes: KMS signs it.
    let (header, payload) = header_and_payload_for(4096);
    let token = kms_jwt::fuzzing::sign_compact(&signer, &header, &payload).await.unwrap();
    assert_eq!(token.rsplit_once('.').unwrap().0.len(), 4096);
    assert_eq!(proxy.count("Sign"), 1);

    // One payload group more: refused here, with a clear error, and KMS never asked.
    let (header, mut payload) = header_and_payload_for(4096);
    payload.extend_from_slice(b"xxx");
    let err = kms_jwt::fuzzing::sign_compact(&signer, &header, &payload).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid claims: the EdDSA signing input is 4100 bytes; kms signs at most 4096 bytes of a raw message"
    );
    assert_eq!(proxy.count("Sign"), 1, "no Sign call for a message KMS would refuse");

    // RSA and ECDSA send a digest: their size is not limited (kms_signer.rs signs 5 KB claims).
}

#[tokio::test]
async fn a_key_set_moves_from_rsa_to_ed25519_by_rotation_and_its_jwks_carries_both() {
    let kms = support::ministack_kms().await;
    // A set's keys sign tokens within its lifetime policy (one hour by default).
    let short = Claims::new().subject("test-user").expires_at(kms_jwt::now() + 600);
    let sets = KeySets::new(kms.clone());
    let name = KeySetName::parse(&support::unique("kms-jwt-ed")).unwrap();
    let req = ProvisionRequest {
        name: name.clone(),
        key_spec: "RSA_2048".into(),
        description: "test".into(),
        tags: vec![],
        max_token_ttl: kms_jwt::keyset::DEFAULT_MAX_TOKEN_TTL,
        regions: vec![],
        pending_window_days: 7,
    };
    sets.provision(&req).await.unwrap();
    let rsa_token =
        JwtSigner::new(KmsSigner::new(&kms, &name.current()).await.unwrap()).unwrap().sign(&short).await.unwrap();

    let policy = kms_jwt::keyset::RotationPolicy {
        key_spec: Some("ECC_NIST_EDWARDS25519".into()),
        ..support::rotation_policy(None, false)
    };
    let rotated = sets.rotate(&name, &policy).await.unwrap();
    assert!(rotated.rotated);
    let current = rotated.state.current.as_ref().unwrap();
    assert_eq!(current.spec, kms_jwt::kms::KeySpec::EccNistEdwards25519);
    assert_eq!(rotated.state.previous.as_ref().unwrap().spec, kms_jwt::kms::KeySpec::Rsa2048);
    let ed_token =
        JwtSigner::new(KmsSigner::new(&kms, &name.current()).await.unwrap()).unwrap().sign(&short).await.unwrap();
    assert_eq!(kms_jwt::decode_unverified(&ed_token).unwrap().0["alg"], "EdDSA");

    // Through the overlap the set's JWKS has both keys, each pinned to its own algorithm, and
    // the discovery document names both.
    let jwks = sets.jwks(&name, None).await.unwrap();
    let mut algs: Vec<_> = jwks.keys.iter().map(|k| k.alg.unwrap()).collect();
    algs.sort_by_key(|a| a.name());
    assert_eq!(algs, [Algorithm::EdDSA, Algorithm::RS256]);
    let discovery = kms_jwt::publish::openid_configuration("https://issuer.example", &jwks);
    assert_eq!(discovery["id_token_signing_alg_values_supported"], serde_json::json!(["EdDSA", "RS256"]));
    let verifier = Verifier::from_jwks(&jwks, None).unwrap();
    for token in [&rsa_token, &ed_token] {
        assert_eq!(verifier.verify::<Claims>(token).unwrap().claims, short);
    }
}
