//! Interoperability both ways with jose (npm) on Node.js 24, a verifier and signer we did not
//! write, for the algorithms jsonwebtoken and `PyJWT` lack or name differently: ML-DSA-44, 65
//! and 87 (RFC 9964, `AKP` keys), and Ed25519 as `EdDSA` and RFC 9864's `Ed25519`. jose also
//! computes each key's thumbprint, which must be the `kid` we gave it.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use kms_jwt::{Algorithm, Claims, Jwk, Jwks, JwtSigner, LocalSigner, TokenError, Verifier};
use serde::de::IgnoredAny;

const ALGS: [Algorithm; 5] =
    [Algorithm::MlDsa44, Algorithm::MlDsa65, Algorithm::MlDsa87, Algorithm::EdDSA, Algorithm::Ed25519];

#[tokio::test]
async fn jose_verifies_our_tokens_and_computes_our_kid() {
    let claims = Claims::new().subject("test-user").issuer("kms-jwt").expires_at(kms_jwt::now() + 600);
    let mut cases = Vec::new();
    let mut kids = Vec::new();
    for alg in ALGS {
        let signer = JwtSigner::new(LocalSigner::generate(alg).unwrap()).unwrap();
        let token = signer.sign(&claims).await.unwrap();
        cases.push((token, signer.jwk().to_json(), alg.name().to_owned()));
        kids.push(signer.kid().to_owned());
    }
    let jose = support::jose(&cases, &[]);
    for ((alg, kid), seen) in ALGS.iter().zip(&kids).zip(jose.verified) {
        let seen = seen.unwrap_or_else(|e| panic!("jose {alg}: {e}"));
        assert_eq!(seen["claims"]["sub"], "test-user", "{alg}");
        assert_eq!(seen["thumbprint"], kid.as_str(), "{alg}: jose's thumbprint is our kid");
    }
}

#[test]
fn we_verify_jose_tokens_and_refuse_them_tampered() {
    let names: Vec<&str> = ALGS.iter().map(|a| a.name()).collect();
    let jose = support::jose(&[], &names);
    assert_eq!(jose.signed.len(), ALGS.len());
    for (alg, token, jwk) in jose.signed {
        let key = Jwk::from_json(&jwk).unwrap().unwrap();
        assert_eq!(key.kid.as_deref(), Some(key.key.thumbprint().as_str()), "{alg}: jose's thumbprint is ours");
        let verifier = Verifier::from_jwks(&Jwks { keys: vec![key] }, None).unwrap();
        let accepted = verifier.verify::<Claims>(&token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(accepted.claims.get("sub").unwrap(), "from-jose", "{alg}");
        assert_eq!(accepted.header["alg"], alg.as_str());

        // One bit of the signature flipped: refused.
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut signature = kms_jwt::fuzzing::b64_decode(signature).unwrap();
        signature[10] ^= 1;
        let tampered = format!("{input}.{}", kms_jwt::fuzzing::b64_encode(&signature));
        assert_eq!(verifier.verify::<IgnoredAny>(&tampered).unwrap_err(), TokenError::BadSignature, "{alg}");
    }
}
