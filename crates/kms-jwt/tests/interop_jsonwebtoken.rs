//! Interoperability both ways with the `jsonwebtoken` crate, a verifier and signer we did
//! not write, for every algorithm it implements that KMS also signs with.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use der::Decode as _;
use der::asn1::OctetStringRef;
use jsonwebtoken::{EncodingKey, Header, Validation};
use kms_jwt::{Algorithm, Claims, JwtSigner, LocalSigner, PublicKey, Signer, Verifier, VerifyingKey};
use serde_json::{Value, json};

const ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// `PrivateKeyInfo` (RFC 5208), to hand jsonwebtoken the PKCS#1 key inside PKCS#8.
#[derive(der::Sequence)]
struct PrivateKeyInfo<'a> {
    version: u8,
    algorithm: spki::AlgorithmIdentifierRef<'a>,
    private_key: &'a OctetStringRef,
}

fn encoding_key(signer: &LocalSigner) -> EncodingKey {
    let pkcs8 = signer.to_pkcs8_der().unwrap();
    match signer.public_key() {
        PublicKey::Rsa { .. } => {
            EncodingKey::from_rsa_der(PrivateKeyInfo::from_der(&pkcs8).unwrap().private_key.as_bytes())
        }
        PublicKey::Ec { .. } => EncodingKey::from_ec_der(&pkcs8),
        PublicKey::Ed25519 { .. } => EncodingKey::from_ed_der(&pkcs8),
        PublicKey::MlDsa { .. } => unreachable!("jsonwebtoken has no ML-DSA"),
    }
}

fn claims() -> Value {
    json!({"sub": "test-user", "iss": "my-lambda", "exp": 4_102_444_800_i64, "scope": ["a", "b"]})
}

#[tokio::test]
async fn jsonwebtoken_verifies_our_tokens() {
    for alg in ALGS {
        let signer = JwtSigner::new(LocalSigner::generate(alg).unwrap()).unwrap();
        let token = signer.sign(&Claims::from_map(claims().as_object().unwrap().clone()).unwrap()).await.unwrap();
        let mut validation = Validation::new(support::jsonwebtoken_alg(alg).unwrap());
        validation.set_issuer(&["my-lambda"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &support::jsonwebtoken_key(signer.signer().public_key()),
            &validation,
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(data.claims, claims(), "{alg}");
        assert_eq!(data.header.kid.as_deref(), Some(signer.kid()), "{alg}");
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
    }
}

#[tokio::test]
async fn we_verify_jsonwebtoken_tokens() {
    for alg in ALGS {
        let signer = LocalSigner::generate(alg).unwrap();
        let mut header = Header::new(support::jsonwebtoken_alg(alg).unwrap());
        header.kid = Some("theirs".into());
        let token = jsonwebtoken::encode(&header, &claims(), &encoding_key(&signer)).unwrap();
        let key = VerifyingKey::new(signer.public_key().clone(), alg, Some("theirs".into())).unwrap();
        let verified = Verifier::new(vec![key])
            .with_issuer("my-lambda")
            .verify::<kms_jwt::Claims>(&token)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(Value::Object(verified.claims.into_map()), claims(), "{alg}");
    }
}
