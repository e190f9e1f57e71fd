//! Minting tokens in an axum handler, with a `TokenCache` in front of the signer so that a
//! busy service makes one KMS `Sign` call per distinct claims set and lifetime, not per request.
//!
//! ```sh
//! cargo run -p kms-jwt --example mint_in_axum                       # an in-memory key
//! KMS_JWT_KEY=alias/jwt-signer cargo run -p kms-jwt --example mint_in_axum   # a KMS key
//! ```
//!
//! The signer is an `Arc<dyn Signer>`, chosen at start-up. The example serves `GET /token` on
//! a loopback port, asks itself for two tokens, verifies them, and exits.

// An example talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use kms_jwt::kms::{KmsOptions, KmsSigner};
use kms_jwt::{Algorithm, Claims, JwtSigner, LocalSigner, Signer, TokenCache, Verifier, VerifyingKey};

type Cache = Arc<TokenCache<Arc<dyn Signer>>>;

/// The handler: the same claims for every caller of this service, so the cache answers.
async fn token(State(cache): State<Cache>) -> Result<String, StatusCode> {
    let claims = Claims::new().issuer("https://issuer.example").subject("billing-service").audience("ledger");
    // Never show a KMS error to a client: log it, answer 503.
    cache.token(&claims).await.map_err(|e| {
        eprintln!("minting failed: {e}");
        StatusCode::SERVICE_UNAVAILABLE
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let signer: Arc<dyn Signer> = match std::env::var("KMS_JWT_KEY") {
        Ok(key) => Arc::new(KmsSigner::new(&KmsOptions::default().connect().await?, &key).await?),
        Err(_) => Arc::new(LocalSigner::generate(Algorithm::ES256)?),
    };
    let signer = JwtSigner::new(signer)?;
    let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None)?]).with_audience("ledger");
    let cache: Cache = Arc::new(TokenCache::new(signer, Duration::from_secs(900), Duration::from_secs(60), 1024));

    let app = axum::Router::new().route("/token", get(token)).with_state(cache.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/token", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let first = http.get(&url).send().await?.error_for_status()?.text().await?;
    let second = http.get(&url).send().await?.error_for_status()?.text().await?;
    let claims = verifier.verify::<kms_jwt::Claims>(&first)?.claims;
    println!(
        "GET {url}: a token for {}, valid until {}",
        claims.get("sub").unwrap_or(&"?".into()),
        claims.get("exp").unwrap_or(&0.into())
    );
    println!("the second request got the cached token: {}", first == second);
    assert_eq!(first, second, "one signature for both requests");
    Ok(())
}
