//! `cargo xtask demo`: the seed flow, narrated for a newcomer.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use kms_jwt::keyset::{KeySetName, KeySets, ProvisionRequest, RotationPolicy};
use kms_jwt::kms::{KmsOptions, KmsSigner};
use kms_jwt::{Claims, JwtSigner, Signer as _, Verifier};
use kms_jwt_test_support as support;
use serde::de::IgnoredAny;

#[allow(clippy::print_stdout)]
fn say(text: &str) {
    println!("{text}");
}

pub(crate) fn run(kms: &KmsOptions) -> Result<()> {
    let mut kms = kms.clone();
    if kms.endpoint_url.is_none() && std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        crate::step("no KMS endpoint configured: using LocalStack on this machine (installed and started if needed)");
        kms.endpoint_url = Some(crate::localstack::script("up")?);
        kms.region.get_or_insert_with(|| support::REGION.into());
        // LocalStack accepts any credentials; the demo must not need real ones.
        kms.static_credentials = Some((support::ACCESS_KEY_ID.into(), support::SECRET_ACCESS_KEY.into()));
    }
    crate::block_on(flow(&kms))
}

async fn flow(kms: &KmsOptions) -> Result<()> {
    let out = crate::repo_root().join("target/demo");
    let client = kms.connect().await?;
    let sets = KeySets::new(client.clone());
    let name = KeySetName::parse("jwt-signer")?;

    crate::step("1. provision the key set `jwt-signer`: an RSA_2048 SIGN_VERIFY key behind alias/jwt-signer");
    let req = ProvisionRequest {
        name: name.clone(),
        key_spec: "RSA_2048".into(),
        description: "kms-jwt demo".into(),
        tags: vec![],
        max_token_ttl: kms_jwt::keyset::DEFAULT_MAX_TOKEN_TTL,
        regions: vec![],
        pending_window_days: 7,
    };
    let provisioned = sets.provision(&req).await?;
    say(&serde_json::to_string_pretty(&kms_jwt_cli::keyset::provisioned_json(&provisioned))?);
    if !provisioned.created {
        say("(the set already existed, so nothing was created: provision is idempotent)");
    }

    crate::step(
        "2. sign {\"sub\":\"test-user\",\"iss\":\"my-lambda\"} for 15 minutes with KMS Sign; the private key never leaves KMS \
         (the set refuses tokens that outlive its max token TTL, 1h)",
    );
    let signer = JwtSigner::new(KmsSigner::new(&client, &name.current()).await?)?;
    let claims = Claims::new().subject("test-user").issuer("my-lambda").expires_at(kms_jwt::now() + 15 * 60);
    let token = signer.sign(&claims).await?;
    let mut parts = token.split('.');
    let (header, payload, signature) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    say(&format!(
        "header    {header}\n          = {}",
        String::from_utf8_lossy(&B64URL.decode(header).unwrap_or_default())
    ));
    say(&format!(
        "payload   {payload}\n          = {}",
        String::from_utf8_lossy(&B64URL.decode(payload).unwrap_or_default())
    ));
    say(&format!(
        "signature {signature}\n          = {} bytes of RSASSA-PKCS1-v1_5 SHA-256",
        B64URL.decode(signature).unwrap_or_default().len()
    ));
    say(&format!("\nJWT:\n{token}"));

    crate::step(&format!("3. publish the public key: {}/public.pem and jwks.json", out.display()));
    let jwks = sets.jwks(&name, None).await?;
    kms_jwt_cli::keyset::write_public_files(&out, signer.signer().public_key(), &jwks)?;
    std::fs::write(out.join("token.jwt"), format!("{token}\n"))?;
    say(&serde_json::to_string_pretty(&jwks.to_json())?);

    crate::step("4. verify with this project's verifier, against jwks.json");
    let verifier = Verifier::from_jwks(&jwks, None)?.with_issuer("my-lambda");
    let claims_seen = verifier.verify::<Claims>(&token)?.claims;
    say(&format!("valid; claims = {}", serde_json::to_string(claims_seen.as_map())?));

    crate::step("5. verify with openssl, as a third party with only public.pem would");
    openssl_verify(&out, &token)?;

    crate::step("6. rotate: a new current key; the old one stays published as alias/jwt-signer/previous");
    say("(--force: this demo rotates minutes apart; by default a key demoted less than 24h ago is never retired)");
    let policy = RotationPolicy {
        pending_window_days: 7,
        min_overlap: None,
        if_older_than: None,
        force: true,
        description: "kms-jwt demo".into(),
        key_spec: None,
    };
    let rotated = sets.rotate(&name, &policy).await?;
    say(&serde_json::to_string_pretty(&kms_jwt_cli::keyset::outcome_json(&rotated))?);

    crate::step("7. the token signed before the rotation still verifies against the new JWKS");
    let jwks = sets.jwks(&name, None).await?;
    let new_signer = JwtSigner::new(KmsSigner::new(&client, &name.current()).await?)?;
    kms_jwt_cli::keyset::write_public_files(&out, new_signer.signer().public_key(), &jwks)?;
    let kids: Vec<_> = jwks.keys.iter().filter_map(|k| k.kid.clone()).collect();
    say(&format!("new JWKS kids: {kids:?}"));
    let old = Verifier::from_jwks(&jwks, None)?.verify::<Claims>(&token)?.claims;
    say(&format!("old token: valid, sub = {}", old.get("sub").map_or(String::new(), ToString::to_string)));
    let new_token = new_signer.sign(&claims).await?;
    Verifier::from_jwks(&jwks, None)?.verify::<IgnoredAny>(&new_token)?;
    say(&format!("new token (kid {}): valid", new_signer.kid()));
    crate::step("done. LocalStack keeps running for you to explore; `cargo xtask localstack down` stops it");
    Ok(())
}

fn openssl_verify(dir: &Path, token: &str) -> Result<()> {
    let (input, signature) = token.rsplit_once('.').context("token has no signature")?;
    std::fs::write(dir.join("token.input"), input)?;
    std::fs::write(dir.join("token.sig"), B64URL.decode(signature).context("signature is not base64url")?)?;
    say("$ cut -d. -f1,2 token.jwt | tr -d '\\n' > token.input");
    say("$ cut -d. -f3 token.jwt | tr '_-' '/+' | base64 -d > token.sig   # pad with = to a multiple of 4 first");
    say("$ openssl dgst -sha256 -verify public.pem -signature token.sig token.input");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", "public.pem", "-signature", "token.sig", "token.input"])
        .current_dir(dir)
        .output()
        .context("cannot run openssl")?;
    say(String::from_utf8_lossy(&out.stdout).trim_end());
    if !out.status.success() {
        bail!("openssl did not verify the token: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
