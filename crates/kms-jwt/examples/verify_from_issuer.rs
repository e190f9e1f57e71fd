//! Verifying tokens as a third party that knows nothing but the issuer URL: read the
//! discovery document, fetch the JWKS it names, and verify with the keys pinned to the
//! algorithms they are published for.
//!
//! ```sh
//! cargo run -p kms-jwt --no-default-features --example verify_from_issuer -- ISSUER_URL TOKEN
//! cargo run -p kms-jwt --no-default-features --example verify_from_issuer   # a self-contained run
//! ```
//!
//! Without arguments it plays both sides on loopback: it serves an issuer's two documents for
//! an in-memory key, signs a token with that key, and verifies it from the URL alone. It needs
//! no AWS SDK: the verifier is in the crate without its `kms` feature. (Against an `https://`
//! issuer, give reqwest a TLS feature; this example's build has none.)

// An example talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use axum::routing::get;
use kms_jwt::publish::{Documents, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, Verifier};

/// Discovery, then the JWKS, then a strict verification with `iss` checked.
async fn verify(issuer: &str, token: &str) -> Result<Claims, Box<dyn std::error::Error>> {
    let http = reqwest::Client::new();
    let config: serde_json::Value =
        http.get(format!("{issuer}{OPENID_CONFIGURATION_PATH}")).send().await?.error_for_status()?.json().await?;
    // The document names where the keys are; the issuer must be the one asked about.
    if config["issuer"] != issuer {
        return Err(format!("discovery names issuer {}, not {issuer}", config["issuer"]).into());
    }
    let jwks_uri = config["jwks_uri"].as_str().ok_or("discovery has no jwks_uri")?;
    let jwks = Jwks::parse(&http.get(jwks_uri).send().await?.error_for_status()?.bytes().await?)?;
    Ok(Verifier::from_jwks(&jwks, None)?.with_issuer(issuer).verify::<kms_jwt::Claims>(token)?.claims)
}

/// An issuer on loopback for one in-memory key, and a token it signed.
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
    let token = signer.sign(&Claims::new().issuer(&issuer).subject("alice").expires_at(4_102_444_800)).await?;
    Ok((issuer, token))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (issuer, token) = match args.as_slice() {
        [issuer, token] => (issuer.trim_end_matches('/').to_owned(), token.clone()),
        [] => local_issuer().await?,
        _ => return Err("usage: verify_from_issuer [ISSUER_URL TOKEN]".into()),
    };
    let claims = verify(&issuer, &token).await?;
    println!("valid token from {issuer}: {}", serde_json::to_string(claims.as_map())?);
    Ok(())
}
