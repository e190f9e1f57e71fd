//! `kms-jwt serve --token-policy` and `kms-jwt token` through the real binary and HTTP, against
//! LocalStack's KMS and STS: tokens for the root and for an assumed role, verified by PyJWT's
//! `PyJWKClient` from the server's own discovery document, and every refusal an attacker can
//! provoke, with the audit line each one leaves.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::io::Read as _;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use kms_jwt::issuer::{TokenRequest, sign_proof};
use support::proxy::{FaultProxy, Link};
use support::serve::Serve;

const POLICY: &str = r#"
[[rule]]
principals = ["arn:aws:iam::000000000000:root"]
audiences  = ["api"]
max_ttl    = "30m"

[[rule]]
principals = ["arn:aws:iam::000000000000:role/ci-*"]
audiences  = ["deploy"]
max_ttl    = "15m"
claims     = { team = "platform" }
"#;

/// A new ECC key set (ECC: LocalStack signs with it in milliseconds).
fn key_set() -> kms_jwt::keyset::KeySetName {
    support::key_set_blocking("ECC_NIST_P256")
}

/// The policy above, in a file that must outlive the server reading it.
fn policy() -> tempfile::NamedTempFile {
    let mut policy = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut policy, POLICY.as_bytes()).unwrap();
    policy
}

/// `kms-jwt serve` for set `name` with `policy`; KMS at `kms`, STS at LocalStack.
fn serve(kms: &str, name: &str, policy: &tempfile::NamedTempFile, extra: &[&str]) -> Serve {
    serve_with_env(kms, name, policy, extra, &[])
}

/// The same, with `env` set for the server.
fn serve_with_env(
    kms: &str,
    name: &str,
    policy: &tempfile::NamedTempFile,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Serve {
    // The issuer URL must be the server's own, for PyJWKClient to follow jwks_uri.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = support::kms_jwt!().endpoint(kms).command();
    cmd.args(["--max-attempts", "1", "--timeout", "3s"])
        .args(["serve", "--key", name, "--issuer", &url, "--listen", &format!("127.0.0.1:{port}")])
        .args(["--token-policy", policy.path().to_str().unwrap()])
        .args(["--sts-region", "us-east-1", "--sts-endpoint-url", &support::endpoint()])
        .args(extra)
        .envs(env.iter().copied());
    let server = Serve::spawn(cmd);
    assert_eq!(server.url, url);
    server
}

/// Access key, secret and session token.
type Creds<'a> = (&'a str, &'a str, &'a str);

/// `kms-jwt token` against `server` with `creds` (default: `LocalStack`'s root).
fn token(server: &Serve, aud: &str, args: &[&str], creds: Option<Creds>) -> Output {
    let mut cmd = support::kms_jwt!().region("us-east-1").command();
    cmd.args(["token", "--issuer", &server.url, "--aud", aud]).args(args);
    let (id, secret, session) = creds.unwrap_or((support::ACCESS_KEY_ID, support::SECRET_ACCESS_KEY, ""));
    cmd.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret).env_remove("AWS_ENDPOINT_URL");
    if session.is_empty() {
        cmd.env_remove("AWS_SESSION_TOKEN");
    } else {
        cmd.env("AWS_SESSION_TOKEN", session);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

/// Credentials of a session of a new role `name`, from LocalStack's IAM and STS (boto3).
fn assumed_role(name: &str) -> (String, String, String) {
    let script = r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
account = boto3.client("sts", **kw).get_caller_identity()["Account"]
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}
boto3.client("iam", **kw).create_role(RoleName=sys.argv[2], AssumeRolePolicyDocument=json.dumps(trust))
c = boto3.client("sts", **kw).assume_role(RoleArn=f"arn:aws:iam::{account}:role/{sys.argv[2]}",
                                          RoleSessionName="issuer-test")["Credentials"]
print(json.dumps([c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]]))
"#;
    let out = Command::new(support::python())
        .args(["-c", script, &support::endpoint(), name, support::ACCESS_KEY_ID, support::SECRET_ACCESS_KEY])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let [id, secret, session]: [String; 3] = serde_json::from_slice(&out.stdout).unwrap();
    (id, secret, session)
}

/// Verifies `token` with PyJWT's `PyJWKClient`, from the issuer's discovery document.
fn pyjwt_from_discovery(issuer: &str, token: &str, aud: &str) -> serde_json::Value {
    let script = r#"
import json, sys, urllib.request, jwt
issuer, token, aud = sys.argv[1:4]
config = json.load(urllib.request.urlopen(issuer + "/.well-known/openid-configuration"))
key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(token)
print(json.dumps(jwt.decode(token, key.key, algorithms=config["id_token_signing_alg_values_supported"],
                            audience=aud, issuer=issuer)))
"#;
    let out = Command::new(support::python()).args(["-c", script, issuer, token, aud]).output().unwrap();
    assert!(out.status.success(), "PyJWT: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn root_and_an_assumed_role_get_tokens_that_pyjwt_verifies_from_discovery() {
    let name = key_set();
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &[]);

    let out = token(&server, "api", &["--ttl", "10m"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let jwt = String::from_utf8(out.stdout).unwrap();
    let claims = pyjwt_from_discovery(&server.url, jwt.trim(), "api");
    let account = claims["aws_account"].as_str().unwrap().to_owned();
    assert_eq!(claims["sub"], format!("arn:aws:iam::{account}:root"));
    assert_eq!(claims["iss"], server.url);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let role = format!("ci-{}", support::unique("build"));
    let (id, secret, session) = assumed_role(&role);
    let out = token(&server, "deploy", &[], Some((&id, &secret, &session)));
    assert!(out.status.success(), "{}", stderr(&out));
    let jwt = String::from_utf8(out.stdout).unwrap();
    let claims = pyjwt_from_discovery(&server.url, jwt.trim(), "deploy");
    assert_eq!(claims["sub"], format!("arn:aws:iam::{account}:role/{role}"));
    assert_eq!(claims["team"], "platform");
    // No ttl asked for: the rule's max_ttl.
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);

    let allowed: Vec<_> = server.json_lines().into_iter().filter(|a| a["decision"] == "allow").collect();
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    assert_eq!(allowed[1]["principal"], format!("arn:aws:iam::{account}:role/{role}"));
    assert_eq!(allowed[1]["audience"], "deploy");
    assert_eq!(allowed[1]["jti"], claims["jti"]);
}

#[test]
fn the_policy_refuses_principals_audiences_and_lifetimes_it_does_not_allow() {
    let name = key_set();
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &[]);
    let other = support::unique("deployer");
    let (id, secret, session) = assumed_role(&other);
    let cases: [(&str, &[&str], Option<Creds>, &str); 3] = [
        ("deploy", &[], Some((&id, &secret, &session)), "no rule allows this principal (HTTP 403)"),
        ("deploy", &[], None, "audience \"deploy\" is not allowed for this principal (HTTP 403)"),
        ("api", &["--ttl", "31m"], None, "ttl 31m is longer than this principal's max_ttl of 30m (HTTP 403)"),
    ];
    for (aud, args, creds, expected) in cases {
        let out = token(&server, aud, args, creds);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(stderr(&out), format!("kms-jwt: the issuer refused: {expected}"));
    }
    // Three denials; `kms-jwt token` runs made within one second make the same proof, and the
    // issuer's refusal of the repeat (which the client then retries) is in the log too.
    let denied = server
        .json_lines()
        .into_iter()
        .filter(|a| a["decision"] == "deny" && a["reason"] != "proof already used")
        .count();
    assert_eq!(denied, 3);
}

/// Posts raw bytes to `/token`.
fn post(server: &Serve, body: Vec<u8>) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{}/token", server.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    })
}

fn request(aud: &str, server_id: &str, at: SystemTime, url: Option<&str>) -> Vec<u8> {
    let creds =
        aws_credential_types::Credentials::new(support::ACCESS_KEY_ID, support::SECRET_ACCESS_KEY, None, None, "test");
    let mut proof = sign_proof(&creds, Some("us-east-1"), server_id, at).unwrap();
    if let Some(url) = url {
        url.clone_into(&mut proof.url);
    }
    serde_json::to_vec(&TokenRequest { audience: aud.into(), ttl: None, proof }).unwrap()
}

#[test]
fn forged_stale_misdirected_oversized_and_malformed_requests_are_refused() {
    let name = key_set();
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &[]);
    let now = SystemTime::now();

    // A good request first, made by hand: the refusals below differ from it in one thing each.
    let (status, body) = post(&server, request("api", &server.url, now, None));
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_at"].as_i64().unwrap() > 0);

    let (status, body) = post(&server, request("api", "https://other-issuer.example", now, None));
    assert_eq!((status, body["error"].as_str().unwrap().contains("another server")), (401, true), "{body}");
    let stale = now - Duration::from_secs(6 * 60);
    let (status, body) = post(&server, request("api", &server.url, stale, None));
    assert_eq!((status, body["error"].as_str().unwrap().contains("5 minutes")), (401, true), "{body}");

    // A proof that names a host of the attacker's: refused, and the host never hears from us.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let trap_url = format!("http://{}/", trap.local_addr().unwrap());
    trap.set_nonblocking(true).unwrap();
    let (status, body) = post(&server, request("api", &server.url, now, Some(&trap_url)));
    assert_eq!((status, body["error"].as_str().unwrap().contains("must be sent to")), (401, true), "{body}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        trap.accept().map(drop).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the server connected to the host the proof named"
    );

    let mut oversized = request("api", &server.url, now, None);
    oversized.splice(1..1, format!("\"pad\":\"{}\",", "x".repeat(9 * 1024)).into_bytes());
    let (status, body) = post(&server, oversized);
    assert_eq!(status, 400, "{body}");
    for malformed in [&b"{"[..], b"[]", b"{\"audience\":\"api\"}", b"\xff\xfe", b""] {
        let (status, body) = post(&server, malformed.to_vec());
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with("malformed request"), "{body}");
    }
    // Each refusal left one audit line: another server, stale, misdirected, oversized, 5 malformed.
    let audit = server.json_lines();
    assert_eq!(audit.iter().filter(|a| a["decision"] == "deny").count(), 9, "{audit:?}");
}

#[test]
fn a_principal_over_its_rate_gets_429() {
    let name = key_set();
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &["--rate-limit", "2"]);
    // Each proof dated its own minute: two made in the same second would be one proof, used once.
    let start = SystemTime::now();
    let at = |i: u64| start - Duration::from_secs(60 * i);
    let codes: Vec<u16> = (0..3).map(|i| post(&server, request("api", &server.url, at(i), None)).0).collect();
    assert_eq!(codes, [200, 200, 429]);
}

#[test]
fn kms_cut_gives_503_and_the_server_keeps_answering() {
    let name = key_set();
    let (kms, switch) = FaultProxy::switchable(&support::endpoint());
    let policy = policy();
    let server = serve(&kms.url, name.name(), &policy, &[]);
    switch.set(Link::Down);
    for _ in 0..2 {
        let (status, body) = post(&server, request("api", &server.url, SystemTime::now(), None));
        assert_eq!((status, body), (503, serde_json::json!({"error": "kms is unavailable"})));
    }
    let mut health = String::new();
    std::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .and_then(|mut s| {
            std::io::Write::write_all(&mut s, b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
            s.read_to_string(&mut health)
        })
        .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let errors = server.json_lines().into_iter().filter(|a| a["decision"] == "error").count();
    assert_eq!(errors, 2);
}

#[test]
fn a_multi_region_issuer_signs_in_the_next_region_while_its_own_is_cut() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_, name) = runtime.block_on(support::key_set_in("ECC_NIST_P256", &["us-east-1", "eu-west-1"]));
    // us-east-1 through a proxy the test switches off; eu-west-1 straight to LocalStack.
    let (primary, switch) = FaultProxy::switchable(&support::endpoint());
    let policy = policy();
    let server = serve_with_env(
        &support::endpoint(),
        name.name(),
        &policy,
        &["--fallback-region", "eu-west-1"],
        &[("KMS_JWT_ENDPOINT_URL_US_EAST_1", &primary.url)],
    );
    let before = token(&server, "api", &[], None);
    assert!(before.status.success(), "{}", stderr(&before));
    switch.set(Link::Down);
    // Another lifetime is another cached token: this one must be signed now, in eu-west-1.
    let during = token(&server, "api", &["--ttl", "10m"], None);
    assert!(during.status.success(), "{}", stderr(&during));
    let header = |out: &Output| {
        kms_jwt::decode_unverified(String::from_utf8_lossy(&out.stdout).trim()).unwrap().0["kid"].clone()
    };
    assert_eq!(header(&before), header(&during), "one kid, whichever region signed");
    let jwks = support::kms_jwt!().localstack().region("eu-west-1").output(["jwks", "--key", name.name()]);
    let verifier =
        kms_jwt::Verifier::from_jwks(&kms_jwt::Jwks::parse(&jwks.stdout).unwrap(), None).unwrap().with_audience("api");
    for out in [&before, &during] {
        verifier.verify::<kms_jwt::Claims>(String::from_utf8_lossy(&out.stdout).trim()).map(|v| v.claims).unwrap();
    }
}

#[test]
fn sighup_reloads_the_policy_and_a_bad_file_keeps_the_one_in_force() {
    let name = key_set();
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &[]);
    let ask = || token(&server, "api", &[], None);
    assert!(ask().status.success());
    let hup = || {
        server.signal("HUP");
        std::thread::sleep(Duration::from_millis(300));
    };
    // The root may now only ask for "other".
    std::fs::write(policy.path(), POLICY.replacen("[\"api\"]", "[\"other\"]", 1)).unwrap();
    hup();
    assert_eq!(
        stderr(&ask()),
        "kms-jwt: the issuer refused: audience \"api\" is not allowed for this principal (HTTP 403)"
    );
    std::fs::write(policy.path(), "[[rule]]\nprincipals = 7\n").unwrap();
    hup();
    let log = server.log().join("\n");
    assert!(log.contains("token policy not reloaded, the old one stays in force"), "{log}");
    assert!(!ask().status.success(), "the reloaded policy, not the first one, is still in force");
    assert!(token(&server, "other", &[], None).status.success());
}

#[test]
fn a_slow_client_cannot_hold_a_connection() {
    use std::io::Write as _;
    let name = key_set();
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &[]);
    let addr = server.url.trim_start_matches("http://").to_owned();

    // Headers that never end: the server closes the connection after its header deadline.
    let mut headers = std::net::TcpStream::connect(&addr).unwrap();
    headers.write_all(b"POST /token HTTP/1.1\r\nhost: x\r\n").unwrap();
    headers.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = headers.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(15), "held for {:?}", started.elapsed());

    // A body that never comes: 400 after the body deadline.
    let mut body = std::net::TcpStream::connect(&addr).unwrap();
    body.write_all(
        b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .unwrap();
    body.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    let _ = body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("{\"error\":\"request body too slow\"}"), "{answer}");
}

#[test]
fn after_a_rotation_tokens_come_from_the_new_current_key() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sets, name) = runtime.block_on(support::key_set("ECC_NIST_P256"));
    let policy = policy();
    let server = serve(&support::endpoint(), name.name(), &policy, &["--refresh", "1s"]);
    let kid = |out: Output| {
        assert!(out.status.success(), "{}", stderr(&out));
        let jwt = String::from_utf8(out.stdout).unwrap();
        let header = kms_jwt::fuzzing::b64_decode(jwt.split('.').next().unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
    };
    let before = kid(token(&server, "api", &[], None));
    let rotated = runtime.block_on(sets.rotate(&name, &support::rotation_policy(None, false))).unwrap();
    let new = rotated.state.current.as_ref().and_then(|k| k.kid()).unwrap().to_owned();
    // Once the server's JWKS has carried the new key for a max-age (1 s), tokens come from it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut ttl = 1;
    loop {
        let after = kid(token(&server, "api", &["--ttl", &format!("{ttl}m")], None));
        if after == new {
            break;
        }
        assert_eq!(after, before);
        assert!(std::time::Instant::now() < deadline, "still signing with the demoted key");
        ttl = ttl % 29 + 1;
        std::thread::sleep(Duration::from_millis(500));
    }
}
