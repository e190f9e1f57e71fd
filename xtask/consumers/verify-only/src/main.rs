//! Uses what a verifying service uses: `Verifier`, `RemoteJwks` and the axum layer.

use kms_jwt::axum::BearerAuth;
use kms_jwt::remote::RemoteJwks;
use kms_jwt::{Algorithm, Claims, JwtSigner, LocalSigner, Verifier, VerifyingKey};

#[derive(Clone, serde::Deserialize)]
struct Access {
    sub: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let signer = JwtSigner::new(LocalSigner::generate(Algorithm::ES256)?)?;
    let token = signer.sign(&Claims::new().subject("alice").audience("api").expires_at(4_102_444_800)).await?;
    let verifier = Verifier::new(vec![VerifyingKey::from_jwk(&signer.jwk(), None)?]).with_audience("api");
    assert_eq!(verifier.verify::<Access>(&token)?.claims.sub, "alice");
    let keys = RemoteJwks::from_issuer("https://auth.example.com")?.build()?;
    let _layer = BearerAuth::<Access>::new(keys).audience("api");
    Ok(())
}
