//! Key sets against LocalStack: idempotent provision, rotation continuity, the overlap
//! guard, dry runs, forced retirement, and interrupted rotations converging.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::time::Duration;

use aws_sdk_kms::Client;
use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest, RotationPolicy, TAG_KEY_SET, TAG_KID, TAG_MAX_TOKEN_TTL};
use kms_jwt::kms::KmsSigner;
use kms_jwt::{Claims, Error, JwtSigner, TokenError, Verifier};

fn policy(force: bool) -> RotationPolicy {
    support::rotation_policy(Some(Duration::from_secs(24 * 3600)), force)
}

async fn setup(spec: &str) -> (Client, KeySets, KeySetName) {
    let (sets, name) = support::key_set(spec).await;
    (support::client().await, sets, name)
}

async fn sign(name: &KeySetName) -> String {
    let signer = JwtSigner::new(KmsSigner::new(&support::kms().await, &name.current()).await.unwrap()).unwrap();
    signer.sign(&Claims::new().subject("s").expires_at(kms_jwt::now() + 600)).await.unwrap()
}

#[tokio::test]
async fn provision_is_idempotent_and_tags_the_key() {
    let sets = KeySets::new(support::kms().await);
    let name = KeySetName::parse(&format!("alias/{}", support::unique("kms-jwt-test"))).unwrap();
    let req = ProvisionRequest {
        name: name.clone(),
        key_spec: "RSA_2048".into(),
        description: "d".into(),
        tags: vec![("team".into(), "auth".into())],
        max_token_ttl: Duration::from_secs(2 * 3600),
        regions: vec![],
        pending_window_days: 7,
    };
    let first = sets.provision(&req).await.unwrap();
    let second = sets.provision(&req).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.info.key.key_id, second.info.key.key_id, "no second key");
    assert_eq!(first.info.key.spec, kms_jwt::kms::KeySpec::Rsa2048);
    assert_eq!(first.alg, kms_jwt::Algorithm::RS256);
    let state = sets.resolve(&name).await.unwrap();
    let tags = &state.current.unwrap().tags;
    assert_eq!(tags[TAG_KEY_SET], name.name());
    assert_eq!(tags[TAG_KID], first.kid);
    assert_eq!(tags["team"], "auth");
    assert_eq!(tags[TAG_MAX_TOKEN_TTL], "2h");
    assert!(state.previous.is_none() && state.next.is_none());
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_the_guard_changes_nothing() {
    let (client, sets, name) = setup("ECC_NIST_P256").await;
    let first_key = support::alias_target(&name.current()).await.unwrap();
    let before = sign(&name).await;

    let out = sets.rotate(&name, &policy(false)).await.unwrap();
    assert!(out.retired.is_empty(), "nothing to retire on the first rotation");
    let second_key = support::alias_target(&name.current()).await.unwrap();
    assert_ne!(first_key, second_key);
    assert_eq!(support::alias_target(&name.previous()).await.unwrap(), first_key);
    assert_eq!(support::alias_target(&name.next()).await, None);
    let after = sign(&name).await;
    let jwks = sets.jwks(&name, None).await.unwrap();
    assert_eq!(jwks.keys.len(), 2);
    let verifier = Verifier::from_jwks(&jwks, None).unwrap();
    verifier.verify::<kms_jwt::Claims>(&before).map(|v| v.claims).unwrap();
    verifier.verify::<kms_jwt::Claims>(&after).map(|v| v.claims).unwrap();

    // Dry run: shows the retirement it would do, and does nothing.
    let plan = sets.plan_rotation(&name, &policy(true)).await.unwrap();
    assert_eq!(plan.retire.as_ref().map(|k| k.key_id.as_str()), Some(first_key.as_str()));
    // The guard: the first key was demoted seconds ago.
    let err = sets.rotate(&name, &policy(false)).await.unwrap_err();
    assert!(matches!(&err, Error::OverlapNotElapsed { key, .. } if *key == first_key), "{err}");
    assert!(err.to_string().contains("less than the minimum overlap of 1d"), "{err}");
    assert_eq!(support::alias_target(&name.current()).await.unwrap(), second_key);
    assert_eq!(support::alias_target(&name.previous()).await.unwrap(), first_key);
    assert_eq!(support::alias_target(&name.next()).await, None, "a refused rotation stages nothing");
    let state = client.describe_key().key_id(&first_key).send().await.unwrap();
    assert_eq!(state.key_metadata.unwrap().key_state().unwrap().as_str(), "Enabled");

    // Forced: the first key is retired and leaves the JWKS; tokens it signed stop verifying.
    let out = sets.rotate(&name, &policy(true)).await.unwrap();
    assert_eq!(out.retired.len(), 1);
    assert_eq!(out.retired[0].key_id, first_key);
    let meta = client.describe_key().key_id(&first_key).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(meta.key_state().unwrap().as_str(), "PendingDeletion");
    let jwks = sets.jwks(&name, None).await.unwrap();
    assert_eq!(jwks.keys.len(), 2);
    let verifier = Verifier::from_jwks(&jwks, None).unwrap();
    assert!(matches!(
        verifier.verify::<kms_jwt::Claims>(&before).map(|v| v.claims).unwrap_err(),
        TokenError::UnknownKid(_)
    ));
    verifier.verify::<kms_jwt::Claims>(&after).map(|v| v.claims).unwrap();
}

/// Builds the state a rotation leaves after `steps` of its KMS calls, with the SDK, then
/// re-runs the rotation and checks it converges on the staged key with no extra key.
async fn interrupted_after(steps: usize) {
    let (client, sets, name) = setup("ECC_NIST_P256").await;
    // A first (forced) rotation gives the set a previous key to retire.
    sets.rotate(&name, &policy(true)).await.unwrap();
    let a = support::alias_target(&name.current()).await.unwrap();
    let p = support::alias_target(&name.previous()).await.unwrap();
    let b = support::signing_key(&client, "ECC_NIST_P256").await;
    if steps >= 1 {
        client.create_alias().alias_name(name.next()).target_key_id(&b).send().await.unwrap();
    }
    if steps >= 2 {
        client.schedule_key_deletion().key_id(&p).pending_window_in_days(7).send().await.unwrap();
    }
    if steps >= 3 {
        client.update_alias().alias_name(name.previous()).target_key_id(&a).send().await.unwrap();
    }
    if steps >= 4 {
        client.update_alias().alias_name(name.current()).target_key_id(&b).send().await.unwrap();
    }
    assert!(support::alias_target(&name.current()).await.is_some(), "never without a current key");
    sets.rotate(&name, &policy(true)).await.unwrap();
    assert_eq!(
        support::alias_target(&name.current()).await.unwrap(),
        b,
        "after {steps} steps: the staged key, not a new one"
    );
    assert_eq!(support::alias_target(&name.previous()).await.unwrap(), a, "after {steps} steps");
    assert_eq!(support::alias_target(&name.next()).await, None);
    let p_state = client.describe_key().key_id(&p).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(p_state.key_state().unwrap().as_str(), "PendingDeletion", "after {steps} steps");
}

#[tokio::test]
async fn interrupted_rotation_converges_after_staging() {
    interrupted_after(1).await;
}

#[tokio::test]
async fn interrupted_rotation_converges_after_retiring() {
    interrupted_after(2).await;
}

#[tokio::test]
async fn interrupted_rotation_converges_after_moving_previous() {
    interrupted_after(3).await;
}

#[tokio::test]
async fn interrupted_rotation_converges_after_moving_current() {
    interrupted_after(4).await;
}

#[tokio::test]
async fn bad_names_and_windows_are_refused() {
    for bad in ["aws/thing", "x/previous", "has space"] {
        let err = KeySetName::parse(bad).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{bad:?} is not a key set name")), "{err}");
    }
    let (_, sets, name) = setup("ECC_NIST_P256").await;
    let mut bad = policy(false);
    bad.pending_window_days = 3;
    assert!(matches!(sets.rotate(&name, &bad).await.unwrap_err(), Error::Refused(_)));
}

/// A fresh set's request, provisioned through `kms` (a fault proxy in front of LocalStack).
async fn provision_through(url: &str) -> (KeySetName, kms_jwt::Result<kms_jwt::keyset::Provisioned>) {
    let kms = kms_jwt::kms::KmsOptions::endpoint(url, "us-east-1").connect().await.unwrap();
    let name = KeySetName::parse(&support::unique("kms-jwt-test")).unwrap();
    let req = ProvisionRequest {
        name: name.clone(),
        key_spec: "ECC_NIST_P256".into(),
        description: "eventual consistency".into(),
        tags: vec![],
        max_token_ttl: Duration::from_secs(3600),
        regions: vec![],
        pending_window_days: 9,
    };
    let done = KeySets::new(kms).provision(&req).await;
    (name, done)
}

/// KMS may not show a key it just created to `CreateAlias` yet (eventual consistency): the
/// alias is retried, and the set is made.
#[tokio::test]
async fn a_new_key_kms_does_not_show_yet_gets_its_alias_on_a_retry() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use support::proxy::{Action, FaultProxy};
    let refused = AtomicUsize::new(0);
    let proxy = FaultProxy::start(&support::endpoint(), move |e| {
        if e.operation() == "CreateAlias" && refused.fetch_add(1, Ordering::SeqCst) < 2 {
            Action::kms_error(400, "NotFoundException", "Key 'arn:...' does not exist")
        } else {
            Action::Forward
        }
    });
    let (name, done) = provision_through(&proxy.url).await;
    let done = done.unwrap();
    assert_eq!(proxy.count("CreateKey"), 1, "one key");
    assert_eq!(proxy.count("CreateAlias"), 3, "two NotFound, then the alias");
    assert_eq!(support::alias_target(&name.current()).await.as_deref(), Some(done.info.key.key_id.as_str()));
}

/// If the alias still cannot be made, the new key is retired (with the run's deletion window)
/// rather than left behind with no alias naming it.
#[tokio::test]
async fn a_new_key_whose_alias_cannot_be_made_is_retired_not_orphaned() {
    use support::proxy::{Action, FaultProxy};
    let proxy = FaultProxy::start(&support::endpoint(), |e| {
        if e.operation() == "CreateAlias" {
            Action::kms_error(400, "NotFoundException", "Key 'arn:...' does not exist")
        } else {
            Action::Forward
        }
    });
    let (name, done) = provision_through(&proxy.url).await;
    let err = done.unwrap_err();
    assert!(matches!(err, Error::KeyNotFound(ref alias) if *alias == name.current()), "{err:?}");
    assert_eq!(proxy.count("CreateAlias"), 7, "the first try and six retries");
    let keys = support::keys_of_set(&support::client().await, &name).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].1, "PendingDeletion", "{keys:?}");
    let deletion = proxy.seen().into_iter().find(|e| e.operation() == "ScheduleKeyDeletion").unwrap();
    let body: serde_json::Value = serde_json::from_slice(&deletion.body).unwrap();
    assert_eq!(body["PendingWindowInDays"], 9);
    assert!(support::alias_target(&name.current()).await.is_none());
}

/// The lifetime tag is read in one place, and a value that is not a duration stops both the
/// signer and a rotation with the same clear error (it was an error for the signer and
/// silently no policy for rotation before).
#[tokio::test]
async fn a_malformed_lifetime_tag_is_a_clear_error_for_signer_and_rotation() {
    let (client, sets, name) = setup("ECC_NIST_P256").await;
    let key_id = support::alias_target(&name.current()).await.unwrap();
    // A fresh set: no previous key, so no overlap to compute; the policy is read all the same.
    let tag = aws_sdk_kms::types::Tag::builder().tag_key(TAG_MAX_TOKEN_TTL).tag_value("an hour").build().unwrap();
    client.tag_resource().key_id(&key_id).tags(tag).send().await.unwrap();
    let expected =
        format!("kms key {key_id} has tag kms-jwt:max-token-ttl=\"an hour\", which is not a duration such as 1h");
    let signer = KmsSigner::new(&support::kms().await, &name.current()).await.unwrap_err();
    assert_eq!(
        signer.to_string().replace(&format!("arn:aws:kms:us-east-1:000000000000:key/{key_id}"), &key_id),
        expected
    );
    let rotation = sets.rotate(&name, &policy(false)).await.unwrap_err();
    assert_eq!(rotation.to_string(), expected);
    assert_eq!(support::alias_target(&name.current()).await.unwrap(), key_id, "nothing moved");
}
