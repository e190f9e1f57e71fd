//! The issuer function under a Lambda runtime emulator: cargo-lambda's Runtime API (`cargo
//! lambda watch --only-lambda-apis`) and the function's binary polling it, as Lambda runs them;
//! and the function URL events AWS sends, with or without an IAM caller.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The emulator and the function process, both killed on drop.
pub struct LambdaUnderEmulator {
    emulator: Child,
    function: Child,
    log: Arc<Mutex<String>>,
    /// Where invocations go: `POST` an event here.
    pub invoke_url: String,
    // The throwaway Cargo project the emulator reads at start (it builds nothing).
    _project: tempfile::TempDir,
}

impl LambdaUnderEmulator {
    /// Starts the emulator on a free port and `function` (the `kms-jwt-lambda` binary) with
    /// `env` besides the runtime's own variables. `cargo_lambda` is `scripts/cargo-lambda.sh path`.
    pub fn start(cargo_lambda: &Path, function: &Path, env: &[(&str, &str)]) -> LambdaUnderEmulator {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(project.path().join("src")).unwrap();
        std::fs::write(
            project.path().join("Cargo.toml"),
            "[package]\nname = \"emulated\"\nversion = \"0.0.0\"\nedition = \"2021\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(project.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        let emulator = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(project.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cargo_lambda.display()));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the emulator did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut function = Command::new(function)
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "kms-jwt-lambda")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Drained as it comes: a full pipe would stop the function mid-log.
        let log = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] =
            [Box::new(function.stdout.take().unwrap()), Box::new(function.stderr.take().unwrap())];
        for pipe in pipes {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        // The runtime polls without naming a function: the emulator's default function, `_`.
        let invoke_url = format!("http://127.0.0.1:{port}/2015-03-31/functions/_/invocations");
        LambdaUnderEmulator { emulator, function, log, invoke_url, _project: project }
    }

    /// What the function has logged so far (stdout and stderr, by line).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for LambdaUnderEmulator {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A function URL's event (payload 2.0), with `iam` (`userArn`, `accountId`) as the IAM caller
/// AWS verified, or none.
pub fn function_url_event(method: &str, path: &str, body: &str, iam: Option<(&str, &str)>) -> Value {
    let authorizer = iam.map_or(json!({}), |(arn, account)| {
        json!({"iam": {"accessKey": "ASIAEXAMPLEKEY000001", "accountId": account, "callerId": "AIDAEXAMPLE",
                       "userArn": arn, "userId": "AIDAEXAMPLE", "cognitoIdentity": null, "principalOrgId": null}})
    });
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abcdefgh.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefgh", "authorizer": authorizer,
            "domainName": "abcdefgh.lambda-url.us-east-1.on.aws", "domainPrefix": "abcdefgh",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "kms-jwt"},
            "requestId": "c3d7a6f0-0000-4000-8000-000000000001", "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:05:00:00 +0000", "timeEpoch": 1_796_101_200_000_i64
        },
        "body": body, "isBase64Encoded": false
    })
}
