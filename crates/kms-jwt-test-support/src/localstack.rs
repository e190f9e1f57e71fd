//! The `LocalStack` harness and KMS helpers.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kms_jwt::kms::KmsOptions;

use crate::unique;
use testcontainers::bollard::models::PortBinding;
use testcontainers::runners::SyncRunner as _;
use testcontainers::{Container, ImageExt as _};
use testcontainers_modules::localstack::LocalStack;

/// The one LocalStack pin, `localstack-core==X` in `scripts/localstack-requirements.txt`: the
/// process harness installs it, and the container harness runs the image with that tag.
const REQUIREMENTS: &str = include_str!("../../../scripts/localstack-requirements.txt");

/// The LocalStack image tag the container harness runs (the same pin as the process harness).
pub fn localstack_tag() -> &'static str {
    REQUIREMENTS
        .lines()
        .find_map(|line| line.strip_prefix("localstack-core=="))
        .map(str::trim)
        .expect("scripts/localstack-requirements.txt pins localstack-core")
}

static ENDPOINT: OnceLock<String> = OnceLock::new();
/// The container, kept for the life of the test process; `scripts/podman.sh down` (or the
/// Docker engine's own clean-up) removes it by testcontainers' label.
static CONTAINER: OnceLock<Container<LocalStack>> = OnceLock::new();

/// Says which LocalStack the tests use, past libtest's output capture, so CI logs show it.
fn announce(message: &str) {
    let _ = writeln!(std::io::stderr(), "localstack harness: {message}");
}

/// The LocalStack endpoint, chosen once per test process: an endpoint from the environment,
/// else a container started with testcontainers when a Docker-compatible API is reachable.
/// A test that needs LocalStack fails, loudly, when neither is available.
pub fn endpoint() -> String {
    ENDPOINT
        .get_or_init(|| {
            if let Ok(url) = std::env::var("KMS_JWT_TEST_ENDPOINT").or_else(|_| std::env::var("AWS_ENDPOINT_URL")) {
                announce(&format!("process harness: using the endpoint from the environment, {url}"));
                return url;
            }
            if std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists() {
                // testcontainers' blocking runner has its own runtime: start it off the test's.
                return std::thread::spawn(start_container).join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            }
            panic!(
                "this test needs LocalStack and none is available: run `cargo xtask ci`; or `cargo xtask localstack up` \
                 and export KMS_JWT_TEST_ENDPOINT=http://127.0.0.1:4566; or make a Docker-compatible API reachable \
                 (DOCKER_HOST) for testcontainers"
            )
        })
        .clone()
}

fn start_container() -> String {
    announce(&format!(
        "testcontainers: starting localstack/localstack:{} via {}",
        localstack_tag(),
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "/var/run/docker.sock".into())
    ));
    let mut request = LocalStack::default().with_tag(localstack_tag()).with_env_var("SERVICES", "kms,sts,iam,s3");
    // Images newer than the pin need an account: pass the token through where there is one.
    if let Ok(token) = std::env::var("LOCALSTACK_AUTH_TOKEN") {
        request = request.with_env_var("LOCALSTACK_AUTH_TOKEN", token);
    }
    let container = request
        // Publish on loopback only, on a free port: safer on Docker, and the only binding
        // Podman 4.3's netavark forwards here (it never forwards a 0.0.0.0 binding).
        .with_host_config_modifier(|host| {
            let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
            host.port_bindings = Some(HashMap::from([("4566/tcp".to_owned(), Some(vec![binding]))]));
        })
        .with_startup_timeout(Duration::from_secs(180))
        .start()
        .unwrap_or_else(|e| panic!("testcontainers could not start LocalStack: {e}"));
    let port = container.get_host_port_ipv4(4566).unwrap_or_else(|e| panic!("no host port for 4566: {e}"));
    let url = format!("http://127.0.0.1:{port}");
    announce(&format!("testcontainers: container {} started, endpoint {url}", container.id()));
    let _ = CONTAINER.set(container);
    url
}

/// Client options for `LocalStack`.
pub fn options() -> KmsOptions {
    KmsOptions::endpoint(endpoint(), "us-east-1")
}

/// A kms-jwt KMS client for `LocalStack`.
pub async fn kms() -> kms_jwt::kms::KmsClient {
    options().connect().await.expect("KMS client")
}

/// The AWS SDK's KMS client for `LocalStack`, for calls the library does not make.
pub async fn client() -> Client {
    kms().await.sdk().clone()
}

/// Creates a key and returns its key id.
pub async fn create_key(client: &Client, usage: KeyUsageType, spec: KeySpec) -> String {
    let out = client
        .create_key()
        .key_usage(usage)
        .key_spec(spec)
        .description("kms-jwt test key")
        .send()
        .await
        .expect("CreateKey");
    out.key_metadata().expect("metadata").key_id().to_owned()
}

/// Creates a `SIGN_VERIFY` key of `spec`.
pub async fn signing_key(client: &Client, spec: &str) -> String {
    create_key(client, KeyUsageType::SignVerify, KeySpec::from(spec)).await
}

/// Provisions a fresh key set of `spec` on LocalStack.
pub async fn key_set(spec: &str) -> (kms_jwt::keyset::KeySets, kms_jwt::keyset::KeySetName) {
    key_set_in(spec, &[]).await
}

/// [`key_set`] for a test that runs no async runtime of its own (a `#[test]` driving a
/// `kms-jwt` process): its name.
pub fn key_set_blocking(spec: &str) -> kms_jwt::keyset::KeySetName {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(key_set(spec)).1
}

/// Provisions a fresh key set of `spec` on LocalStack; with `regions`, a multi-Region set (the
/// primary in the first, which must be us-east-1, the tests' region).
pub async fn key_set_in(spec: &str, regions: &[&str]) -> (kms_jwt::keyset::KeySets, kms_jwt::keyset::KeySetName) {
    use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest};
    let sets = KeySets::new(kms().await);
    let name = KeySetName::parse(&unique("kms-jwt-test")).unwrap();
    let req = ProvisionRequest {
        name: name.clone(),
        key_spec: spec.into(),
        description: "test".into(),
        tags: vec![],
        max_token_ttl: kms_jwt::keyset::DEFAULT_MAX_TOKEN_TTL,
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        pending_window_days: 7,
    };
    sets.provision(&req).await.unwrap();
    (sets, name)
}

/// The key id an alias names now, if the alias exists.
pub async fn alias_target(alias: &str) -> Option<String> {
    alias_target_in(alias, "us-east-1").await
}

/// The key id an alias names now in `region`, if the alias exists there.
pub async fn alias_target_in(alias: &str, region: &str) -> Option<String> {
    let kms = options().in_region(region).connect().await.unwrap();
    let out = kms.sdk().describe_key().key_id(alias).send().await.ok()?;
    out.key_metadata.map(|m| m.key_id().to_owned())
}

/// A rotation policy for tests: a 7-day deletion window, the overlap given (or the set's).
pub fn rotation_policy(min_overlap: Option<Duration>, force: bool) -> kms_jwt::keyset::RotationPolicy {
    kms_jwt::keyset::RotationPolicy {
        pending_window_days: 7,
        min_overlap,
        if_older_than: None,
        force,
        description: "kms-jwt test".into(),
        key_spec: None,
    }
}

/// The keys tagged with the set, with their states: an account scan, fine in a test, never in
/// the library.
pub async fn keys_of_set(client: &Client, name: &kms_jwt::keyset::KeySetName) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pages = client.list_keys().limit(1000).into_paginator().send();
    while let Some(page) = pages.next().await {
        for key in page.expect("ListKeys").keys() {
            let id = key.key_id().expect("key id");
            let Ok(tags) = client.list_resource_tags().key_id(id).send().await else { continue };
            if tags.tags().iter().any(|t| t.tag_key() == kms_jwt::keyset::TAG_KEY_SET && t.tag_value() == name.name()) {
                let meta = client.describe_key().key_id(id).send().await.expect("DescribeKey").key_metadata;
                let state = meta.and_then(|m| m.key_state().map(|s| s.as_str().to_owned())).unwrap_or_default();
                found.push((id.to_owned(), state));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    /// One pin everywhere: the GitHub workflow's service containers run the image the
    /// requirements file pins (the process, the local image and testcontainers read it there).
    #[test]
    fn the_workflow_runs_the_pinned_localstack() {
        let workflow = include_str!("../../../.github/workflows/ci.yml");
        let tags: Vec<&str> = workflow
            .split("localstack/localstack:")
            .skip(1)
            .map(|rest| rest.split(|c: char| c.is_whitespace()).next().unwrap_or(""))
            .collect();
        assert!(tags.len() >= 2, "{tags:?}");
        assert!(tags.iter().all(|tag| *tag == super::localstack_tag()), "{tags:?} vs {}", super::localstack_tag());
    }
}
