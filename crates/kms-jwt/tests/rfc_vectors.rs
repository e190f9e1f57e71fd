//! Published vectors: RFC 7515 appendix A.2 and A.3, RFC 7520 section 4.1, RFC 8037 appendix A.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use der::Encode as _;
use der::asn1::UintRef;
use kms_jwt::{Algorithm, Claims, Jwk, LocalSigner, TokenError, Verifier, VerifyingKey};
use serde::de::IgnoredAny;
use serde_json::json;
use serde_json::value::RawValue;

const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const A2_D: &str = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
const A2_P: &str = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
const A2_Q: &str = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";
const A2_DP: &str = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0";
const A2_DQ: &str = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU";
const A2_QI: &str = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U";
const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_A3_PAYLOAD: &[u8] = b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// RFC 7520 figure 4 (bilbo.baggins@hobbiton.example) and section 4.1.
const C_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";
const C_D: &str = "bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ";
const C_P: &str = "3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k";
const C_Q: &str = "uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc";
const C_DP: &str = "B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPRt5OBOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik";
const C_DQ: &str = "CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwTxYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8";
const C_QI: &str = "3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaKe-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4";
const C_PAYLOAD: &str = "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to.";
const C_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";

// RFC 8037 appendix A.1 (the RFC 8032 test key), A.3 (its thumbprint) and A.4 (a JWS).
const ED_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const ED_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
const ED_PAYLOAD: &[u8] = b"Example of Ed25519 signing";
const ED_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// Builds a PKCS#1 `RSAPrivateKey` from the JWK members of an RFC example key.
fn rsa_private_der(n: &str, d: &str, p: &str, q: &str, dp: &str, dq: &str, qi: &str) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> =
        [n, "AQAB", d, p, q, dp, dq, qi].iter().map(|s| kms_jwt::fuzzing::b64_decode(s).unwrap()).collect();
    let uint = |i: usize| UintRef::new(&bytes[i]).unwrap();
    pkcs1::RsaPrivateKey {
        modulus: uint(0),
        public_exponent: uint(1),
        private_exponent: uint(2),
        prime1: uint(3),
        prime2: uint(4),
        exponent1: uint(5),
        exponent2: uint(6),
        coefficient: uint(7),
        other_prime_infos: None,
    }
    .to_der()
    .unwrap()
}

fn verifier_for(jwk: &serde_json::Value, alg: Algorithm) -> Verifier {
    let jwk = Jwk::from_json(jwk).unwrap().unwrap();
    Verifier::new(vec![VerifyingKey::from_jwk(&jwk, Some(alg)).unwrap()])
}

#[tokio::test]
async fn rfc7515_a2_rs256_signs_and_verifies_exactly() {
    let der = rsa_private_der(A2_N, A2_D, A2_P, A2_Q, A2_DP, A2_DQ, A2_QI);
    let signer = LocalSigner::from_rsa_der(Algorithm::RS256, &der).unwrap();
    let token = kms_jwt::fuzzing::sign_compact(&signer, br#"{"alg":"RS256"}"#, A2_A3_PAYLOAD).await.unwrap();
    assert_eq!(token, A2_TOKEN, "RS256 is deterministic: the exact RFC bytes");

    let verifier = verifier_for(&json!({"kty": "RSA", "n": A2_N, "e": "AQAB"}), Algorithm::RS256);
    // As a JWT it is long expired (exp 1300819380 is March 2011).
    assert_eq!(verifier.verify::<IgnoredAny>(A2_TOKEN).unwrap_err(), TokenError::Expired { exp: 1_300_819_380 });
    let then = verifier.clone().at(1_300_819_000);
    let raw = then.verify::<Box<RawValue>>(A2_TOKEN).unwrap().claims;
    assert_eq!(raw.get().as_bytes(), A2_A3_PAYLOAD, "the payload exactly as signed");
    let claims = then.verify::<Claims>(A2_TOKEN).unwrap().claims;
    assert_eq!(claims.get("iss").unwrap(), "joe");
    assert_eq!(claims.get("http://example.com/is_root").unwrap(), true);
}

#[test]
fn rfc7515_a3_es256_verifies() {
    let verifier = verifier_for(&json!({"kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y}), Algorithm::ES256);
    let then = verifier.clone().at(1_300_819_380);
    assert_eq!(then.verify::<Box<RawValue>>(A3_TOKEN).unwrap().claims.get().as_bytes(), A2_A3_PAYLOAD);
    let claims = then.verify::<Claims>(A3_TOKEN).unwrap().claims;
    assert_eq!(claims.get("exp").unwrap(), 1_300_819_380);
    // The same signature over another payload does not verify.
    let (head, rest) = A3_TOKEN.split_once('.').unwrap();
    let signature = rest.rsplit('.').next().unwrap();
    let tampered = format!("{head}.{}.{signature}", kms_jwt::fuzzing::b64_encode(br#"{"iss":"joe","exp":1300819380}"#));
    assert_eq!(then.verify::<IgnoredAny>(&tampered).unwrap_err(), TokenError::BadSignature);
}

#[tokio::test]
async fn rfc7520_4_1_rs256_exact_bytes_from_the_local_signer() {
    let der = rsa_private_der(C_N, C_D, C_P, C_Q, C_DP, C_DQ, C_QI);
    let signer = LocalSigner::from_rsa_der(Algorithm::RS256, &der).unwrap();
    let header = br#"{"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"}"#;
    let token = kms_jwt::fuzzing::sign_compact(&signer, header, C_PAYLOAD.as_bytes()).await.unwrap();
    assert_eq!(token, C_TOKEN);

    // Its payload is text, not JWT claims: the signature is checked with the key itself.
    let jwk = json!({"kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "use": "sig", "n": C_N, "e": "AQAB"});
    let key = VerifyingKey::from_jwk(&Jwk::from_json(&jwk).unwrap().unwrap(), Some(Algorithm::RS256)).unwrap();
    assert_eq!(key.kid(), Some("bilbo.baggins@hobbiton.example"));
    let (signing_input, signature) = C_TOKEN.rsplit_once('.').unwrap();
    assert!(key.verify_signature(signing_input.as_bytes(), &kms_jwt::fuzzing::b64_decode(signature).unwrap()));
    assert!(!key.verify_signature(b"x", &kms_jwt::fuzzing::b64_decode(signature).unwrap()));
}

#[tokio::test]
async fn rfc8037_a_ed25519_key_thumbprint_and_exact_signature() {
    let jwk = Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X})).unwrap().unwrap();
    assert_eq!(jwk.key.thumbprint(), ED_THUMBPRINT, "A.3");
    let private = json!({"kty": "OKP", "crv": "Ed25519", "d": ED_D, "x": ED_X});
    assert_eq!(
        Jwk::from_json(&private).unwrap_err().to_string(),
        "invalid key: JWK contains a private key; publish public keys only"
    );

    // A.4: Ed25519 is deterministic, so the local signer must produce the RFC's bytes.
    let seed = kms_jwt::fuzzing::b64_decode(ED_D).unwrap();
    let signer = LocalSigner::from_ed25519_seed(Algorithm::EdDSA, &seed).unwrap();
    assert_eq!(kms_jwt::Signer::public_key(&signer), &jwk.key, "the seed gives the RFC's public key");
    let token = kms_jwt::fuzzing::sign_compact(&signer, br#"{"alg":"EdDSA"}"#, ED_PAYLOAD).await.unwrap();
    assert_eq!(token, ED_JWS);

    // A.5: the signature verifies with the public key, pinned to EdDSA, and only over its input.
    let key = VerifyingKey::from_jwk(&jwk, None).unwrap();
    assert_eq!(key.algorithm(), Algorithm::EdDSA, "an OKP key without alg is pinned to EdDSA");
    let (signing_input, signature) = ED_JWS.rsplit_once('.').unwrap();
    let signature = kms_jwt::fuzzing::b64_decode(signature).unwrap();
    assert!(key.verify_signature(signing_input.as_bytes(), &signature));
    assert!(!key.verify_signature(b"eyJhbGciOiJFZERTQSJ9.eA", &signature));
    assert!(!key.verify_signature(signing_input.as_bytes(), &signature[..63]), "a truncated signature");
}
