//! `kms-jwt serve` and `kms-jwt publish` with real clients: reqwest, PyJWT's `PyJWKClient`,
//! and a loopback load test; refresh after a rotation and last-good while KMS is down.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use kms_jwt::kms::KmsSigner;
use kms_jwt::{Claims, Jwks, JwtSigner};
use support::proxy::{FaultProxy, Link};
use support::serve::Serve;

/// `kms-jwt serve` for set `key`, KMS at `endpoint`, listening on `listen`.
fn serve(endpoint: &str, key: &str, issuer: Option<&str>, listen: &str) -> Serve {
    let mut cmd = support::kms_jwt!().endpoint(endpoint).command();
    cmd.args(["--max-attempts", "1", "--timeout", "2s"]).args([
        "serve",
        "--key",
        key,
        "--issuer",
        issuer.unwrap_or("https://issuer.example"),
        "--listen",
        listen,
        "--refresh",
        "1s",
    ]);
    Serve::spawn(cmd)
}

async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

#[tokio::test]
async fn caching_headers_refresh_after_rotation_and_last_good_while_kms_is_down() {
    let (sets, name) = support::key_set("ECC_NIST_P256").await;
    let (kms, switch) = FaultProxy::switchable(&support::endpoint());
    let server = serve(&kms.url, name.name(), None, "127.0.0.1:0");
    let http = reqwest::Client::new();
    let jwks_url = format!("{}/.well-known/jwks.json", server.url);

    let first = get(&http, &jwks_url).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "application/json");
    assert_eq!(first.headers()["cache-control"], "public, max-age=1");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
    assert_eq!(Jwks::parse(&first.bytes().await.unwrap()).unwrap().keys.len(), 1);
    let again = http.get(&jwks_url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    assert_eq!(get(&http, &format!("{}/nope", server.url)).await.status(), 404);
    assert_eq!(get(&http, &format!("{}/.well-known/jwks.json/", server.url)).await.status(), 404);
    let discovery: serde_json::Value =
        get(&http, &format!("{}/.well-known/openid-configuration", server.url)).await.json().await.unwrap();
    assert_eq!(discovery["issuer"], "https://issuer.example");
    assert_eq!(discovery["jwks_uri"], "https://issuer.example/.well-known/jwks.json");
    assert_eq!(discovery["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    let health: serde_json::Value = get(&http, &format!("{}/healthz", server.url)).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");

    // A rotation shows up within a few refreshes, with a new ETag.
    let policy = support::rotation_policy(Some(Duration::ZERO), false);
    sets.rotate(&name, &policy).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rotated = loop {
        let response = get(&http, &jwks_url).await;
        let tag = response.headers()["etag"].to_str().unwrap().to_owned();
        let keys = Jwks::parse(&response.bytes().await.unwrap()).unwrap();
        if keys.keys.len() == 2 {
            assert_ne!(tag, etag);
            break keys;
        }
        assert!(Instant::now() < deadline, "the rotation never showed up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // KMS goes away: the last good set is still served, and /healthz says it is stale.
    switch.set(Link::Down);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let response = get(&http, &jwks_url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(Jwks::parse(&response.bytes().await.unwrap()).unwrap(), rotated);
    let health: serde_json::Value = get(&http, &format!("{}/healthz", server.url)).await.json().await.unwrap();
    assert_eq!(health["status"], "stale", "{health}");
    assert!(health.get("error").is_none(), "what failed is logged, not answered: {health}");

    assert!(server.stop().success(), "graceful shutdown on SIGTERM exits 0");
}

#[tokio::test]
async fn pyjwt_verifies_with_nothing_but_the_issuer_url() {
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    // The issuer is the server itself, so a client needs nothing else.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let server = serve(&support::endpoint(), name.name(), Some(&issuer), &format!("127.0.0.1:{port}"));
    let signer = JwtSigner::new(KmsSigner::new(&support::kms().await, &name.current()).await.unwrap()).unwrap();
    let token = signer
        .sign(&Claims::new().subject("test-user").issuer(&issuer).audience("api").expires_at(kms_jwt::now() + 600))
        .await
        .unwrap();
    let script = r#"
import json, sys, urllib.request, jwt
token, issuer = sys.argv[1], sys.argv[2]
config = json.load(urllib.request.urlopen(issuer + "/.well-known/openid-configuration"))
key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(token)
claims = jwt.decode(token, key, algorithms=config["id_token_signing_alg_values_supported"], issuer=issuer, audience="api")
print(json.dumps(claims))
"#;
    let out = Command::new(support::python()).args(["-c", script, &token, &issuer]).output().unwrap();
    assert!(out.status.success(), "PyJWT: {}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "test-user");
    assert!(server.stop().success());
}

#[tokio::test]
async fn thousands_of_concurrent_requests_all_succeed() {
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let server = serve(&support::endpoint(), name.name(), None, "127.0.0.1:0");
    let http = reqwest::Client::new();
    let urls = [
        format!("{}/.well-known/jwks.json", server.url),
        format!("{}/.well-known/openid-configuration", server.url),
        format!("{}/healthz", server.url),
    ];
    let statuses: Vec<u16> = futures_util::stream::iter(0..3000)
        .map(|i| {
            let (http, url) = (http.clone(), urls[i % 3].clone());
            async move { http.get(url).send().await.map_or(0, |r| r.status().as_u16()) }
        })
        .buffer_unordered(48)
        .collect()
        .await;
    assert_eq!(statuses.len(), 3000);
    assert!(statuses.iter().all(|&s| s == 200), "non-200: {:?}", statuses.iter().filter(|&&s| s != 200).count());
    assert!(server.stop().success());
}

#[tokio::test]
async fn publish_writes_static_well_known_files() {
    let (_, name) = support::key_set("ECC_NIST_P384").await;
    let dir = tempfile::tempdir().unwrap();
    let out = support::kms_jwt!()
        .localstack()
        .command()
        .args(["publish", "--key", name.name()])
        .args(["--issuer", "https://auth.example.com/", "--out-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cache-Control: public, max-age=300"));
    let jwks = Jwks::parse(&std::fs::read(dir.path().join(".well-known/jwks.json")).unwrap()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(".well-known/openid-configuration")).unwrap()).unwrap();
    assert_eq!(config["issuer"], "https://auth.example.com");
    assert_eq!(config["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
    assert_eq!(config["id_token_signing_alg_values_supported"], serde_json::json!(["ES384"]));
}
