//! Shared test support: the `LocalStack` endpoint, KMS keys, and verifiers we did not write.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kms_jwt::kms::KmsOptions;
use testcontainers::bollard::models::PortBinding;
use testcontainers::runners::SyncRunner as _;
use testcontainers::{Container, ImageExt as _};
use testcontainers_modules::localstack::LocalStack;

/// The LocalStack image tag the container harness runs (the same pin as the process harness).
pub const LOCALSTACK_TAG: &str = "2026.3.0";

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
        "testcontainers: starting localstack/localstack:{LOCALSTACK_TAG} via {}",
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "/var/run/docker.sock".into())
    ));
    let container = LocalStack::default()
        .with_tag(LOCALSTACK_TAG)
        .with_env_var("SERVICES", "kms")
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

/// A KMS client for `LocalStack`.
pub async fn client() -> Client {
    options().client().await.expect("KMS client")
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

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let mut id = [0u8; 6];
    aws_lc_rs::rand::fill(&mut id).expect("rng");
    format!("{prefix}-{}", kms_jwt::b64::encode(id).to_lowercase().replace(['-', '_'], "x"))
}

/// The `LocalStack` venv's Python (`PyJWT`, boto3).
pub fn python() -> String {
    std::env::var("KMS_JWT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("this test needs the LocalStack venv's python: run `cargo xtask ci` or export KMS_JWT_TEST_PYTHON")
    })
}

/// Verifies `(token, pem, alg)` triples with `PyJWT` in one process; returns each outcome.
pub fn pyjwt_verify(cases: &[(String, String, String)]) -> Vec<Result<serde_json::Value, String>> {
    let script = r#"
import json, sys, jwt
out = []
for token, pem, alg in json.load(sys.stdin):
    try:
        out.append({"ok": jwt.decode(token, pem, algorithms=[alg], options={"verify_aud": False})})
    except Exception as e:
        out.append({"err": f"{type(e).__name__}: {e}"})
print(json.dumps(out))
"#;
    let input = serde_json::to_vec(cases).unwrap();
    let out = run_with_stdin(Command::new(python()).args(["-c", script]), &input);
    assert!(out.status.success(), "PyJWT failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(claims) => Ok(claims.clone()),
            None => Err(r["err"].as_str().unwrap_or("?").to_owned()),
        })
        .collect()
}

/// Verifies a JOSE signature with the openssl CLI (ECDSA converted back to DER).
pub fn openssl_verify(pem: &str, alg: kms_jwt::Algorithm, signing_input: &str, jose_signature: &[u8]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (pem_path, sig_path, msg_path) =
        (dir.path().join("pub.pem"), dir.path().join("sig.bin"), dir.path().join("msg"));
    std::fs::write(&pem_path, pem).unwrap();
    std::fs::write(&msg_path, signing_input).unwrap();
    let sig =
        if alg.is_ecdsa() { kms_jwt::ecdsa::fixed_to_der(jose_signature).unwrap() } else { jose_signature.to_vec() };
    std::fs::write(&sig_path, sig).unwrap();
    let digest = match alg.digest().output_len() {
        32 => "-sha256",
        48 => "-sha384",
        _ => "-sha512",
    };
    let mut cmd = Command::new("openssl");
    cmd.args(["dgst", digest, "-verify"]).arg(&pem_path).arg("-signature").arg(&sig_path);
    if alg.name().starts_with("PS") {
        cmd.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
    }
    cmd.arg(&msg_path).output().expect("openssl")
}

/// Runs a command with `input` on stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    out
}

/// A TCP forwarder on loopback, to take an endpoint away in the middle of a test.
pub struct Forwarder {
    /// `http://127.0.0.1:PORT`, forwarding to the target.
    pub url: String,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Forwarder {
    /// Forwards to `target` (an `http://host:port` URL).
    pub fn start(target: &str) -> Forwarder {
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, list) = (stopped.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let Ok(upstream) = std::net::TcpStream::connect(&target) else { continue };
                list.lock().unwrap().extend([client.try_clone().unwrap(), upstream.try_clone().unwrap()]);
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), upstream.try_clone().unwrap()), (upstream, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Forwarder { url, stopped, conns }
    }

    /// Closes every open connection and refuses new ones from now on.
    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Provisions a fresh key set of `spec` on LocalStack.
pub async fn key_set(spec: &str) -> (kms_jwt::keyset::KeySets, kms_jwt::keyset::KeySetName) {
    use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest};
    let sets = KeySets::new(client().await, options());
    let name = KeySetName::parse(&unique("kms-jwt-test")).unwrap();
    let req = ProvisionRequest { name: name.clone(), key_spec: spec.into(), description: "test".into(), tags: vec![] };
    sets.provision(&req).await.unwrap();
    (sets, name)
}

/// jsonwebtoken's name for `alg`, where jsonwebtoken implements it (not ES512, ES256K).
pub fn jsonwebtoken_alg(alg: kms_jwt::Algorithm) -> Option<jsonwebtoken::Algorithm> {
    use kms_jwt::Algorithm;
    Some(match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
        Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
        Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        _ => return None,
    })
}

/// A jsonwebtoken decoding key for a public key, from its JWK members.
pub fn jsonwebtoken_key(public: &kms_jwt::PublicKey) -> jsonwebtoken::DecodingKey {
    use kms_jwt::{PublicKey, b64};
    match public {
        PublicKey::Rsa { n, e } => {
            jsonwebtoken::DecodingKey::from_rsa_components(&b64::encode(n), &b64::encode(e)).unwrap()
        }
        PublicKey::Ec { x, y, .. } => {
            jsonwebtoken::DecodingKey::from_ec_components(&b64::encode(x), &b64::encode(y)).unwrap()
        }
    }
}
