//! `kms-jwt serve` as a service, through the real binary on real sockets: TLS (rustls here,
//! curl with the CA, `kms-jwt token`), HTTP/2 and HTTP/1.1, TLS 1.3 and 1.2, the certificate
//! reloaded on SIGHUP; the drain on SIGTERM; `/readyz` before the keys load; `/metrics` read
//! by Python's `prometheus_client` parsers; JSON logs; `kms-jwt health`.

// Sample values are counts, whole numbers that f64 holds exactly.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, clippy::float_cmp)]

use kms_jwt_test_support as support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kms_jwt::issuer::{TokenRequest, sign_proof};
use kms_jwt::{Jwks, Verifier, VerifyingKey};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use support::proxy::{Action, FaultProxy, Link};
use support::serve::Serve;

const POLICY: &str = r#"
[[rule]]
principals = ["arn:aws:iam::000000000000:root"]
audiences  = ["api"]
max_ttl    = "30m"
"#;

/// A CA and server certificates it signed, for `localhost` and 127.0.0.1, made by openssl.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kms-jwt test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A new server key and certificate, `NAME.key` and `NAME.pem`.
    fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            &pem,
        ]);
        (self.path(&pem), self.path(&key))
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn key_set() -> kms_jwt::keyset::KeySetName {
    support::key_set_blocking("ECC_NIST_P256")
}

fn policy() -> tempfile::NamedTempFile {
    let mut policy = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut policy, POLICY.as_bytes()).unwrap();
    policy
}

/// `kms-jwt serve` for set `name` on `port`, issuer `issuer`, with the policy; KMS at `kms`.
fn serve_command(kms: &str, name: &str, issuer: &str, port: u16, policy: &tempfile::NamedTempFile) -> Command {
    let mut cmd = support::kms_jwt!().endpoint(kms).command();
    cmd.args(["--max-attempts", "1", "--timeout", "10s"])
        .args(["serve", "--key", name, "--issuer", issuer, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--token-policy", policy.path().to_str().unwrap()])
        .args(["--sts-region", "us-east-1", "--sts-endpoint-url", &support::endpoint()]);
    cmd
}

/// A `/token` request body with a proof for `server_id`, made `ago` (a proof is good for one
/// token: two made in the same second are the same proof).
fn token_request(server_id: &str, ago: Duration) -> Vec<u8> {
    let creds =
        aws_credential_types::Credentials::new(support::ACCESS_KEY_ID, support::SECRET_ACCESS_KEY, None, None, "test");
    let proof = sign_proof(&creds, Some("us-east-1"), server_id, SystemTime::now() - ago).unwrap();
    serde_json::to_vec(&TokenRequest { audience: "api".into(), ttl: None, proof }).unwrap()
}

/// What one request over TLS gave.
struct Answer {
    status: u16,
    body: Vec<u8>,
    alpn: Option<Vec<u8>>,
    version: rustls::ProtocolVersion,
    certificate: Vec<u8>,
}

/// A rustls client that trusts only `ca`, offering `versions` and `alpn`.
fn tls_client(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every connection a full handshake: a resumed one shows the certificate of the first.
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One request to `port` over a new TLS connection, HTTP/2 or HTTP/1.1 as ALPN chose.
async fn https(connector: &tokio_rustls::TlsConnector, port: u16, method: &str, path: &str, body: Vec<u8>) -> Answer {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let (_, session) = tls.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let version = session.protocol_version().unwrap();
    let certificate = session.peer_certificates().unwrap()[0].to_vec();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{port}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = if alpn.as_deref() == Some(b"h2") {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        let (mut parts, body) = request.into_parts();
        parts.uri = path.parse().unwrap();
        parts.headers.insert("host", format!("localhost:{port}").parse().unwrap());
        sender.send_request(hyper::Request::from_parts(parts, body)).await.unwrap()
    };
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, body, alpn, version, certificate }
}

/// Waits until a stderr line of `server` contains `text`.
fn wait_for_line(server: &Serve, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().iter().any(|l| l.contains(text)) {
        assert!(Instant::now() < deadline, "no line with {text:?}: {:?}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http2_and_http1_over_tls_13_and_12_and_reloads_its_certificate_on_sighup() {
    let pki = Pki::new();
    let (cert, key) = pki.server("first");
    let (live_cert, live_key) = (pki.path("live.pem"), pki.path("live.key"));
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let name = support::key_set("ECC_NIST_P256").await.1;
    let policy = policy();
    let port = free_port();
    let issuer = format!("https://localhost:{port}");
    let mut cmd = serve_command(&support::endpoint(), name.name(), &issuer, port, &policy);
    cmd.args(["--tls-cert", live_cert.to_str().unwrap(), "--tls-key", live_key.to_str().unwrap()]);
    let server = Serve::spawn(cmd);
    assert_eq!(server.url, format!("https://127.0.0.1:{port}"));
    assert!(!server.log().iter().any(|l| l.contains("plain HTTP")), "{:?}", server.log());

    // HTTP/2 over TLS 1.3, preferred by both sides.
    let both = [&rustls::version::TLS13, &rustls::version::TLS12];
    let h2 = tls_client(&pki.ca(), &both, &[b"h2", b"http/1.1"]);
    let jwks = https(&h2, port, "GET", "/.well-known/jwks.json", Vec::new()).await;
    assert_eq!(
        (jwks.status, jwks.alpn.as_deref(), jwks.version),
        (200, Some(&b"h2"[..]), rustls::ProtocolVersion::TLSv1_3)
    );
    let keys = Jwks::parse(&jwks.body).unwrap();
    assert_eq!(keys.keys.len(), 1);
    // HTTP/1.1 over TLS 1.2.
    let h1 = tls_client(&pki.ca(), &[&rustls::version::TLS12], &[b"http/1.1"]);
    let old = https(&h1, port, "GET", "/.well-known/openid-configuration", Vec::new()).await;
    assert_eq!(
        (old.status, old.alpn.as_deref(), old.version),
        (200, Some(&b"http/1.1"[..]), rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&old.body).unwrap()["issuer"], issuer.as_str());

    // A token over HTTP/2, and one from `kms-jwt token` trusting the CA: both verify with the
    // JWKS fetched over TLS.
    let verifier = Verifier::new(keys.keys.iter().map(|k| VerifyingKey::from_jwk(k, None).unwrap()).collect())
        .with_issuer(&issuer)
        .with_audience("api")
        .clone();
    let posted = https(&h2, port, "POST", "/token", token_request(&issuer, Duration::ZERO)).await;
    assert_eq!(posted.status, 200, "{}", String::from_utf8_lossy(&posted.body));
    let answer: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    verifier.verify::<kms_jwt::Claims>(answer["token"].as_str().unwrap()).unwrap();
    let out = support::kms_jwt!()
        .region("us-east-1")
        .command()
        .args(["token", "--issuer", &issuer, "--aud", "api"])
        .env("SSL_CERT_FILE", pki.ca())
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    verifier.verify::<kms_jwt::Claims>(String::from_utf8(out.stdout).unwrap().trim()).unwrap();

    // curl, with the CA: HTTP/2 and HTTP/1.1.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--cacert",
                pki.ca().to_str().unwrap(),
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
            ])
            .arg(format!("https://localhost:{port}/.well-known/jwks.json"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("200 {version}"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(jwks.certificate, der(&cert));

    // SIGHUP: a new pair is read, and new connections get it.
    let (second_cert, second_key) = pki.server("second");
    std::fs::copy(&second_cert, &live_cert).unwrap();
    std::fs::copy(&second_key, &live_key).unwrap();
    server.signal("HUP");
    wait_for_line(&server, "TLS certificate reloaded");
    let after = https(&h2, port, "GET", "/.well-known/jwks.json", Vec::new()).await;
    assert_eq!((after.status, after.certificate == der(&second_cert)), (200, true));
    // A bad pair (a key that is not the certificate's) is refused, and the last good one stays.
    std::fs::copy(&key, &live_key).unwrap();
    server.signal("HUP");
    wait_for_line(&server, "TLS certificate not reloaded");
    let kept = https(&h1, port, "GET", "/.well-known/jwks.json", Vec::new()).await;
    assert_eq!((kept.status, kept.certificate == der(&second_cert)), (200, true));
    assert!(server.log().iter().any(|l| l.contains("not a certificate and its key")), "{:?}", server.log());
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn without_tls_it_says_once_that_tls_is_expected_in_front() {
    let name = key_set();
    let policy = policy();
    let port = free_port();
    let server =
        Serve::spawn(serve_command(&support::endpoint(), name.name(), "https://issuer.example", port, &policy));
    let told: Vec<String> = server.log().into_iter().filter(|l| l.contains("plain HTTP")).collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("TLS is expected in front"), "{told:?}");
}

/// Every connection is a file: a soft limit of 256 (systemd's default is 1,024) would refuse
/// connections, and KMS's and STS's with them, long before `--max-connections`. The server
/// raises its soft limit to the hard one.
#[test]
fn the_server_raises_its_open_files_limit_to_the_hard_limit() {
    let name = key_set();
    let policy = policy();
    let inner = serve_command(&support::endpoint(), name.name(), "https://issuer.example", free_port(), &policy);
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=256:4096").arg("--").arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let server = Serve::spawn(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3..5], ["4096", "4096"], "{line}");
}

#[test]
fn a_bad_certificate_stops_the_server_before_it_listens() {
    let pki = Pki::new();
    let (cert, _) = pki.server("one");
    let (_, other_key) = pki.server("two");
    let name = key_set();
    let policy = policy();
    let port = free_port();
    for (cert, key, says) in [
        (cert.clone(), other_key.clone(), "not a certificate and its key"),
        (pki.path("missing.pem"), other_key.clone(), "cannot read"),
        (pki.path("server.ext"), other_key, "holds no certificate"),
    ] {
        let mut cmd = serve_command(&support::endpoint(), name.name(), "https://issuer.example", port, &policy);
        let out =
            cmd.args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens");
    }
}

/// A proxy to LocalStack's KMS whose `Sign` answers after `delay`.
fn slow_signing(delay: Duration) -> FaultProxy {
    FaultProxy::start(&support::endpoint(), move |exchange| {
        if exchange.operation() == "Sign" {
            std::thread::sleep(delay);
        }
        Action::Forward
    })
}

/// Posts a token request to a plain-HTTP server on another thread; its status and body.
fn post_in_background(port: u16, issuer: &str) -> std::thread::JoinHandle<Result<(u16, serde_json::Value), String>> {
    let body = token_request(issuer, Duration::ZERO);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/token"))
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            Ok((status, response.json().await.map_err(|e| e.to_string())?))
        })
    })
}

/// Waits until `kms` has seen a `Sign` call: the token request is in flight at the server.
fn wait_for_sign(kms: &FaultProxy) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while kms.count("Sign") == 0 {
        assert!(Instant::now() < deadline, "no Sign call reached KMS");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_token_request_in_flight_across_sigterm_is_answered_then_the_server_exits_0() {
    let name = key_set();
    let policy = policy();
    let kms = slow_signing(Duration::from_secs(2));
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut server = Serve::spawn(serve_command(&kms.url, name.name(), &issuer, port, &policy));
    let request = post_in_background(port, &issuer);
    wait_for_sign(&kms);
    server.signal("TERM");
    // Not accepting from the moment it drains: a new connection is refused.
    let deadline = Instant::now() + Duration::from_secs(2);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = request.join().unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().is_some_and(|t| t.split('.').count() == 3), "{body}");
    let exit = server.wait_for_exit(Duration::from_secs(15)).expect("serve did not exit after its drain");
    assert_eq!(exit.code(), Some(0), "{:?}", server.log());
    let log = server.log();
    assert!(
        log.iter().any(|l| l.contains("draining")) && log.iter().any(|l| l.contains("drained: every request answered")),
        "{log:?}"
    );
    assert_eq!(server.audit().iter().filter(|a| a["decision"] == "allow").count(), 1, "the drain's decision is logged");
}

#[test]
fn a_drain_that_runs_out_of_time_cuts_the_request_and_exits_1() {
    let name = key_set();
    let policy = policy();
    let kms = slow_signing(Duration::from_secs(4));
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut cmd = serve_command(&kms.url, name.name(), &issuer, port, &policy);
    cmd.args(["--drain-timeout", "1s"]);
    let mut server = Serve::spawn(cmd);
    let request = post_in_background(port, &issuer);
    wait_for_sign(&kms);
    let stopped = Instant::now();
    server.signal("TERM");
    let exit = server.wait_for_exit(Duration::from_secs(10)).expect("serve did not exit");
    assert!(stopped.elapsed() < Duration::from_secs(3), "exited {:?} after SIGTERM", stopped.elapsed());
    assert_eq!(exit.code(), Some(1), "{:?}", server.log());
    assert!(server.log().iter().any(|l| l.contains("drain timed out after 1s: 1 request cut")), "{:?}", server.log());
    assert!(request.join().unwrap().is_err(), "the cut request got no answer");
}

#[test]
fn readyz_is_503_until_the_keys_load_and_health_says_so() {
    let name = key_set();
    let policy = policy();
    let (kms, switch) = FaultProxy::switchable(&support::endpoint());
    switch.set(Link::Down);
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let server =
        Serve::spawn_until(serve_command(&kms.url, name.name(), &issuer, port, &policy), "kms-jwt: starting on ");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let get = |path: &str| {
        runtime.block_on(async {
            let response = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.unwrap();
            let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry, response.json::<serde_json::Value>().await.unwrap())
        })
    };
    let health = |url: &str| support::kms_jwt!().output(["health", "--url", url]).status.code();
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    // KMS answers 503: the server listens, and is not ready.
    wait_for_line(&server, "kms is unreachable, retrying");
    assert_eq!(get("/readyz"), (503, None, serde_json::json!({ "status": "starting" })));
    assert_eq!(get("/healthz").0, 200, "alive while it starts");
    let (status, retry, body) = get("/.well-known/jwks.json");
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body}");
    assert_eq!(get("/token").0, 503);
    assert_eq!(health(&readyz), Some(1));
    // KMS is back: the next attempt loads the keys and starts the issuer.
    switch.set(Link::Up);
    wait_for_line(&server, "kms-jwt: listening on ");
    assert_eq!(get("/readyz"), (200, None, serde_json::json!({ "status": "ready" })));
    assert_eq!(get("/.well-known/jwks.json").0, 200);
    assert_eq!(health(&readyz), Some(0));
    assert_eq!(health(&format!("http://127.0.0.1:{}/readyz", free_port())), Some(2), "nothing listens");
}

#[test]
fn a_wrong_key_stops_the_server_at_start_up_while_an_outage_does_not() {
    let policy = policy();
    let port = free_port();
    let out = serve_command(&support::endpoint(), "no-such-set-here", "https://issuer.example", port, &policy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.lines().last().unwrap().contains("not found"), "{err}");
}

/// `/metrics` parsed by `prometheus_client`'s parser (Prometheus text, or `OpenMetrics` when
/// `openmetrics`): every sample as `[name, labels, value]`.
fn scrape(url: &str, openmetrics: bool) -> Vec<(String, serde_json::Map<String, serde_json::Value>, f64)> {
    let script = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families as prometheus
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
url, om = sys.argv[1], sys.argv[2] == "1"
request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"} if om else {})
with urllib.request.urlopen(request) as answer:
    kind, text = answer.headers["Content-Type"], answer.read().decode()
assert kind.startswith("application/openmetrics-text" if om else "text/plain; version=0.0.4"), kind
parse = openmetrics if om else prometheus
print(json.dumps([[s.name, s.labels, s.value] for f in parse(text) for s in f.samples]))
"#;
    let out = Command::new(support::python())
        .args(["-c", script, url, if openmetrics { "1" } else { "0" }])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`, if there is one.
fn sample(
    samples: &[(String, serde_json::Map<String, serde_json::Value>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).and_then(|x| x.as_str()) == Some(*v)))
        .map(|(_, _, value)| *value)
}

#[test]
fn metrics_are_prometheus_text_on_their_own_listener_and_count_what_happens() {
    let name = key_set();
    let policy = policy();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let metrics_port = free_port();
    let mut cmd = serve_command(&support::endpoint(), name.name(), &issuer, port, &policy);
    cmd.args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")]);
    let server = Serve::spawn(cmd);
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let status =
        |request: reqwest::RequestBuilder| runtime.block_on(async { request.send().await.unwrap().status().as_u16() });
    let jwks = format!("{issuer}/.well-known/jwks.json");
    for _ in 0..3 {
        assert_eq!(status(http.get(&jwks)), 200);
    }
    let etag = runtime
        .block_on(async { http.get(&jwks).send().await.unwrap().headers()["etag"].to_str().unwrap().to_owned() });
    assert_eq!(status(http.get(&jwks).header("if-none-match", etag)), 304);
    assert_eq!(status(http.get(format!("{issuer}/metrics"))), 404, "not on the public listener");
    let post_token = |body: Vec<u8>| status(http.post(format!("{issuer}/token")).body(body));
    assert_eq!(post_token(token_request(&issuer, Duration::ZERO)), 200);
    assert_eq!(post_token(token_request(&issuer, Duration::from_secs(60))), 200);
    assert_eq!(post_token(token_request("https://elsewhere.example", Duration::ZERO)), 401);

    let before = scrape(&metrics, false);
    let count = |samples: &[_], name: &str, labels: &[(&str, &str)]| sample(samples, name, labels).unwrap_or(0.0);
    assert_eq!(count(&before, "kms_jwt_http_requests_total", &[("route", "jwks"), ("status", "200")]), 4.0);
    assert_eq!(count(&before, "kms_jwt_http_requests_total", &[("route", "jwks"), ("status", "304")]), 1.0);
    assert_eq!(count(&before, "kms_jwt_http_requests_total", &[("route", "other"), ("status", "404")]), 1.0);
    assert_eq!(count(&before, "kms_jwt_http_requests_total", &[("route", "token"), ("status", "200")]), 2.0);
    assert_eq!(count(&before, "kms_jwt_http_requests_total", &[("route", "token"), ("status", "401")]), 1.0);
    assert_eq!(count(&before, "kms_jwt_http_request_duration_seconds_count", &[("route", "jwks")]), 5.0);
    assert_eq!(count(&before, "kms_jwt_token_decisions_total", &[("outcome", "issued"), ("audience_rule", "0")]), 2.0);
    assert_eq!(
        count(&before, "kms_jwt_token_decisions_total", &[("outcome", "unauthenticated"), ("audience_rule", "none")]),
        1.0
    );
    assert_eq!(count(&before, "kms_jwt_token_cache_misses_total", &[]), 1.0);
    assert_eq!(count(&before, "kms_jwt_token_cache_hits_total", &[]), 1.0);
    let sign = [("operation", "Sign"), ("region", "us-east-1"), ("outcome", "ok")];
    assert_eq!(count(&before, "kms_jwt_kms_calls_total", &sign), 1.0, "one Sign: the second token was cached");
    assert!(count(&before, "kms_jwt_kms_calls_total", &[("operation", "GetPublicKey"), ("outcome", "ok")]) >= 1.0);
    assert_eq!(
        count(&before, "kms_jwt_kms_call_duration_seconds_count", &[("operation", "Sign"), ("region", "us-east-1")]),
        1.0
    );
    let age = sample(&before, "kms_jwt_jwks_age_seconds", &[]).unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");
    let key_age = sample(&before, "kms_jwt_current_key_age_seconds", &[]).unwrap();
    assert!((0.0..600.0).contains(&key_age), "a key made for this test: {key_age}");
    assert!(sample(&before, "kms_jwt_signing_key_age_seconds", &[]).is_some());
    assert_eq!(sample(&before, "kms_jwt_signer_region_up", &[("region", "us-east-1")]), Some(1.0));
    assert_eq!(sample(&before, "kms_jwt_jwks_region_up", &[("region", "us-east-1")]), Some(1.0));
    assert_eq!(sample(&before, "kms_jwt_requests_in_flight", &[]), Some(0.0));
    assert!(sample(&before, "kms_jwt_open_connections", &[]).is_some());

    // The counters move with the requests, and OpenMetrics parses too.
    assert_eq!(status(http.get(&jwks)), 200);
    let after = scrape(&metrics, true);
    assert_eq!(count(&after, "kms_jwt_http_requests_total", &[("route", "jwks"), ("status", "200")]), 5.0);
    assert_eq!(count(&after, "kms_jwt_token_decisions_total", &[("outcome", "issued")]), 2.0);
    drop(server);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let name = key_set();
    let policy = policy();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut cmd = serve_command(&support::endpoint(), name.name(), &issuer, port, &policy);
    cmd.args(["--log-format", "json"]);
    let server = Serve::spawn(cmd);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{issuer}/token"))
            .body(token_request(&issuer, Duration::ZERO))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let lines: Vec<serde_json::Value> = server
        .log()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["message"].as_str().is_some_and(|m| m.starts_with("listening on"))),
        "{lines:?}"
    );
    assert_eq!(server.audit().len(), 1, "{lines:?}");
}
