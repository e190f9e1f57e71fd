//! Verifying tokens as a third party that knows nothing but the issuer URL: `RemoteJwks` reads
//! the discovery document, fetches the JWKS it names and keeps it current (caching, rotation,
//! outages), and verifies with each key pinned to the algorithm it is published for.
//!
//! ```sh
//! cargo run -p kms-jwt --no-default-features --features remote --example verify_from_issuer -- ISSUER_URL TOKEN AUDIENCE
//! cargo run -p kms-jwt --no-default-features --features remote --example verify_from_issuer   # a self-contained run
//! ```
//!
//! Without arguments it plays both sides on loopback: it serves an issuer's two documents for
//! an in-memory key, signs a token with that key, and verifies it from the URL alone. It needs
//! no AWS SDK: the verifier and `remote` are in the crate without its `kms` feature.

// An example talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use axum::routing::get;
use kms_jwt::publish::{Documents, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use kms_jwt::remote::RemoteJwks;
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner};

/// An issuer on loopback for one in-memory key, and a token it signed for `api`.
async fn local_issuer() -> Result<(String, String), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256)?)?;
    let docs = Documents::new(&issuer, &Jwks { keys: vec![signer.jwk()] });
    let app = axum::Router::new()
        .route(
            JWKS_PATH,
            get({
                let body = docs.jwks.clone();
                move || async move { body }
            }),
        )
        .route(OPENID_CONFIGURATION_PATH, get(move || async move { docs.openid_configuration }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let claims = Claims::new().issuer(&issuer).subject("alice").audience("api").expires_at(4_102_444_800);
    Ok((issuer, signer.sign(&claims).await?))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (issuer, token, audience) = match args.as_slice() {
        [issuer, token, audience] => (issuer.clone(), token.clone(), audience.clone()),
        [] => {
            let (issuer, token) = local_issuer().await?;
            (issuer, token, "api".to_owned())
        }
        _ => return Err("usage: verify_from_issuer [ISSUER_URL TOKEN AUDIENCE]".into()),
    };
    // Discovery, the JWKS, and `iss` checked against the URL: one value, built once and shared.
    let keys = RemoteJwks::from_issuer(&issuer)?.audience(audience).build()?;
    let claims = keys.verify::<Claims>(&token).await?.claims;
    println!("valid token from {issuer}: {}", serde_json::to_string(claims.as_map())?);
    Ok(())
}
