//! `KmsSigner` against `LocalStack` over HTTP: every key spec with every algorithm it signs,
//! cross-checked by our verifier, jsonwebtoken, openssl and `PyJWT`; and each typed error
//! from a real condition.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use jsonwebtoken::Validation;
use kms_jwt::kms::{KmsOptions, KmsSigner};
use kms_jwt::{Algorithm, Claims, Error, JwtSigner, KeyIdMode, PublicKey, Signer, Verifier, VerifyingKey};

const FAR_FUTURE: i64 = 4_102_444_800;

const SPECS: [(&str, &[Algorithm]); 6] = [
    (
        "RSA_2048",
        &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512],
    ),
    (
        "RSA_3072",
        &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512],
    ),
    ("ECC_NIST_P256", &[Algorithm::ES256]),
    ("ECC_NIST_P384", &[Algorithm::ES384]),
    ("ECC_NIST_P521", &[Algorithm::ES512]),
    ("ECC_SECG_P256K1", &[Algorithm::ES256K]),
];

#[tokio::test]
async fn every_key_spec_and_algorithm_verifies_everywhere() {
    let client = support::client().await;
    let claims = Claims::new().subject("test-user").issuer("my-lambda").expires_at(FAR_FUTURE);
    let mut pyjwt_cases = Vec::new();
    let mut tokens_signed = 0;
    for (spec, algs) in SPECS {
        let key_id = support::signing_key(&client, spec).await;
        for &alg in algs {
            let signer = JwtSigner::new(
                KmsSigner::builder(&support::kms().await, &key_id).algorithm(alg).build().await.unwrap(),
            )
            .unwrap();
            let token = signer.sign(&claims).await.unwrap_or_else(|e| panic!("{spec} {alg}: {e}"));
            tokens_signed += 1;
            let public = signer.signer().public_key().clone();

            // Ours.
            let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None).unwrap()]);
            assert_eq!(verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap(), claims, "{spec} {alg}");

            // jsonwebtoken, where it implements the algorithm.
            if let Some(theirs) = support::jsonwebtoken_alg(alg) {
                let key = support::jsonwebtoken_key(&public);
                jsonwebtoken::decode::<serde_json::Value>(&token, &key, &Validation::new(theirs))
                    .unwrap_or_else(|e| panic!("jsonwebtoken {spec} {alg}: {e}"));
            }

            // openssl, with the ECDSA signature converted back to DER.
            let (input, sig) = token.rsplit_once('.').unwrap();
            let out =
                support::openssl_verify(&public.to_pem(), alg, input, &kms_jwt::fuzzing::b64_decode(sig).unwrap());
            assert!(
                out.status.success(),
                "openssl {spec} {alg}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );

            pyjwt_cases.push((token, public.to_pem(), alg.name().to_owned()));
        }
    }
    assert_eq!(tokens_signed, 16);
    for (result, (_, _, alg)) in support::pyjwt_verify(&pyjwt_cases).into_iter().zip(&pyjwt_cases) {
        let claims_seen = result.unwrap_or_else(|e| panic!("PyJWT {alg}: {e}"));
        assert_eq!(claims_seen["sub"], "test-user", "PyJWT {alg}");
    }
}

#[tokio::test]
async fn key_id_arn_and_alias_resolve_to_the_same_key_and_kid_is_the_thumbprint() {
    let client = support::client().await;
    let key_id = support::signing_key(&client, "ECC_NIST_P256").await;
    let alias = support::unique("alias/kms-jwt-test");
    client.create_alias().alias_name(&alias).target_key_id(&key_id).send().await.unwrap();
    let spki = client.get_public_key().key_id(&key_id).send().await.unwrap().public_key.unwrap();
    let expected = PublicKey::from_spki_der(spki.as_ref()).unwrap();
    assert_eq!(expected.to_spki_der(), spki.as_ref(), "our SPKI encoding is KMS's");

    let by_id = KmsSigner::new(&support::kms().await, &key_id).await.unwrap();
    let arn = by_id.key().key.arn.clone();
    let bare_alias = alias.trim_start_matches("alias/").to_owned();
    for key in [key_id.as_str(), arn.as_str(), alias.as_str(), bare_alias.as_str()] {
        let signer = JwtSigner::new(KmsSigner::new(&support::kms().await, key).await.unwrap()).unwrap();
        assert_eq!(signer.signer().key().key.arn, arn, "{key}");
        assert_eq!(signer.signer().algorithm(), Algorithm::ES256);
        assert_eq!(signer.kid(), expected.thumbprint(), "{key}");
        let token = signer.sign(&Claims::new().expires_at(FAR_FUTURE)).await.unwrap();
        let header = kms_jwt::decode_unverified(&token).unwrap().0;
        assert_eq!(header["kid"], expected.thumbprint());
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header.len(), 3, "alg, typ and kid only: {header:?}");
    }
    let with_key_id = JwtSigner::with_kid(by_id, KeyIdMode::Fixed(key_id.clone())).unwrap();
    assert_eq!(with_key_id.kid(), key_id);
}

#[tokio::test]
async fn claims_over_4kb_are_signed_as_a_digest() {
    let client = support::client().await;
    let key_id = support::signing_key(&client, "ECC_NIST_P384").await;
    let signer = JwtSigner::new(KmsSigner::new(&support::kms().await, &key_id).await.unwrap()).unwrap();
    let claims = Claims::new().expires_at(FAR_FUTURE).claim("blob", "x".repeat(20_000));
    let token = signer.sign(&claims).await.unwrap();
    assert!(token.len() > 20_000);
    let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None).unwrap()]);
    assert_eq!(verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap(), claims);
}

#[tokio::test]
async fn each_kms_failure_is_its_typed_error() {
    let client = support::client().await;
    let missing = support::unique("alias/kms-jwt-missing");
    let err = KmsSigner::new(&support::kms().await, &missing).await.unwrap_err();
    assert!(matches!(&err, Error::KeyNotFound(k) if *k == missing), "{err:?}");
    assert_eq!(err.to_string(), format!("kms key {missing} was not found"));

    let disabled = support::signing_key(&client, "ECC_NIST_P256").await;
    client.disable_key().key_id(&disabled).send().await.unwrap();
    let err = KmsSigner::new(&support::kms().await, &disabled).await.unwrap_err();
    assert!(matches!(err, Error::KeyDisabled(_)), "{err:?}");

    let deleted = support::signing_key(&client, "ECC_NIST_P256").await;
    client.schedule_key_deletion().key_id(&deleted).pending_window_in_days(7).send().await.unwrap();
    let err = KmsSigner::new(&support::kms().await, &deleted).await.unwrap_err();
    assert!(matches!(err, Error::KeyPendingDeletion(_)), "{err:?}");

    let encrypt = support::create_key(&client, KeyUsageType::EncryptDecrypt, KeySpec::SymmetricDefault).await;
    let err = KmsSigner::new(&support::kms().await, &encrypt).await.unwrap_err();
    assert!(matches!(&err, Error::WrongKeyUsage { usage, .. } if usage == "ENCRYPT_DECRYPT"), "{err:?}");

    let rsa = support::signing_key(&client, "RSA_2048").await;
    let err = KmsSigner::builder(&support::kms().await, &rsa).algorithm(Algorithm::ES256).build().await.unwrap_err();
    assert!(matches!(err, Error::AlgorithmMismatch { alg: Algorithm::ES256, .. }), "{err:?}");

    // A signer built while the key was enabled reports the state change at Sign time.
    let later = support::signing_key(&client, "ECC_NIST_P256").await;
    let signer = JwtSigner::new(KmsSigner::new(&support::kms().await, &later).await.unwrap()).unwrap();
    client.disable_key().key_id(&later).send().await.unwrap();
    let err = signer.sign(&Claims::new()).await.unwrap_err();
    assert!(matches!(err, Error::KeyDisabled(_)), "{err:?}");

    let unreachable = KmsOptions { max_attempts: 2, ..KmsOptions::endpoint("http://127.0.0.1:9", "us-east-1") };
    let err = KmsSigner::new(&unreachable.connect().await.unwrap(), &rsa).await.unwrap_err();
    assert!(matches!(&err, Error::Transport { reason, .. } if reason.contains("refused")), "{err:?}");
    // The SDK's error is kept as the source, for callers who want all of it.
    let source = std::error::Error::source(&err).expect("the SDK error is the source");
    assert!(source.to_string().contains("dispatch failure"), "{source}");
}

#[tokio::test]
async fn local_and_kms_signers_switch_at_run_time_behind_one_arc_dyn_signer() {
    use std::sync::Arc;

    let client = support::client().await;
    let key_id = support::signing_key(&client, "ECC_NIST_P256").await;
    let kms: Arc<dyn Signer> = Arc::new(KmsSigner::new(&support::kms().await, &key_id).await.unwrap());
    let local: Arc<dyn Signer> = Arc::new(kms_jwt::LocalSigner::generate(Algorithm::ES256).unwrap());
    for (name, signer) in [("kms", kms), ("local", local)] {
        let signer = JwtSigner::new(signer).unwrap();
        let token = signer.sign(&Claims::new().subject(name).expires_at(4_102_444_800)).await.unwrap();
        let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None).unwrap()]);
        assert_eq!(verifier.verify::<kms_jwt::Claims>(&token).map(|v| v.claims).unwrap().get("sub").unwrap(), name);
    }
}
