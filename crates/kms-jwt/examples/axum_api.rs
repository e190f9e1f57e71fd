//! An API that accepts the issuer's tokens: `BearerAuth` verifies `Authorization: Bearer` with
//! the issuer's keys (found from its URL), and handlers take the claims, typed.
//!
//! ```sh
//! cargo run -p kms-jwt --no-default-features --features axum --example axum_api
//! ```
//!
//! It plays every part on loopback: an issuer serving its documents for an in-memory key, the
//! API, and a client calling it with a good token, a token for another audience, and none.

// An example talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use axum::Router;
use axum::routing::get;
use kms_jwt::axum::BearerAuth;
use kms_jwt::publish::{Documents, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use kms_jwt::remote::RemoteJwks;
use kms_jwt::{Algorithm, Claims, Jwks, JwtSigner, LocalSigner, Verified};

/// The claims this API reads.
#[derive(Clone, serde::Deserialize)]
struct Access {
    sub: String,
    #[serde(default)]
    scope: Vec<String>,
}

async fn whoami(token: Verified<Access>) -> String {
    format!("{} may {}", token.claims.sub, token.claims.scope.join(", "))
}

async fn serve(app: Router) -> Result<String, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The issuer: its two documents on loopback, and its key.
    let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256)?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let docs = Documents::new(&issuer, &Jwks { keys: vec![signer.jwk()] });
    let (jwks, discovery) = (docs.jwks.clone(), docs.openid_configuration.clone());
    let documents = Router::new()
        .route(JWKS_PATH, get(move || async move { jwks }))
        .route(OPENID_CONFIGURATION_PATH, get(move || async move { discovery }));
    tokio::spawn(async move { axum::serve(listener, documents).await });

    // The API: every route behind BearerAuth, for tokens of this issuer and audience "api".
    let keys = RemoteJwks::from_issuer(&issuer)?.build()?;
    let api = serve(Router::new().route("/whoami", get(whoami)).layer(BearerAuth::<Access>::new(keys).audience("api")))
        .await?;

    // A client.
    let token = async |aud: &str| {
        let claims = Claims::new().issuer(&issuer).subject("billing").audience(aud).claim("scope", ["read"]);
        signer.sign(&claims.expires_at(4_102_444_800)).await
    };
    let http = reqwest::Client::new();
    let good = http.get(format!("{api}/whoami")).bearer_auth(token("api").await?).send().await?;
    let (status, body) = (good.status(), good.text().await?);
    println!("with a token for api: {status} {body}");
    assert_eq!((status.as_u16(), body.as_str()), (200, "billing may read"));
    let other = http.get(format!("{api}/whoami")).bearer_auth(token("ledger").await?).send().await?;
    println!("with a token for ledger: {} {:?}", other.status(), other.headers()["www-authenticate"]);
    assert_eq!(other.status(), 401);
    let none = http.get(format!("{api}/whoami")).send().await?;
    println!("without a token: {} {:?}", none.status(), none.headers()["www-authenticate"]);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    Ok(())
}
