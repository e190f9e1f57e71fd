//! The `kms-jwt-lambda` function (deployed as `bootstrap`): reads its configuration, resolves
//! the key once per container, and serves invocations in the mode it was configured for.

use std::time::{Duration, Instant};

use kms_jwt::kms::KmsOptions;
use kms_jwt_lambda::config::{Config, Mode};
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    // JSON lines to CloudWatch: the audit lines (their own JSON on stderr) and these.
    tracing_subscriber::fmt().json().with_ansi(false).with_target(false).without_time().init();
    let started = Instant::now();
    let config = Config::from_env()?;
    // Within the function's timeout (10 s for the issuer): a KMS call that hangs fails while
    // the caller can still be answered.
    let opts = KmsOptions {
        timeout: Duration::from_secs(4),
        attempt_timeout: Duration::from_secs(2),
        max_attempts: 3,
        ..KmsOptions::default()
    };
    let kms = config.kms(&opts).await?;
    match config.mode {
        Mode::Issuer => {
            let policy = config.policy_text(&opts).await?;
            // The KMS round trips (the documents, the signer) apart from the rest of the start.
            let kms_started = Instant::now();
            let app = kms_jwt_lambda::issuer_app(&config, kms, &policy).await?;
            tracing::info!(init_ms = millis(started), kms_ms = millis(kms_started), key = %config.key, "issuer ready");
            lambda_http::run(app).await
        }
        Mode::Rotate => {
            let s3 = kms_jwt::publish::s3_client(&opts.load().await?);
            let primary = kms.into_iter().next().ok_or("no KMS region")?;
            tracing::info!(init_ms = millis(started), key = %config.key, "rotation ready");
            lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
                let (config, primary, s3) = (&config, &primary, &s3);
                async move {
                    let done = kms_jwt_lambda::rotate::handle(config, primary, s3, &event.payload).await;
                    match &done {
                        Ok(summary) => tracing::info!(%summary, "rotation run"),
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "rotation run failed"),
                    }
                    done.map_err(|e| format!("{e:#}"))
                }
            }))
            .await
        }
    }
}

/// Milliseconds since `started`, as a number in the JSON log.
fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
