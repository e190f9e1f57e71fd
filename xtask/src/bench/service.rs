//! `serve` as a service: the JWKS over TLS against nginx serving the same file with the same
//! certificate (200s and 304s, keep-alive, each server on one core, wrk on the other); the cost
//! of `--metrics-listen`; and a drain with 200 `POST /token` requests in flight.

use kms_jwt::publish::JWKS_PATH;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kms_jwt_test_support::serve::Serve;
use kms_jwt_test_support::{self as support};
use serde_json::Value;

use super::report::Comparison;
use super::{BENCH_SET, REPEATS, Stats};
use crate::step;

/// How long each wrk run lasts, and its connections (kept alive).
const WRK_SECONDS: u64 = 4;
const WRK_CONNECTIONS: usize = 32;
const DRAIN_REQUESTS: usize = 200;
const DRAIN_HOLD_SECS: u64 = 3;
const DRAIN_TIMEOUT_SECS: u64 = 20;
const DRAIN_RUNS: usize = 3;

pub(super) fn benchmarks(out: &Path, [ours, base]: [&Path; 2], endpoint: &str) -> Result<Vec<Comparison>> {
    crate::script("bench-tools.sh", &[])?;
    let mut results = tls_against_nginx(out, ours, endpoint)?;
    results.push(metrics_cost(ours, endpoint)?);
    results.extend(drain([ours, base], endpoint)?);
    Ok(results)
}

/// The JWKS over TLS, 200s and 304s, against nginx.
fn tls_against_nginx(out: &Path, ours: &Path, endpoint: &str) -> Result<Vec<Comparison>> {
    let dir = out.join("service");
    std::fs::create_dir_all(dir.join("www/.well-known"))?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    openssl_certificate(&cert, &key)?;
    let mut results = Vec::new();
    step(&format!(
        "service: the JWKS over TLS, kms-jwt serve and nginx (same file, same certificate) each on core 1, wrk -c{WRK_CONNECTIONS} on core 0, 200s and 304s, {WRK_SECONDS} s per run, one warm-up and {REPEATS} interleaved rounds"
    ));
    let tls_port = free_port()?;
    let tls = serve_on_core_1(ours, endpoint, tls_port, &["--tls-cert", path(&cert)?, "--tls-key", path(&key)?])?;
    let ours_url = format!("https://127.0.0.1:{tls_port}{JWKS_PATH}");
    let jwks = curl(&["-sk", &ours_url])?;
    std::fs::write(dir.join("www").join(JWKS_PATH.trim_start_matches('/')), &jwks)?;
    let nginx_port = free_port()?;
    let _nginx = Nginx::start(&dir, nginx_port, &cert, &key)?;
    let nginx_url = format!("https://127.0.0.1:{nginx_port}{JWKS_PATH}");
    anyhow::ensure!(curl(&["-sk", &nginx_url])? == jwks, "nginx does not serve the same JWKS");
    let (ours_etag, nginx_etag) = (etag(&ours_url)?, etag(&nginx_url)?);
    let runs = [
        (ours_url.clone(), None),
        (nginx_url.clone(), None),
        (ours_url.clone(), Some(ours_etag)),
        (nginx_url.clone(), Some(nginx_etag)),
    ];
    let [ours_200, nginx_200, ours_304, nginx_304] = wrk_rounds(&runs)?;
    drop(tls);
    for (kind, ours, theirs) in
        [("200, keep-alive", ours_200, nginx_200), ("304 (If-None-Match), keep-alive", ours_304, nginx_304)]
    {
        results.push(Comparison {
            measure: format!("serve: JWKS over TLS 1.3, {kind}, one core"),
            unit: "requests/s",
            ours,
            baseline: "nginx 1.22, same file and certificate, one worker on one core".into(),
            theirs,
            goal: 0.8,
            higher_is_better: true,
        });
    }
    Ok(results)
}

/// The JWKS with and without `--metrics-listen`.
fn metrics_cost(ours: &Path, endpoint: &str) -> Result<Comparison> {
    step(&format!(
        "service: the JWKS over plain HTTP with and without --metrics-listen, each on core 1, wrk -c{WRK_CONNECTIONS} on core 0, {WRK_SECONDS} s per run, one warm-up and {REPEATS} interleaved rounds"
    ));
    let (plain_port, metrics_port) = (free_port()?, free_port()?);
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let plain = serve_on_core_1(ours, endpoint, plain_port, &[])?;
    let metered = serve_on_core_1(ours, endpoint, metrics_port, &["--metrics-listen", &metrics_addr])?;
    let runs = [
        (format!("http://127.0.0.1:{plain_port}{JWKS_PATH}"), None),
        (format!("http://127.0.0.1:{metrics_port}{JWKS_PATH}"), None),
    ];
    let [without, with] = wrk_rounds(&runs)?;
    let scraped = curl(&["-s", &format!("http://{metrics_addr}/metrics")])?;
    anyhow::ensure!(
        String::from_utf8_lossy(&scraped).contains("kms_jwt_http_requests_total{route=\"jwks\",status=\"200\"}"),
        "the metrics did not count the requests"
    );
    drop((plain, metered));
    Ok(Comparison {
        measure: "serve: JWKS over HTTP with --metrics-listen, keep-alive, one core".into(),
        unit: "requests/s",
        ours: with,
        baseline: "the same server without --metrics-listen".into(),
        theirs: without,
        goal: 0.95,
        higher_is_better: true,
    })
}

/// SIGTERM with requests in flight: all answered, and the exit within the drain timeout.
fn drain([ours, base]: [&Path; 2], endpoint: &str) -> Result<Vec<Comparison>> {
    step(&format!(
        "service: SIGTERM with {DRAIN_REQUESTS} POST /token in flight (each held {DRAIN_HOLD_SECS} s at STS), --drain-timeout {DRAIN_TIMEOUT_SECS}s, {DRAIN_RUNS} runs"
    ));
    let mut answered = Vec::new();
    let mut exit_secs = Vec::new();
    for _ in 0..DRAIN_RUNS {
        let output = Command::new(base)
            .arg("drain")
            .arg(ours)
            .args([endpoint, BENCH_SET])
            .args([DRAIN_REQUESTS as u64, DRAIN_HOLD_SECS, DRAIN_TIMEOUT_SECS].map(|n| n.to_string()))
            .envs(support::LOCALSTACK_ENV)
            .output()?;
        anyhow::ensure!(output.status.success(), "drain failed: {}", String::from_utf8_lossy(&output.stderr));
        let figures: Value = serde_json::from_slice(&output.stdout)?;
        anyhow::ensure!(figures["exit_code"] == 0, "serve did not exit 0 after its drain: {figures}");
        answered.push(figures["tokens"].as_f64().unwrap_or(0.0));
        exit_secs.push(figures["exit_secs"].as_f64().unwrap_or(f64::NAN));
    }
    Ok(vec![
        Comparison {
            measure: format!("serve: drain, {DRAIN_REQUESTS} POST /token in flight at SIGTERM, answered with a token"),
            unit: "requests",
            ours: Stats::of(answered),
            baseline: "the requests in flight".into(),
            theirs: Stats::once(DRAIN_REQUESTS as f64),
            goal: 1.0,
            higher_is_better: true,
        },
        Comparison {
            measure: format!("serve: drain, SIGTERM to exit with {DRAIN_REQUESTS} requests held {DRAIN_HOLD_SECS} s"),
            unit: "s",
            ours: Stats::of(exit_secs),
            baseline: "--drain-timeout".into(),
            theirs: Stats::once(DRAIN_TIMEOUT_SECS as f64),
            goal: 1.0,
            higher_is_better: false,
        },
    ])
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("a UTF-8 path")
}

/// A P-256 certificate for localhost, as a site would have.
fn openssl_certificate(cert: &Path, key: &Path) -> Result<()> {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "openssl could not make a certificate");
    Ok(())
}

/// `kms-jwt serve` for the bench set on `port`, on core 1 with one runtime thread (as nginx has
/// one worker), per-address limits off (wrk is one address); stopped on drop.
fn serve_on_core_1(ours: &Path, endpoint: &str, port: u16, extra: &[&str]) -> Result<Serve> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1"])
        .arg(ours)
        .args(["--endpoint-url", endpoint, "--region", support::REGION])
        .envs(support::CREDENTIALS)
        .env("TOKIO_WORKER_THREADS", "1")
        .args(["serve", "--key", BENCH_SET, "--issuer", "https://localhost", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-connections-per-address", "0"])
        .args(extra)
        .stdout(Stdio::null());
    Serve::try_spawn(cmd).map_err(anyhow::Error::msg)
}

fn curl(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("curl").args(["--fail", "--max-time", "10"]).args(args).output()?;
    anyhow::ensure!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

/// The `ETag` `url` answers with, checked to give a 304.
fn etag(url: &str) -> Result<String> {
    let head = String::from_utf8(curl(&["-sk", "-D", "-", "-o", "/dev/null", url])?)?;
    let etag = head
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("etag")).map(|(_, v)| v.trim().to_owned())
        })
        .with_context(|| format!("{url} sends no ETag"))?;
    let status = curl(&["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("If-None-Match: {etag}"), url])?;
    anyhow::ensure!(status == b"304", "{url} answers {} to If-None-Match", String::from_utf8_lossy(&status));
    Ok(etag)
}

/// One warm-up and [`REPEATS`] rounds of a wrk run against each `(url, If-None-Match)` in turn;
/// each one's requests per second.
fn wrk_rounds<const N: usize>(runs: &[(String, Option<String>); N]) -> Result<[Stats; N]> {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for round in 0..=REPEATS {
        for ((url, etag), sample) in runs.iter().zip(&mut samples) {
            let rate = wrk(url, etag.as_deref())?;
            if round > 0 {
                sample.push(rate);
            }
        }
    }
    Ok(samples.map(Stats::of))
}

/// wrk on core 0 against `url`: requests per second (every answer checked to be the status
/// expected: non-2xx/3xx answers and socket errors fail the run).
fn wrk(url: &str, etag: Option<&str>) -> Result<f64> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0", "wrk", "-t1", &format!("-c{WRK_CONNECTIONS}"), &format!("-d{WRK_SECONDS}s")]);
    if let Some(etag) = etag {
        cmd.args(["-H", &format!("If-None-Match: {etag}")]);
    }
    let out = cmd.arg(url).output().context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk {url}: {text}{}", String::from_utf8_lossy(&out.stderr));
    if text.contains("Non-2xx or 3xx responses") || text.contains("Socket errors") {
        bail!("wrk {url} met errors: {text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))
}

/// nginx serving `dir/www` over TLS on `port`, one process (master off, one worker's work) on
/// core 1; stopped on drop.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &Path, port: u16, cert: &Path, key: &Path) -> Result<Nginx> {
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{\n  access_log off;\n  server_tokens off;\n  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n\
                 open_file_cache max=16;\n  client_body_temp_path {dir}/tmp;\n  proxy_temp_path {dir}/tmp;\n  fastcgi_temp_path {dir}/tmp;\n\
                 uwsgi_temp_path {dir}/tmp;\n  scgi_temp_path {dir}/tmp;\n\
                 server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                 ssl_protocols TLSv1.2 TLSv1.3;\n    root {dir}/www;\n\
                 location = {JWKS_PATH} {{ default_type application/json; add_header Cache-Control \"public, max-age=300\"; }}\n  }}\n}}\n",
                dir = path(dir)?,
                cert = path(cert)?,
                key = path(key)?,
            ),
        )?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let child = Command::new("taskset")
            .args(["-c", "1", "nginx", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-e", &format!("{}/nginx-error.log", path(dir)?)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let nginx = Nginx(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "nginx did not start: see {}/nginx-error.log", path(dir)?);
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
