//! `kms-jwt token --sigv4`, the client of an issuer on Lambda behind IAM auth: the request is
//! signed with `SigV4` for the `lambda` service, and a signer we did not write (botocore, from the
//! LocalStack venv) computes the same signature for what it received. No proof is sent.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};

/// A one-request HTTP server in Python: it recomputes the request's `SigV4` signature with
/// botocore (same credentials, region, service and X-Amz-Date) and answers a token when the
/// signatures match, 403 with both when they do not.
const CHECKER: &str = r#"
import http.server, json, socketserver, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        authorization = self.headers["authorization"]
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        headers = {name: self.headers[name] for name in signed}
        request = AWSRequest(method="POST", url="http://" + self.headers["host"] + self.path, data=body, headers=headers)
        request.context["timestamp"] = self.headers["x-amz-date"]
        auth = SigV4Auth(Credentials("test", "test"), "lambda", "us-east-1")
        canonical = auth.canonical_request(request)
        expected = auth.signature(auth.string_to_sign(request, canonical), request)
        got = authorization.split("Signature=")[1]
        ok = got == expected and "/us-east-1/lambda/aws4_request" in authorization and "proof" not in json.loads(body)
        answer = {"token": "signed-ok", "expires_at": 1} if ok else {"error": f"signature {got} expected {expected}: {body!r}"}
        data = json.dumps(answer).encode()
        self.send_response(200 if ok else 403)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
    print(server.server_address[1], flush=True)
    server.handle_request()
"#;

#[test]
fn a_sigv4_request_is_signed_as_botocore_signs_it_for_lambda() {
    let mut checker = Command::new(support::python())
        .args(["-c", CHECKER])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(checker.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the checker did not start: {line:?}"));

    let mut cmd = support::kms_jwt!().region("us-east-1").command();
    cmd.args(["token", "--issuer", &format!("http://127.0.0.1:{port}"), "--aud", "api", "--ttl", "10m", "--sigv4"]);
    cmd.env_remove("AWS_SESSION_TOKEN").env_remove("AWS_ENDPOINT_URL");
    let out = cmd.output().unwrap();
    let mut stderr = String::new();
    let _ = checker.stderr.as_mut().unwrap().read_to_string(&mut stderr);
    let _ = checker.wait();
    assert!(out.status.success(), "kms-jwt: {} / checker: {stderr}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "signed-ok");
}
