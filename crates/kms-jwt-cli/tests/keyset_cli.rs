//! `kms-jwt keyset` against LocalStack through real processes: racing rotations and
//! provisions (two and three at once, repeated), the lifetime policy, `--if-older-than`, status.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::process::{Output, Stdio};

use kms_jwt::keyset::{KeySetName, TAG_MAX_TOKEN_TTL};
use kms_jwt::kms::KmsSigner;
use kms_jwt::{Claims, JwtSigner, Verifier};
use kms_jwt_test_support as support;

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts `n` commands `kms-jwt ARGS`, then waits for all: they race from the same moment.
fn race(n: usize, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            let mut cmd = support::kms_jwt!().localstack().command();
            cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

/// Every enabled key tagged with the set has an alias; returns the enabled keys.
async fn assert_no_stray_key(name: &KeySetName, context: &str) -> BTreeSet<String> {
    let enabled: BTreeSet<String> = support::keys_of_set(&support::client().await, name)
        .await
        .into_iter()
        .filter(|(_, state)| state == "Enabled")
        .map(|(id, _)| id)
        .collect();
    let aliased: BTreeSet<String> = [
        support::alias_target(&name.current()).await,
        support::alias_target(&name.previous()).await,
        support::alias_target(&name.next()).await,
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(enabled.is_subset(&aliased), "{context}: enabled keys {enabled:?}, aliased {aliased:?}");
    enabled
}

fn one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[tokio::test]
async fn racing_rotations_take_effect_once_and_leave_nothing_behind() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (round, n) in [2, 3, 2, 3, 2, 3].into_iter().enumerate() {
        let (sets, name) = support::key_set("ECC_NIST_P256").await;
        let old = support::alias_target(&name.current()).await.unwrap();
        let signer = JwtSigner::new(KmsSigner::new(&support::kms().await, &name.current()).await.unwrap()).unwrap();
        let before = signer.sign(&Claims::new().subject("before").expires_at(kms_jwt::now() + 600)).await.unwrap();

        let outs = race(n, &["keyset", "rotate", "--key", name.name()]);
        let mut rotated = 0;
        for out in &outs {
            match out.status.code() {
                Some(0) => {
                    let summary = json(out);
                    if summary["rotated"] == true {
                        rotated += 1;
                        *seen.entry("rotated".into()).or_default() += 1;
                    } else {
                        *seen.entry("found done (exit 0)".into()).or_default() += 1;
                    }
                }
                Some(2) => {
                    let err = one_line(out);
                    let kind = if err.contains("another operation on key set") {
                        "busy (exit 2)"
                    } else if err.contains("less than the minimum overlap") {
                        "overlap guard (exit 2)"
                    } else {
                        panic!("round {round}: unexpected error {err}")
                    };
                    *seen.entry(kind.into()).or_default() += 1;
                }
                other => panic!("round {round}: exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
            }
        }
        assert_eq!(rotated, 1, "round {round}: exactly one rotation takes effect");
        let current = support::alias_target(&name.current()).await.unwrap();
        assert_ne!(current, old, "round {round}");
        assert_eq!(
            support::alias_target(&name.previous()).await.unwrap(),
            old,
            "round {round}: the old current stays published"
        );
        assert_eq!(support::alias_target(&name.next()).await, None, "round {round}: next is empty");
        assert_eq!(support::alias_target(&name.lock()).await, None, "round {round}: the lock is released");
        let enabled = assert_no_stray_key(&name, &format!("round {round}")).await;
        assert_eq!(enabled, BTreeSet::from([old.clone(), current]), "round {round}: one new key, no other");
        let verifier = Verifier::from_jwks(&sets.jwks(&name, None).await.unwrap(), None).unwrap();
        verifier.verify::<kms_jwt::Claims>(&before).map(|v| v.claims).unwrap();
    }
    eprintln!("rotation races (2 and 3 processes, 6 rounds): {seen:?}");
}

#[tokio::test]
async fn racing_provisions_make_one_set() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (round, n) in [2, 3, 2, 3, 2, 3].into_iter().enumerate() {
        let name = KeySetName::parse(&support::unique("kms-jwt-race")).unwrap();
        let outs = race(n, &["keyset", "provision", "--key", name.name(), "--key-spec", "ECC_NIST_P256"]);
        let mut created = 0;
        let mut key_ids = BTreeSet::new();
        for out in &outs {
            if out.status.code() == Some(2) {
                assert!(one_line(out).contains("another operation on key set"), "round {round}");
                *seen.entry("busy (exit 2)".into()).or_default() += 1;
                continue;
            }
            let summary = json(out);
            key_ids.insert(summary["key_id"].as_str().unwrap().to_owned());
            if summary["created"] == true {
                created += 1;
                *seen.entry("created".into()).or_default() += 1;
            } else {
                *seen.entry("found done (exit 0)".into()).or_default() += 1;
            }
        }
        assert_eq!(created, 1, "round {round}");
        let current = support::alias_target(&name.current()).await.unwrap();
        assert_eq!(key_ids, BTreeSet::from([current.clone()]), "round {round}: every run reports the one set");
        assert_eq!(support::alias_target(&name.next()).await, None, "round {round}");
        let enabled = assert_no_stray_key(&name, &format!("round {round}")).await;
        assert_eq!(enabled, BTreeSet::from([current]), "round {round}");
    }
    eprintln!("provision races (2 and 3 processes, 6 rounds): {seen:?}");
}

#[tokio::test]
async fn the_lifetime_policy_bounds_tokens_and_sets_the_overlap() {
    let name = support::unique("kms-jwt-ttl");
    let made = json(&support::kms_jwt!().localstack().output([
        "keyset",
        "provision",
        "--key",
        &name,
        "--key-spec",
        "ECC_NIST_P256",
        "--max-token-ttl",
        "1h",
    ]));
    assert_eq!(made["created"], true);

    // The signer refuses a token that would outlive the policy, and one without exp.
    let out = support::kms_jwt!().localstack().output(["sign", "--key", &name, "--ttl", "2h"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("exceeds the key's maximum token lifetime of 1h"));
    assert!(out.stdout.is_empty());
    let out = support::kms_jwt!().localstack().output(["sign", "--key", &name, "--ttl", "59m"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The default overlap is the lifetime plus the JWKS cache age (5m) plus clock skew (60s).
    json(&support::kms_jwt!().localstack().output(["keyset", "rotate", "--key", &name]));
    let out = support::kms_jwt!().localstack().output(["keyset", "rotate", "--key", &name]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_line(&out);
    assert!(err.contains("less than the minimum overlap of 1h 6m") && err.contains("--force"), "{err}");
    let status = json(&support::kms_jwt!().localstack().output(["keyset", "status", "--key", &name]));
    assert_eq!(status["policy"], serde_json::json!({"max_token_ttl": "1h", "min_overlap": "1h 6m"}));
    assert_eq!(status["keys"].as_array().unwrap().len(), 2);
    assert_eq!(status["keys"][1]["alias"], format!("alias/{name}/previous"));
    assert!(status["keys"][1]["demoted_at"].is_string() && status["previous_retirable_at"].is_string());
    assert!(status["lock"].is_null());
}

#[tokio::test]
async fn sets_made_before_the_policy_keep_todays_behaviour() {
    let (sets, name) = support::key_set("ECC_NIST_P256").await;
    // A set from before this change: no lifetime tag.
    let client = support::client().await;
    let key = support::alias_target(&name.current()).await.unwrap();
    client.untag_resource().key_id(&key).tag_keys(TAG_MAX_TOKEN_TTL).send().await.unwrap();
    let out = support::kms_jwt!().localstack().output(["sign", "--key", name.name(), "--ttl", "48h"]);
    assert_eq!(out.status.code(), Some(0), "no limit: {}", String::from_utf8_lossy(&out.stderr));
    json(&support::kms_jwt!().localstack().output(["keyset", "rotate", "--key", name.name()]));
    let out = support::kms_jwt!().localstack().output(["keyset", "rotate", "--key", name.name()]);
    assert!(one_line(&out).contains("less than the minimum overlap of 1d"));
    let status = kms_jwt_cli::keyset::status_json(&sets.status(&name).await.unwrap()).unwrap();
    assert_eq!(status["policy"]["max_token_ttl"], serde_json::Value::Null);
}

#[tokio::test]
async fn if_older_than_rotates_only_an_old_enough_key() {
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let before = support::alias_target(&name.current()).await.unwrap();
    let skipped = json(&support::kms_jwt!().localstack().output([
        "keyset",
        "rotate",
        "--key",
        name.name(),
        "--if-older-than",
        "90d",
    ]));
    assert_eq!(skipped["rotated"], false);
    assert_eq!(skipped["current"]["key_id"], before.as_str());
    assert_eq!(support::alias_target(&name.current()).await.unwrap(), before, "nothing changed");
    assert_eq!(support::alias_target(&name.previous()).await, None);
    // xtask's spelling, --alias, names the same flag.
    let done = json(&support::kms_jwt!().localstack().output([
        "keyset",
        "rotate",
        "--alias",
        name.name(),
        "--if-older-than",
        "0s",
    ]));
    assert_eq!(done["rotated"], true);
    assert_eq!(support::alias_target(&name.previous()).await.unwrap(), before);
}
