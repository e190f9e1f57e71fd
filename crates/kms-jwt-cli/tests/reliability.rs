//! Faults and hostile input: a fault-injecting proxy in front of LocalStack (throttling,
//! 5xx, a hung endpoint, forged Sign answers, keys disabled mid-batch, rotations cut after
//! each KMS call), a mutation storm through `verify --batch`, and batch I/O edge cases.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kms_jwt::keyset::KeySets;
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, Signer as _, Verifier, VerifyingKey};
use support::proxy::{Action, Exchange, FaultProxy, Link};

/// KMS calls that change state: what a rotation cut after N of them has done.
const WRITES: [&str; 8] = [
    "CreateKey",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "TagResource",
    "ScheduleKeyDeletion",
    "DisableKey",
    "ReplicateKey",
];

/// A deterministic pseudo-random percentage for request `n` (splitmix64).
fn chance(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 100
}

/// What a proxy's hook is.
type Hook = dyn Fn(&Exchange) -> Action + Send + Sync;

/// A proxy to LocalStack's KMS whose `hook` decides each request.
fn kms_proxy(hook: impl Fn(&Exchange) -> Action + Send + Sync + 'static) -> FaultProxy {
    FaultProxy::start(&support::endpoint(), hook)
}

/// Answers this percentage of requests with `ThrottlingException` (HTTP 400).
fn throttle(pct: u64) -> impl Fn(&Exchange) -> Action {
    move |e| {
        if chance(e.n as u64) < pct {
            Action::kms_error(400, "ThrottlingException", "Rate exceeded")
        } else {
            Action::Forward
        }
    }
}

/// Answers this percentage of requests with HTTP 500 `KMSInternalException`.
fn internal(pct: u64) -> impl Fn(&Exchange) -> Action {
    move |e| {
        if chance(e.n as u64) < pct {
            Action::kms_error(500, "KMSInternalException", "internal error")
        } else {
            Action::Forward
        }
    }
}

/// Rewrites every successful Sign answer's JSON `member` to `value` (an error answer, which
/// names its `__type`, passes unchanged).
fn rewrite_sign(member: &'static str, value: String) -> impl Fn(&Exchange) -> Action {
    move |e| {
        if e.operation() != "Sign" {
            return Action::Forward;
        }
        let value = value.clone();
        Action::Rewrite(Arc::new(move |body: &[u8]| {
            let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else { return body.to_vec() };
            if json.get("__type").is_some() {
                return body.to_vec();
            }
            json[member] = serde_json::Value::String(value.clone());
            json.to_string().into_bytes()
        }))
    }
}

/// Before the Sign call number `at` (1-based) is forwarded, runs `action`.
fn before_sign(at: usize, action: impl Fn() + Send + Sync + 'static) -> impl Fn(&Exchange) -> Action {
    let signs = AtomicUsize::new(0);
    move |e| {
        if e.operation() == "Sign" && signs.fetch_add(1, Ordering::SeqCst) + 1 == at {
            action();
        }
        Action::Forward
    }
}

/// After `limit` state-changing KMS calls, fails every request (a process killed there).
fn cut_after_writes(limit: usize) -> impl Fn(&Exchange) -> Action {
    let writes = AtomicUsize::new(0);
    move |e| {
        if writes.load(Ordering::SeqCst) >= limit {
            return Action::kms_error(500, "KMSInternalException", "cut");
        }
        if WRITES.contains(&e.operation().as_str()) {
            writes.fetch_add(1, Ordering::SeqCst);
        }
        Action::Forward
    }
}

/// KMS JSON blobs are standard, padded base64.
fn standard_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs a command off the test's async runtime.
async fn run(mut cmd: Command, stdin: Vec<u8>) -> Output {
    tokio::task::spawn_blocking(move || support::run_with_stdin(&mut cmd, &stdin)).await.unwrap()
}

fn claims_lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect()
}

fn assert_tokens_in_order(out: &Output, n: usize, verifier: &Verifier) {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let tokens: Vec<&str> = text.lines().collect();
    assert_eq!(tokens.len(), n, "stderr: {}", String::from_utf8_lossy(&out.stderr));
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(
            verifier.verify::<kms_jwt::Claims>(token).map(|v| v.claims).unwrap().get("n").unwrap(),
            i,
            "token {i}"
        );
    }
}

async fn ecc_key() -> (String, Verifier) {
    let client = support::client().await;
    let key_id = support::signing_key(&client, "ECC_NIST_P256").await;
    let public = client.get_public_key().key_id(&key_id).send().await.unwrap().public_key.unwrap();
    let public = kms_jwt::PublicKey::from_spki_der(public.as_ref()).unwrap();
    let verifier = Verifier::new(vec![VerifyingKey::new(public, Algorithm::ES256, None).unwrap()]);
    (key_id, verifier)
}

#[tokio::test]
async fn a_batch_survives_30_percent_throttling_and_20_percent_5xx() {
    let (key_id, verifier) = ecc_key().await;
    let faults: [Box<Hook>; 2] = [Box::new(throttle(30)), Box::new(internal(20))];
    for fault in faults {
        let proxy = kms_proxy(fault);
        let mut cmd = support::kms_jwt!().endpoint(&proxy.url).command();
        // Faults fall on requests independently, so a request fails with p = 0.3^attempts: with
        // the default 8 attempts a batch of 200 loses a line in about 1.3% of runs (seen once in
        // CI), with 12 in about one run in 10,000. The batch must then still be whole.
        cmd.args(["--max-attempts", "12", "sign", "--key", &key_id, "--batch", "-", "--concurrency", "16"]);
        let out = run(cmd, claims_lines(200)).await;
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        assert_tokens_in_order(&out, 200, &verifier);
        assert!(proxy.requests() > 220, "the faults were injected and retried");
    }
}

#[tokio::test]
async fn a_hung_endpoint_fails_within_the_timeout() {
    let (key_id, _) = ecc_key().await;
    let proxy = kms_proxy(|_| Action::Hang);
    let mut cmd = support::kms_jwt!().endpoint(&proxy.url).command();
    cmd.args(["--timeout", "4s", "--attempt-timeout", "1s", "sign", "--key", &key_id]);
    let started = Instant::now();
    let out = run(cmd, Vec::new()).await;
    let elapsed = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end(), "kms-jwt: kms did not answer within 4s");
    assert!(elapsed < Duration::from_secs(9), "took {elapsed:?}");
}

#[tokio::test]
async fn forged_sign_answers_emit_no_token() {
    let (key_id, _) = ecc_key().await;
    let other = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000".to_owned();
    for (fault, needle) in [
        (rewrite_sign("KeyId", other), "Sign answered for key"),
        (rewrite_sign("SigningAlgorithm", "ECDSA_SHA_384".into()), "Sign used algorithm"),
        (rewrite_sign("Signature", standard_base64(&[0x30, 0x02, 0x02, 0x00])), "malformed ECDSA signature"),
    ] {
        let proxy = kms_proxy(fault);
        let mut cmd = support::kms_jwt!().endpoint(&proxy.url).command();
        cmd.args(["sign", "--key", &key_id]);
        let out = run(cmd, Vec::new()).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(out.stdout.is_empty(), "no token may be printed");
        assert!(err.contains("kms returned an invalid response") && err.contains(needle), "{err}");
    }
    // A well-formed signature by another key is caught by the local verification.
    let stranger = LocalSigner::generate(Algorithm::ES256).unwrap();
    let forged = kms_jwt::fuzzing::fixed_to_der(&stranger.sign_message(b"x").await.unwrap()).unwrap();
    let proxy = kms_proxy(rewrite_sign("Signature", standard_base64(&forged)));
    let mut cmd = support::kms_jwt!().endpoint(&proxy.url).command();
    cmd.args(["sign", "--key", &key_id]);
    let out = run(cmd, Vec::new()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify with the key's public key"));
}

#[tokio::test]
async fn a_key_disabled_or_deleted_mid_batch_stops_at_that_line() {
    for schedule_deletion in [false, true] {
        let (key_id, verifier) = ecc_key().await;
        let id = key_id.clone();
        let action = move || {
            let id = id.clone();
            tokio::runtime::Runtime::new().unwrap().block_on(async move {
                let client = support::client().await;
                if schedule_deletion {
                    client.schedule_key_deletion().key_id(&id).pending_window_in_days(7).send().await.unwrap();
                } else {
                    client.disable_key().key_id(&id).send().await.unwrap();
                }
            });
        };
        let proxy = kms_proxy(before_sign(6, action));
        let mut cmd = support::kms_jwt!().endpoint(&proxy.url).command();
        cmd.args(["sign", "--key", &key_id, "--batch", "-", "--concurrency", "1"]);
        let out = run(cmd, claims_lines(10)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_tokens_in_order(&out, 5, &verifier);
        let state = if schedule_deletion { "is pending deletion" } else { "is disabled" };
        assert!(err.contains("line 6 of -") && err.contains(state), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}

#[tokio::test]
async fn a_rotation_cut_after_each_kms_call_converges_on_the_next_run() {
    let client = support::client().await;
    let policy = support::rotation_policy(Some(Duration::ZERO), false);
    // A rotation with a previous key to retire makes 10 state-changing calls: CreateAlias lock,
    // CreateKey, CreateAlias next, TagResource kid, ScheduleKeyDeletion, TagResource
    // demoted-at, UpdateAlias previous, UpdateAlias current, DeleteAlias next, DeleteAlias lock.
    // Stopped before each of them (cut N: after N of them), the next run converges on the same
    // end state. After 9 the rotation is complete but for its lock, and running it again is a
    // new rotation.
    for cut in 0..9 {
        let (sets, name) = support::key_set("ECC_NIST_P256").await;
        sets.rotate(&name, &policy).await.unwrap();
        let before = sets.resolve(&name).await.unwrap();
        let (old_current, old_previous) = (before.current.unwrap().key_id, before.previous.unwrap().key_id);

        let proxy = kms_proxy(cut_after_writes(cut));
        let mut opts = kms_jwt::kms::KmsOptions::endpoint(&proxy.url, "us-east-1");
        opts.max_attempts = 1;
        let cut_sets = KeySets::new(opts.connect().await.unwrap());
        let first = cut_sets.rotate(&name, &policy).await;
        assert!(sets.resolve(&name).await.unwrap().current.is_some(), "cut {cut}: never without a current key");

        // What the dead run costs: its lock stays, and until it is older than the lock TTL the
        // next run says another operation is in progress and changes nothing.
        let stuck = sets.resolve(&name).await.unwrap();
        if cut >= 1 {
            let busy = sets.rotate(&name, &policy).await.unwrap_err();
            assert!(matches!(busy, kms_jwt::Error::Busy { .. }), "cut {cut}: {busy}");
            let unchanged = sets.resolve(&name).await.unwrap();
            assert_eq!(unchanged.current.map(|k| k.key_id), stuck.current.map(|k| k.key_id), "cut {cut}");
            assert_eq!(unchanged.next.map(|k| k.key_id), stuck.next.map(|k| k.key_id), "cut {cut}");
        }
        // Past the TTL (zero here: the cut run is dead), the next run breaks the lock.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = sets.clone().with_lock_ttl(Duration::ZERO).rotate(&name, &policy).await;
        let after = sets.resolve(&name).await.unwrap();
        let current = after.current.unwrap().key_id;
        assert_eq!(support::alias_target(&name.lock()).await, None, "cut {cut}: the lock is released");
        // Three keys: the retired previous, the old current, the new current. The one window no
        // KMS API can close without an account scan is between CreateKey and CreateAlias: a run
        // stopped exactly there leaves one unaliased key, tagged with the set, behind.
        let expected = if cut == 2 { 4 } else { 3 };
        assert_eq!(support::keys_of_set(&client, &name).await.len(), expected, "cut {cut}: ({first:?} then {done:?})");
        assert_ne!(current, old_current, "cut {cut}");
        assert_eq!(after.previous.unwrap().key_id, old_current, "cut {cut}");
        assert!(after.next.is_none(), "cut {cut}");
        let retired = client.describe_key().key_id(&old_previous).send().await.unwrap().key_metadata.unwrap();
        assert_eq!(retired.key_state().unwrap().as_str(), "PendingDeletion", "cut {cut}");
    }
}

#[tokio::test]
async fn a_batch_through_a_cut_of_the_primary_signs_every_token_in_order_with_one_kid() {
    let (_, name) = support::key_set_in("ECC_NIST_P256", &["us-east-1", "eu-west-1"]).await;
    let jwks = support::kms_jwt!().localstack().output(["jwks", "--key", name.name()]);
    let verifier = Verifier::from_jwks(&Jwks::parse(&jwks.stdout).unwrap(), None).unwrap();
    for cut in [Link::BlackHole, Link::Down] {
        let (proxy, region) = FaultProxy::switchable(&support::endpoint());
        // us-east-1, the primary, through the proxy; eu-west-1 straight to LocalStack.
        let mut cmd = support::kms_jwt!().localstack().command();
        cmd.env("KMS_JWT_ENDPOINT_URL_US_EAST_1", &proxy.url)
            .args(["--timeout", "2s", "--attempt-timeout", "1s", "--max-attempts", "2", "sign", "--key", name.name()])
            .args(["--batch", "-", "--fallback-region", "eu-west-1", "--failback-after", "1s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let counts = proxy.clone();
        // The batch is fed in thirds: before the cut, during it, after the primary is back.
        let (out, cut_requests, signed_before_recovery) = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let lines = claims_lines(300);
            let thirds: Vec<&[u8]> = split_at_lines(&lines, 100);
            stdin.write_all(thirds[0]).unwrap();
            std::thread::sleep(Duration::from_secs(2));
            region.set(cut);
            let at_cut = counts.requests();
            stdin.write_all(thirds[1]).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            region.set(Link::Up);
            let cut_requests = counts.requests() - at_cut;
            let signed_before_recovery = counts.count_answered("Sign", 200);
            // Past the back-off, a probe finds the primary answering again.
            std::thread::sleep(Duration::from_millis(1500));
            stdin.write_all(thirds[2]).unwrap();
            drop(stdin);
            (child.wait_with_output().unwrap(), cut_requests, signed_before_recovery)
        })
        .await
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "cut {cut:?}: {err}");
        assert_tokens_in_order(&out, 300, &verifier);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        let kids: std::collections::BTreeSet<String> =
            text.lines().map(|t| kms_jwt::decode_unverified(t).unwrap().0["kid"].to_string()).collect();
        assert_eq!(kids.len(), 1, "cut {cut:?}: one kid: {kids:?}");
        // The cut cost the calls in flight at that moment (16, two attempts each) and a probe
        // per back-off, not a timeout per token: 100 tokens would be 200 requests.
        assert!(cut_requests <= 48, "cut {cut:?}: {cut_requests} requests reached the cut region");
        assert!(signed_before_recovery > 0, "cut {cut:?}: the primary signed before the cut");
        assert!(
            proxy.count_answered("Sign", 200) > signed_before_recovery,
            "cut {cut:?}: signing returned to the primary: {err}"
        );
    }
}

#[tokio::test]
async fn a_fallback_region_passed_over_while_the_primary_answered_is_tried_when_needed() {
    use kms_jwt::failover::FailoverSigner;
    let (_, name) = support::key_set_in("ECC_NIST_P256", &["us-east-1", "eu-west-1"]).await;
    let ((east, primary), (west, fallback)) =
        (FaultProxy::switchable(&support::endpoint()), FaultProxy::switchable(&support::endpoint()));
    fallback.set(Link::Down);
    let client = |url: String, region: &'static str| async move {
        let mut opts = kms_jwt::kms::KmsOptions::endpoint(url, region);
        opts.max_attempts = 1;
        opts.connect().await.unwrap()
    };
    let clients = vec![client(east.url.clone(), "us-east-1").await, client(west.url.clone(), "eu-west-1").await];
    // eu-west-1 answers 503 while the signer starts: it is set aside, to be checked later.
    let failover =
        FailoverSigner::builder(clients, name.name()).backoff(Duration::from_millis(300)).build().await.unwrap();
    let signer = JwtSigner::new(failover).unwrap();
    let claims = Claims::new().subject("x").expires_at(kms_jwt::now() + 60);
    signer.sign(&claims).await.unwrap();
    // Past eu-west-1's back-off, us-east-1 still answers: eu-west-1 is not needed, and must
    // not be left marked as being probed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signer.sign(&claims).await.unwrap();
    assert_eq!(west.count_answered("Sign", 200), 0);
    primary.set(Link::Down);
    fallback.set(Link::Up);
    signer.sign(&claims).await.unwrap();
    assert_eq!(west.count_answered("Sign", 200), 1, "signed in eu-west-1 once us-east-1 failed");
}

/// `lines` cut after every `n` lines.
fn split_at_lines(lines: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut count) = (0, 0);
    for (i, b) in lines.iter().enumerate() {
        if *b == b'\n' {
            count += 1;
            if count % n == 0 {
                parts.push(&lines[start..=i]);
                start = i + 1;
            }
        }
    }
    if start < lines.len() {
        parts.push(&lines[start..]);
    }
    parts
}

#[tokio::test]
async fn a_multi_region_rotation_cut_after_each_kms_call_converges_on_the_next_run() {
    let regions = ["us-east-1", "eu-west-1"];
    let policy = support::rotation_policy(Some(Duration::ZERO), false);
    // With a previous key to retire, a two-region rotation makes 16 state-changing calls:
    // the lock, CreateKey, CreateAlias next, TagResource kid, ReplicateKey, CreateAlias next
    // (eu-west-1), two ScheduleKeyDeletion, TagResource demoted-at, previous and current in
    // eu-west-1, then in us-east-1, DeleteAlias next in both, DeleteAlias lock. After 15 the
    // rotation is complete but for its lock, and running it again is a new rotation.
    for cut in 0..15 {
        let (sets, name) = support::key_set_in("ECC_NIST_P256", &regions).await;
        sets.rotate(&name, &policy).await.unwrap();
        let old_current = sets.resolve(&name).await.unwrap().current.unwrap().key_id;

        let proxy = kms_proxy(cut_after_writes(cut));
        let mut opts = kms_jwt::kms::KmsOptions::endpoint(&proxy.url, "us-east-1");
        opts.max_attempts = 1;
        let first = KeySets::new(opts.connect().await.unwrap()).rotate(&name, &policy).await;
        for region in regions {
            let current = support::alias_target_in(&name.current(), region).await;
            assert!(current.is_some(), "cut {cut}: never without a current key in {region}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = sets.clone().with_lock_ttl(Duration::ZERO).rotate(&name, &policy).await;
        let after = sets.resolve(&name).await.unwrap();
        let current = after.current.unwrap().key_id;
        assert_ne!(current, old_current, "cut {cut}: ({first:?} then {done:?})");
        for region in regions {
            let target = |alias: String| async move { support::alias_target_in(&alias, region).await };
            assert_eq!(target(name.current()).await.as_deref(), Some(current.as_str()), "cut {cut}: {region}");
            assert_eq!(target(name.previous()).await.as_deref(), Some(old_current.as_str()), "cut {cut}: {region}");
            assert_eq!(target(name.next()).await, None, "cut {cut}: {region}");
            assert_eq!(target(name.lock()).await, None, "cut {cut}: {region}");
        }
        let jwks: Vec<Vec<u8>> = regions
            .iter()
            .map(|r| support::kms_jwt!().localstack().region(*r).output(["jwks", "--key", name.name()]).stdout)
            .collect();
        assert_eq!(jwks[0], jwks[1], "cut {cut}: one JWKS in every region");
    }
}

/// What the storm mutates tokens with: base64url, the separators and padding, and junk.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00\xff";

#[test]
fn a_mutation_storm_accepts_exactly_the_unmutated_tokens() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256).unwrap()).unwrap();
    let token = rt.block_on(signer.sign(&Claims::new().subject("storm").expires_at(4_102_444_800))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Jwks { keys: vec![signer.jwk()] }.to_json().to_string()).unwrap();

    let mut input = Vec::new();
    let mut originals = Vec::new();
    for i in 0..5000u64 {
        let mut bytes = token.as_bytes().to_vec();
        if i % 10 == 0 {
            originals.push(i);
        } else {
            let r = chance(i * 3) as usize;
            let pos = (chance(i * 3 + 1) as usize * bytes.len()) / 100;
            let c = ALPHABET[chance(i * 3 + 2) as usize % ALPHABET.len()];
            match r % 4 {
                0 if bytes[pos] != c => bytes[pos] = c,
                1 => bytes.insert(pos, c),
                2 => {
                    bytes.remove(pos);
                }
                _ => bytes.truncate(pos),
            }
            if bytes == token.as_bytes() {
                originals.push(i);
            }
        }
        input.extend_from_slice(&bytes);
        input.push(b'\n');
    }
    let out = support::run_with_stdin(
        Command::new("/usr/bin/time")
            .args(["-f", "maxrss_kb=%M", env!("CARGO_BIN_EXE_kms-jwt"), "verify", "--batch", "-", "--jwks"])
            .arg(&jwks),
        &input,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let valid: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("{\"valid\":true"))
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(valid, originals);
    let rss: u64 = err.lines().find_map(|l| l.strip_prefix("maxrss_kb=")).unwrap().trim().parse().unwrap();
    assert!(rss < 64 * 1024, "verify --batch used {rss} KiB");
}

#[test]
fn batch_io_edge_cases() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256).unwrap()).unwrap();
    let token = rt.block_on(signer.sign(&Claims::new().expires_at(4_102_444_800))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("public.pem");
    std::fs::write(&pem, signer.signer().public_key().to_pem()).unwrap();

    // A reader that goes away after one line: the batch ends quietly.
    let mut child = support::kms_jwt!()
        .command()
        .args(["verify", "--batch", "-", "--pem"])
        .arg(&pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = format!("{token}\n");
    let writer = std::thread::spawn(move || {
        for _ in 0..200_000 {
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"valid\":true"));
    // Dropping our end of stdout closes the pipe.
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "quiet: {}", String::from_utf8_lossy(&out.stderr));

    // A claims file that is not UTF-8.
    let latin1 = dir.path().join("claims.json");
    std::fs::write(&latin1, b"{\"name\":\"Jos\xe9\"}").unwrap();
    let out = support::kms_jwt!()
        .endpoint("http://127.0.0.1:9")
        .command()
        .args(["sign", "--key", "k", "--claims-file"])
        .arg(&latin1)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("is not UTF-8 text") && err.lines().count() == 1, "{err}");
}
