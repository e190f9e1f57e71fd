//! The findings of the issuer's adversarial review, each as an attack on the real binary:
//! `kms-jwt serve --token-policy` against LocalStack's KMS, STS and IAM (its multi-account
//! mode: a 12-digit access key id is the account), with STS behind a counting proxy where a
//! test must show what reached it.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kms_jwt::issuer::{Proof, TokenRequest, sign_proof};
use support::ACCOUNT;
use support::proxy::{Action, FaultProxy, Link};
use support::serve::Serve;

fn policy(rules: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, rules.as_bytes()).unwrap();
    file
}

fn root_rule() -> String {
    format!("[[rule]]\nprincipals = [\"arn:aws:iam::{ACCOUNT}:root\"]\naudiences = [\"api\"]\nmax_ttl = \"30m\"\n")
}

/// A new ECC key set (LocalStack signs ECC in milliseconds).
fn key_set() -> String {
    support::key_set_blocking("ECC_NIST_P256").name().to_owned()
}

/// `kms-jwt serve` for set `name` with `policy`, proofs sent to `sts` (LocalStack, or a proxy).
fn serve(name: &str, policy: &tempfile::NamedTempFile, sts: &str, extra: &[&str]) -> Serve {
    let mut cmd = support::kms_jwt!().localstack().command();
    // The issuer URL is a fixed one: proofs are made for it before the port is known.
    cmd.args(["--max-attempts", "1", "--timeout", "3s"])
        .args(["serve", "--key", name, "--issuer", "https://issuer.example", "--listen", "127.0.0.1:0"])
        .args(["--token-policy", policy.path().to_str().unwrap()])
        .args(["--sts-region", "us-east-1", "--sts-endpoint-url", sts])
        .args(extra);
    Serve::spawn(cmd)
}

/// A proof made by kms-jwt's client side for `https://issuer.example`. Two proofs made with the
/// same credentials in the same second are the same proof, and a proof is used once: the n-th
/// proof of an access key is dated n seconds after four minutes ago, so that no two are alike
/// (for up to 480 proofs of one key, more than any test makes).
fn proof(access_key: &str) -> Proof {
    proof_with(&aws_credential_types::Credentials::new(access_key, "test", None, None, "test"))
}

fn proof_with(creds: &aws_credential_types::Credentials) -> Proof {
    static MADE: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());
    let n = {
        let mut made = MADE.lock().unwrap();
        let key = creds.access_key_id().to_owned();
        if let Some((_, n)) = made.iter_mut().find(|(k, _)| *k == key) {
            *n += 1;
            *n
        } else {
            made.push((key, 0));
            0
        }
    };
    let at = SystemTime::now() - Duration::from_secs(240) + Duration::from_secs(n);
    sign_proof(creds, Some("us-east-1"), "https://issuer.example", at).unwrap()
}

fn body(audience: &str, ttl: Option<&str>, proof: Proof) -> Vec<u8> {
    serde_json::to_vec(&TokenRequest { audience: audience.into(), ttl: ttl.map(str::to_owned), proof }).unwrap()
}

/// Posts `body` to `/token`; the status, the response's headers and its JSON.
fn post(server: &Serve, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{}/token", server.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or_default())
    })
}

/// Runs a Python script with the LocalStack venv (boto3, botocore, PyJWT); its stdout as JSON.
fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(support::python()).args(["-c", script]).args(args).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `kms-jwt token` against `server` with these credentials.
fn token_cli(server: &Serve, aud: &str, creds: (&str, &str, Option<&str>)) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kms-jwt"));
    cmd.args(["--region", "us-east-1", "token", "--issuer", &server.url, "--aud", aud])
        .args(["--server-id", "https://issuer.example"])
        .env("AWS_ACCESS_KEY_ID", creds.0)
        .env("AWS_SECRET_ACCESS_KEY", creds.1)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
    match creds.2 {
        Some(session) => cmd.env("AWS_SESSION_TOKEN", session),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    cmd.output().unwrap()
}

/// Runs `cmd` to its exit; a server that starts instead of refusing is killed after `limit`.
fn exit_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

/// Finding 1: an IAM user of another account whose path spells the allowed role. IAM paths may
/// contain `:`, so the user's ARN ends in `:iam::ACCOUNT:role/NAME` and a `*` that crossed
/// fields let it through.
#[test]
fn a_user_of_another_account_whose_path_spells_an_allowed_role_is_denied() {
    let name = key_set();
    let role = support::unique("deployer");
    let script = r#"
import json, sys, boto3
endpoint, role, account = sys.argv[1:4]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_secret_access_key="test")
# The attacker's account: LocalStack takes a 12-digit access key id as the account.
iam = boto3.client("iam", aws_access_key_id="999999999999", **kw)
iam.create_user(UserName=role, Path=f"/x:iam::{account}:role/")
key = iam.create_access_key(UserName=role)["AccessKey"]
attacker = boto3.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                        endpoint_url=endpoint, region_name="us-east-1").get_caller_identity()["Arn"]
# The real role, in the issuer's account, for the allowed case.
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}
root = dict(aws_access_key_id="test", **kw)
boto3.client("iam", **root).create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
c = boto3.client("sts", **root).assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}",
                                            RoleSessionName="deploy")["Credentials"]
print(json.dumps({"attacker": [key["AccessKeyId"], key["SecretAccessKey"], attacker],
                  "role": [c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]]}))
"#;
    let made = python(script, &[&support::endpoint(), &role, ACCOUNT]);
    let attacker_arn = made["attacker"][2].as_str().unwrap();
    assert_eq!(attacker_arn, format!("arn:aws:iam::999999999999:user/x:iam::{ACCOUNT}:role/{role}"));

    let rules = policy(&format!(
        "[[rule]]\nprincipals = [\"arn:*:iam::{ACCOUNT}:role/{role}\"]\naudiences = [\"api\"]\nmax_ttl = \"15m\"\n"
    ));
    let server = serve(&name, &rules, &support::endpoint(), &[]);
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
    let (id, secret) = (s(&made["attacker"][0]), s(&made["attacker"][1]));
    let out = token_cli(&server, "api", (&id, &secret, None));
    assert_eq!(out.status.code(), Some(2), "the attacker got a token");
    assert_eq!(stderr(&out), "kms-jwt: the issuer refused: no rule allows this principal (HTTP 403)");

    let (id, secret, session) = (s(&made["role"][0]), s(&made["role"][1]), s(&made["role"][2]));
    let out = token_cli(&server, "api", (&id, &secret, Some(&session)));
    assert!(out.status.success(), "the role itself is allowed: {}", stderr(&out));
}

/// Finding 1, at load time: a pattern whose account is not a literal 12-digit id.
#[test]
fn a_policy_with_a_wildcard_account_is_refused_at_start_with_its_line() {
    let name = key_set();
    let rules =
        policy("[[rule]]\naudiences = [\"api\"]\nprincipals = [\"arn:aws:iam::*:role/ci\"]\nmax_ttl = \"1h\"\n");
    let mut cmd = support::kms_jwt!().localstack().command();
    cmd.args(["serve", "--key", &name, "--issuer", "https://issuer.example", "--listen", "127.0.0.1:0"])
        .args(["--token-policy", rules.path().to_str().unwrap()]);
    let out = exit_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("token policy: line 3:") && err.contains("12-digit account id"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Finding 2: a proof is good for one token.
#[test]
fn a_replayed_proof_gets_401() {
    let name = key_set();
    let server = serve(&name, &policy(&root_rule()), &support::endpoint(), &[]);
    let request = body("api", None, proof("test"));
    let (status, _, answer) = post(&server, request.clone());
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = post(&server, request);
    assert_eq!((status, answer), (401, serde_json::json!({"error": "proof already used"})));
}

/// Findings 3 and 8: only an allow-list of headers reaches STS, malformed proofs are 401 (never
/// 5xx) and nothing is sent for them, Content-Length comes from the body, and STS's answer
/// must agree with itself.
#[test]
fn malformed_proofs_are_401_and_never_reach_sts() {
    type Change = Box<dyn Fn(&mut Proof)>;
    let name = key_set();
    let sts = FaultProxy::forwarding(&support::endpoint());
    let server = serve(&name, &policy(&root_rule()), &sts.url, &[]);
    let set = |name: &'static str, value: &'static str| -> Change {
        Box::new(move |p: &mut Proof| _ = p.headers.insert(name.to_owned(), value.to_owned()))
    };
    let auth = |change: fn(&str) -> String| -> Change {
        Box::new(move |p: &mut Proof| {
            let value = change(&p.headers["authorization"]);
            p.headers.insert("authorization".into(), value);
        })
    };
    // A header the signature covers must reach STS: one outside the allow-list cannot.
    let signed = |name: &'static str, value: &'static str| -> Change {
        Box::new(move |p: &mut Proof| {
            p.headers.insert(name.to_owned(), value.to_owned());
            let auth = p.headers["authorization"]
                .replace("SignedHeaders=", &format!("SignedHeaders={};", name.to_ascii_lowercase()));
            p.headers.insert("authorization".into(), auth);
        })
    };
    let cases: Vec<(&str, Change)> = vec![
        ("a signed header outside the allow-list", signed("X-Forwarded-For", "203.0.113.7")),
        ("a signed header that would choose STS's connection", signed("Connection", "close")),
        ("a signed Transfer-Encoding", signed("Transfer-Encoding", "chunked")),
        ("CR LF in a value", set("X-Amz-Security-Token", "token\r\nX-Injected: 1")),
        ("LF in a value", set("Content-Type", "text/plain\nx: y")),
        ("a name that is not a token", set("bad name", "1")),
        ("a value that is not ASCII", set("X-Amz-Security-Token", "t\u{e9}st")),
        ("a Content-Length that is not the body's", set("Content-Length", "9999")),
        ("two SignedHeaders", auth(|a| format!("{a}, SignedHeaders=host"))),
        ("two Signatures", auth(|a| format!("{a}, Signature={}", "0".repeat(64)))),
        ("an Authorization that does not parse", auth(|_| "AWS4-HMAC-SHA256 nonsense".into())),
        ("a signature that is not hex", auth(|a| format!("{}zz", &a[..a.len() - 2]))),
        ("a credential scope for another service", auth(|a| a.replace("/sts/", "/s3/"))),
    ];
    for (what, change) in &cases {
        let mut p = proof("test");
        change(&mut p);
        let (status, _, answer) = post(&server, body("api", None, p));
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {answer}");
    }
    assert_eq!(sts.count("GetCallerIdentity"), 0, "a malformed proof reached STS");

    // A Content-Length that is the body's (as Go's SDK signs it) is fine; STS gets the body's.
    // Unsigned headers STS does not need (an SDK's User-Agent) are dropped.
    let mut p = proof("test");
    p.headers.insert("Content-Length".into(), p.body.len().to_string());
    p.headers.insert("User-Agent".into(), "aws-sdk-go-v2/1.0".into());
    p.headers.insert("X-Forwarded-For".into(), "203.0.113.7".into());
    let (status, _, answer) = post(&server, body("api", None, p.clone()));
    assert_eq!(status, 200, "{answer}");
    let seen = sts.seen();
    let forwarded = &seen.last().unwrap().headers;
    let mut names: Vec<&str> = forwarded.keys().map(reqwest::header::HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["authorization", "content-length", "content-type", "host", "x-amz-date", "x-kms-jwt-server-id"],
        "only the allow-list (and the computed length) is forwarded"
    );
    assert_eq!(forwarded["content-length"], p.body.len().to_string());
}

/// Finding 8: STS's Account must be the ARN's.
#[test]
fn an_sts_answer_whose_account_differs_from_its_arn_is_refused() {
    let name = key_set();
    let sts = FaultProxy::start(&support::endpoint(), |e| {
        if e.operation() == "GetCallerIdentity" {
            Action::Rewrite(Arc::new(|body: &[u8]| {
                String::from_utf8_lossy(body)
                    .replace(&format!("<Account>{ACCOUNT}</Account>"), "<Account>111122223333</Account>")
                    .into_bytes()
            }))
        } else {
            Action::Forward
        }
    });
    let server = serve(&name, &policy(&root_rule()), &sts.url, &[]);
    let (status, _, answer) = post(&server, body("api", None, proof("test")));
    assert_eq!((status, answer), (503, serde_json::json!({"error": "sts is unavailable"})));
    let audit = server.audit();
    assert_eq!(audit.last().unwrap()["decision"], "error", "{audit:?}");
}

/// Finding 8: STS is reached over TLS, except on loopback.
#[test]
fn a_plain_http_sts_endpoint_off_loopback_is_refused() {
    let name = key_set();
    let rules = policy(&root_rule());
    let mut cmd = support::kms_jwt!().localstack().command();
    cmd.args(["serve", "--key", &name, "--issuer", "https://issuer.example", "--listen", "127.0.0.1:0"]).args([
        "--token-policy",
        rules.path().to_str().unwrap(),
        "--sts-endpoint-url",
        "http://sts.example.com",
    ]);
    let out = exit_within(cmd, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--sts-endpoint-url") && err.contains("must be https"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Finding 4: botocore's `SigV4Auth` signs `host` but leaves the Host header to the HTTP client.
#[test]
fn a_proof_made_by_botocore_without_a_host_header_is_accepted() {
    let name = key_set();
    let server = serve(&name, &policy(&root_rule()), &support::endpoint(), &[]);
    let script = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
request = AWSRequest(method="POST", url="https://sts.us-east-1.amazonaws.com/",
                     data="Action=GetCallerIdentity&Version=2011-06-15",
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                              "x-kms-jwt-server-id": sys.argv[1]})
SigV4Auth(Credentials("test", "test"), "sts", "us-east-1").add_auth(request)
body = request.body.decode() if isinstance(request.body, bytes) else request.body
print(json.dumps({"method": request.method, "url": request.url, "headers": dict(request.headers.items()),
                  "body": body}))
"#;
    let made: Proof = serde_json::from_value(python(script, &["https://issuer.example"])).unwrap();
    assert!(made.header("host").is_none(), "botocore added a Host header: {made:?}");
    assert!(made.header("authorization").unwrap().contains("SignedHeaders=content-type;host;"), "{made:?}");
    let (status, _, answer) = post(&server, body("api", None, made));
    assert_eq!(status, 200, "{answer}");
}

/// Finding 5: a client that is denied again and again reaches STS a bounded number of times,
/// and STS's throttling is 503 with Retry-After, not 401.
#[test]
fn denied_floods_are_limited_before_sts_and_sts_throttling_is_503() {
    let name = key_set();
    let sts = FaultProxy::forwarding(&support::endpoint());
    // The root may ask for "api" only: "other" is denied by the policy, after STS.
    let server = serve(&name, &policy(&root_rule()), &sts.url, &["--rate-limit", "5"]);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..120 {
        *statuses.entry(post(&server, body("other", None, proof("test"))).0).or_default() += 1;
    }
    let reached = sts.count("GetCallerIdentity");
    eprintln!("{reached} of 120 denied requests reached STS with --rate-limit 5: {statuses:?}");
    assert!(reached <= 10, "{reached} of 120 denied requests reached STS with --rate-limit 5: {statuses:?}");
    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), [403, 429], "{statuses:?}");

    let throttled = FaultProxy::start(&support::endpoint(), |_| Action::sts_error(400, "Throttling", "Rate exceeded"));
    let server = serve(&name, &policy(&root_rule()), &throttled.url, &[]);
    let (status, headers, answer) = post(&server, body("api", None, proof("test")));
    assert_eq!(status, 503, "{answer}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

/// Finding 6: slow and idle connections from one address cannot starve everyone else.
#[test]
fn slow_bodies_and_idle_connections_from_one_address_do_not_starve_others() {
    use tokio::io::AsyncWriteExt as _;
    let name = key_set();
    let server = serve(&name, &policy(&root_rule()), &support::endpoint(), &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    // From 127.0.0.2: 70 connections trickling a body one byte every 200 ms, and 1,000 idle ones.
    let connect = move || async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        socket.connect(addr).await
    };
    let held = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..70 {
            let stop = stop.clone();
            held.push(tokio::spawn(async move {
                let Ok(mut conn) = connect().await else { return };
                let request_head =
                    "POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n";
                if conn.write_all(request_head.as_bytes()).await.is_err() {
                    return;
                }
                while !stop.load(Ordering::SeqCst) {
                    if conn.write_all(b" ").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }));
        }
        let mut idle = Vec::new();
        for _ in 0..1000 {
            if let Ok(conn) = connect().await {
                idle.push(conn);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        (held, idle)
    });

    let request = body("api", None, proof("test"));
    let started = Instant::now();
    let (status, _, answer) = post(&server, request);
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(took < Duration::from_secs(1), "a good request took {took:?}");
    for path in ["/.well-known/jwks.json", "/.well-known/openid-configuration"] {
        let started = Instant::now();
        let response = runtime.block_on(reqwest::Client::new().get(format!("{}{path}", server.url)).send()).unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path} took {:?}", started.elapsed());
    }
    stop.store(true, Ordering::SeqCst);
    drop(held);
}

/// Finding 7: lifetimes are whole seconds of at least a minute.
#[test]
fn short_or_fractional_lifetimes_are_400() {
    let name = key_set();
    let server = serve(&name, &policy(&root_rule()), &support::endpoint(), &[]);
    for ttl in ["59s", "0s", "90s 500ms", "1m 1ns"] {
        let (status, _, answer) = post(&server, body("api", Some(ttl), proof("test")));
        assert_eq!(status, 400, "{ttl}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("ttl"), "{ttl}: {answer}");
    }
    let (status, _, answer) = post(&server, body("api", Some("60s"), proof("test")));
    assert_eq!(status, 200, "{answer}");
}

/// Finding 9: the audit line names the caller as STS did (the session, its key, its address,
/// the request id), and stays one JSON object per line whatever the input.
#[test]
fn audit_lines_hold_the_session_and_cannot_be_forged() {
    let name = key_set();
    let role = support::unique("auditor");
    let script = r#"
import json, sys, boto3
endpoint, role, account = sys.argv[1:4]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"AWS": f"arn:aws:iam::{account}:root"}}]}
boto3.client("iam", **kw).create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
c = boto3.client("sts", **kw).assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}",
                                          RoleSessionName="night-shift")["Credentials"]
print(json.dumps([c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]]))
"#;
    let creds = python(script, &[&support::endpoint(), &role, ACCOUNT]);
    let (id, secret, session) =
        (creds[0].as_str().unwrap(), creds[1].as_str().unwrap(), creds[2].as_str().unwrap().to_owned());
    let rules = policy(&format!(
        "[[rule]]\nprincipals = [\"arn:aws:iam::{ACCOUNT}:role/{role}\"]\naudiences = [\"api\"]\nmax_ttl = \"15m\"\n"
    ));
    let server = serve(&name, &rules, &support::endpoint(), &[]);
    let session_proof =
        || proof_with(&aws_credential_types::Credentials::new(id, secret, Some(session.clone()), None, "test"));
    let (status, headers, answer) = post(&server, body("api", None, session_proof()));
    assert_eq!(status, 200, "{answer}");
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    let forged = "api\n{\"audit\":\"token\",\"decision\":\"allow\",\"principal\":\"arn:aws:iam::1:root\"}";
    let (status, _, _) = post(&server, body(forged, None, session_proof()));
    assert_eq!(status, 403);

    for line in server.log().iter().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not one JSON object: {line}: {e}"));
    }
    let audit = server.audit();
    assert_eq!(audit.len(), 2, "{audit:?}");
    let allowed = &audit[0];
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["arn"], format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/night-shift"));
    assert_eq!(allowed["principal"], format!("arn:aws:iam::{ACCOUNT}:role/{role}"));
    assert_eq!(allowed["access_key_id"], id);
    assert_eq!(allowed["client"], "127.0.0.1");
    assert_eq!(allowed["request_id"], request_id);
    assert_eq!(audit[1]["decision"], "deny");
    assert_eq!(audit[1]["audience"], forged, "the audience is kept, inside its JSON string");
}

/// Finding 9: `/healthz` answers a status word, never KMS's errors or the keys' ARNs.
#[test]
fn healthz_says_a_status_word_and_nothing_about_kms() {
    let name = key_set();
    let (kms, switch) = FaultProxy::switchable(&support::endpoint());
    let mut cmd = support::kms_jwt!().endpoint(&kms.url).command();
    cmd.args(["--max-attempts", "1", "--timeout", "2s"]).args([
        "serve",
        "--key",
        &name,
        "--issuer",
        "https://issuer.example",
        "--listen",
        "127.0.0.1:0",
        "--refresh",
        "1s",
    ]);
    let server = Serve::spawn(cmd);
    let health = || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let response = reqwest::get(format!("{}/healthz", server.url)).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let (status, text) = health();
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["status"], "ok", "{text}");
    switch.set(Link::Down);
    std::thread::sleep(Duration::from_millis(3500));
    let (status, text) = health();
    assert_eq!(status, 200, "liveness: the last good keys are still served");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["status"], "stale", "{text}");
    for secret in ["arn:", "alias", &name, "error", "127.0.0.1"] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
    assert!(server.log().iter().any(|l| l.contains("refresh from KMS failed")), "the detail is logged");
}

/// Finding 10: rotations while tokens are minted from many threads at once: every request is
/// answered, and tokens follow the new key.
#[test]
fn rotating_while_minting_under_load_answers_every_request() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (sets, name) = runtime.block_on(support::key_set("ECC_NIST_P256"));
    let server = serve(
        name.name(),
        &policy(&root_rule()),
        &support::endpoint(),
        &["--refresh", "1s", "--rate-limit", "100000", "--address-rate-limit", "0"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/token", server.url);
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let (stop, url) = (stop.clone(), url.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let _in_runtime = runtime.enter();
                let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let mut answered = 0;
                while !stop.load(Ordering::SeqCst) {
                    // Each worker its own lifetimes: many cache entries, minted and dropped.
                    let ttl = format!("{}m", 1 + (answered + i) % 20);
                    let response = runtime
                        // A key of its own per request: many requests a second, none a replay.
                        .block_on(
                            client.post(&url).body(body("api", Some(&ttl), proof(&format!("w{i}n{answered}")))).send(),
                        )
                        .expect("a request went unanswered");
                    let status = response.status().as_u16();
                    let text = runtime.block_on(response.text()).unwrap_or_default();
                    assert!(matches!(status, 200 | 429), "status {status}: {text}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        runtime.block_on(sets.rotate(&name, &support::rotation_policy(Some(Duration::ZERO), true))).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::SeqCst);
    let answered: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(answered > 20, "{answered}");
    let current = runtime.block_on(sets.resolve(&name)).unwrap().current.unwrap();
    // The issuer moves to the new key once its JWKS has carried it for a max-age (1 s here).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, answer) = post(&server, body("api", Some("7m"), proof("test")));
        assert_eq!(status, 200, "{answer}");
        let header = kms_jwt::decode_unverified(answer["token"].as_str().unwrap()).unwrap().0;
        if header["kid"].as_str() == current.kid() {
            break;
        }
        assert!(Instant::now() < deadline, "tokens never followed the rotation");
        std::thread::sleep(Duration::from_millis(250));
    }
}

// The second review (of the code above): each finding as an attack that failed before its fix.

/// Review 2, finding 1: proofs with made-up key ids (forged: STS refuses them) each cost one STS
/// call, bounded by the address's rate, and hold no place: the owner of a real key is served.
#[test]
fn forged_proofs_with_made_up_key_ids_are_bounded_by_the_address_and_hold_no_place() {
    let name = key_set();
    let sts = FaultProxy::start(&support::endpoint(), |e| {
        let forged = e.headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("FORGED"));
        if forged {
            Action::sts_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        } else {
            Action::Forward
        }
    });
    let server = serve(&name, &policy(&root_rule()), &sts.url, &["--rate-limit", "5", "--address-rate-limit", "30"]);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..120 {
        *statuses.entry(post(&server, body("api", None, proof(&format!("AKIAFORGED{i:06}")))).0).or_default() += 1;
    }
    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), [401, 429], "{statuses:?}");
    let reached = sts.count("GetCallerIdentity");
    assert!(reached <= 30, "{reached} forged proofs reached STS with --address-rate-limit 30");
    // The address is spent; another one, with a real key, is served.
    let other = post_from("127.0.0.2", &server, &body("api", None, proof("test")));
    assert_eq!(other, 200);
}

/// Posts `body` to `/token` from local address `from`; the status.
fn post_from(from: &str, server: &Serve, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut conn = socket.connect(server.addr).await.unwrap();
        let head = format!(
            "POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    })
}

/// Review 2, finding 4: workers that share credentials ask at the same moment; each proof is
/// used once, and each worker gets its token.
#[test]
fn concurrent_clients_with_the_same_credentials_all_get_tokens() {
    let name = key_set();
    let server = serve(&name, &policy(&root_rule()), &support::endpoint(), &[]);
    let url = server.url.clone();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                Command::new(env!("CARGO_BIN_EXE_kms-jwt"))
                    .args(["--region", "us-east-1", "token", "--issuer", &url, "--aud", "api"])
                    .args(["--server-id", "https://issuer.example"])
                    .env("AWS_ACCESS_KEY_ID", "test")
                    .env("AWS_SECRET_ACCESS_KEY", "test")
                    .env_remove("AWS_SESSION_TOKEN")
                    .env_remove("AWS_ENDPOINT_URL")
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for worker in workers {
        let out = worker.join().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// Review 2, finding 5: after a rotation the issuer signs with the new key only once its JWKS
/// has carried that key for the documents' max-age, so a verifier that fetched the JWKS just
/// before the key appeared has had time to fetch it again.
#[test]
fn a_new_key_signs_only_after_the_jwks_has_carried_it_for_a_max_age() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (sets, name) = runtime.block_on(support::key_set("ECC_NIST_P256"));
    let server = serve(name.name(), &policy(&root_rule()), &support::endpoint(), &["--refresh", "2s"]);
    let kid_of = |answer: &serde_json::Value| {
        kms_jwt::decode_unverified(answer["token"].as_str().unwrap()).unwrap().0["kid"].as_str().unwrap().to_owned()
    };
    let (_, _, first) = post(&server, body("api", Some("10m"), proof("test")));
    let old = kid_of(&first);
    runtime.block_on(sets.rotate(&name, &support::rotation_policy(Some(Duration::ZERO), true))).unwrap();
    let new = runtime.block_on(sets.resolve(&name)).unwrap().current.unwrap().kid().unwrap().to_owned();
    let jwks_url = format!("{}/.well-known/jwks.json", server.url);
    let started = Instant::now();
    let (mut published, mut signed) = (None, None);
    // Each ttl its own cached token, so that every request is a fresh signature.
    let mut ttl = 1;
    while signed.is_none() && started.elapsed() < Duration::from_secs(20) {
        let jwks = runtime.block_on(async { reqwest::get(&jwks_url).await.unwrap().text().await.unwrap() });
        if published.is_none() && jwks.contains(&new) {
            published = Some(Instant::now());
        }
        let (status, _, answer) = post(&server, body("api", Some(&format!("{ttl}m")), proof("test")));
        assert_eq!(status, 200, "{answer}");
        ttl = ttl % 29 + 1;
        let kid = kid_of(&answer);
        if kid == new {
            signed = Some(Instant::now());
        } else {
            assert_eq!(kid, old);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (published, signed) =
        (published.expect("the JWKS never carried the new key"), signed.expect("never signed with it"));
    assert!(
        signed.duration_since(published) >= Duration::from_millis(1900),
        "signed {:?} after publication",
        signed.duration_since(published)
    );
}

/// Review 2, finding 7: malformed requests are limited by the address before they are read, and
/// a flood of them leaves one audit line per window, not one per request.
#[test]
fn a_flood_of_malformed_requests_is_limited_and_does_not_flood_the_audit_log() {
    let name = key_set();
    let server = serve(&name, &policy(&root_rule()), &support::endpoint(), &["--address-rate-limit", "10"]);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..200 {
        *statuses.entry(post(&server, b"{\"audience\":1}".to_vec()).0).or_default() += 1;
    }
    assert_eq!(statuses, [(400, 10), (429, 190)].into(), "{statuses:?}");
    let audit = server.audit();
    assert_eq!(audit.len(), 11, "ten refusals and one for the limit: {audit:?}");
}

/// Review 2, finding 8: a connection that reaches its lifetime finishes the request in flight
/// (here one STS answers slowly) instead of cutting it, and so using up its proof.
#[test]
fn a_request_in_flight_when_its_connection_ends_is_answered() {
    let name = key_set();
    let sts = FaultProxy::start(&support::endpoint(), |_| {
        std::thread::sleep(Duration::from_millis(1500));
        Action::Forward
    });
    let server = serve(&name, &policy(&root_rule()), &sts.url, &["--connection-lifetime", "1s"]);
    let started = Instant::now();
    let (status, _, answer) = post(&server, body("api", None, proof("test")));
    assert_eq!(status, 200, "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
}
