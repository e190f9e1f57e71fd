//! The issuer function's handler with the events AWS sends (a function URL's, an HTTP API's
//! and a REST API's, as `lambda_http` reads them), against LocalStack's KMS: who gets a token,
//! who is refused, and that nothing but the request context AWS wrote says who is asking.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kms_jwt_test_support as support;

use http_body_util::BodyExt as _;
use kms_jwt::{Claims, Jwks, Verifier};
use kms_jwt_lambda::config::Config;
use serde_json::{Value, json};
use support::lambda::function_url_event;
use tower::ServiceExt as _;

const ISSUER: &str = "https://issuer.example";
const ROOT: &str = "arn:aws:iam::000000000000:root";

const POLICY: &str = r#"
[[rule]]
principals = ["arn:aws:iam::000000000000:root"]
audiences  = ["api"]
max_ttl    = "30m"

[[rule]]
principals = ["arn:aws:iam::000000000000:role/ci-*"]
audiences  = ["deploy"]
max_ttl    = "15m"
claims     = { team = "platform" }
"#;

async fn app() -> axum::Router {
    let (_, name) = support::key_set("ECC_NIST_P256").await;
    let vars = [("KMS_JWT_KEY", name.name()), ("KMS_JWT_ISSUER", ISSUER), ("KMS_JWT_TOKEN_POLICY", POLICY)];
    let config = Config::from_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned())).unwrap();
    kms_jwt_lambda::issuer_app(&config, vec![support::kms().await], POLICY).await.unwrap()
}

/// A REST API's event (payload 1.0) with IAM authorization.
fn rest_api(body: &str, arn: &str) -> Value {
    json!({
        "resource": "/token",
        "path": "/token",
        "httpMethod": "POST",
        "headers": {"content-type": "application/json", "Host": "api.example"},
        "multiValueHeaders": {"content-type": ["application/json"], "Host": ["api.example"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "000000000000",
            "resourceId": "abc123",
            "stage": "prod",
            "requestId": "c3d7a6f0-0000-4000-8000-000000000002",
            "identity": {"accessKey": "AKIAEXAMPLEKEY000002", "accountId": "000000000000", "caller": "AIDAEXAMPLE",
                         "userArn": arn, "user": "AIDAEXAMPLE", "sourceIp": "203.0.113.8", "userAgent": "kms-jwt"},
            "resourcePath": "/token",
            "httpMethod": "POST",
            "apiId": "restapi01",
            "path": "/prod/token",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": 1_796_101_200_000_i64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Sends `event` through the handler, as the Lambda runtime would: status and JSON body.
async fn invoke(app: &axum::Router, event: &Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn verifier(app: &axum::Router, audience: &str) -> Verifier {
    let (status, jwks) = invoke(app, &function_url_event("GET", "/.well-known/jwks.json", "", None)).await;
    assert_eq!(status, 200, "{jwks}");
    Verifier::from_jwks(&Jwks::parse(jwks.to_string().as_bytes()).unwrap(), None)
        .unwrap()
        .with_issuer(ISSUER)
        .with_audience(audience)
}

#[tokio::test]
async fn a_function_url_and_a_rest_api_give_an_allowed_caller_a_token() {
    let app = app().await;
    let for_api = verifier(&app, "api").await;
    for event in [
        function_url_event("POST", "/token", r#"{"audience":"api","ttl":"10m"}"#, Some((ROOT, "000000000000"))),
        rest_api(r#"{"audience":"api"}"#, ROOT),
    ] {
        let (status, body) = invoke(&app, &event).await;
        assert_eq!(status, 200, "{body}");
        let claims = for_api.verify::<Claims>(body["token"].as_str().unwrap()).unwrap().claims;
        assert_eq!(claims.get("sub").unwrap(), ROOT);
    }

    // An assumed-role session is its role: the ci-* rule, its audience and its claims.
    let session = "arn:aws:sts::000000000000:assumed-role/ci-deployer/build-42";
    let event = function_url_event("POST", "/token", r#"{"audience":"deploy"}"#, Some((session, "000000000000")));
    let (status, body) = invoke(&app, &event).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let claims = verifier(&app, "deploy").await.verify::<Claims>(token).unwrap().claims;
    assert_eq!(claims.get("sub").unwrap(), "arn:aws:iam::000000000000:role/ci-deployer", "the role, as serve says it");
    assert_eq!(claims.get("team").unwrap(), "platform");
}

#[tokio::test]
async fn the_policy_decides_what_a_known_caller_gets() {
    let app = app().await;
    let session = "arn:aws:sts::000000000000:assumed-role/ci-deployer/build-42";
    let ask = |body: &str, arn: &str| function_url_event("POST", "/token", body, Some((arn, "000000000000")));
    let (status, body) = invoke(&app, &ask(r#"{"audience":"api"}"#, session)).await;
    assert_eq!(status, 403, "a role of the ci rule asking for the root's audience: {body}");
    let (status, body) = invoke(&app, &ask(r#"{"audience":"api"}"#, "arn:aws:iam::000000000000:user/mallory")).await;
    assert_eq!(status, 403, "a principal no rule names: {body}");
    let (status, body) = invoke(&app, &ask(r#"{"audience":"deploy","ttl":"1h"}"#, session)).await;
    assert_eq!(status, 403, "longer than the rule's max_ttl: {body}");
    assert!(body["error"].as_str().unwrap().contains("15m"), "{body}");
}

#[tokio::test]
async fn nothing_but_the_request_context_says_who_is_asking() {
    let app = app().await;
    // No authorizer at all (a function URL with AuthType NONE, say).
    let (status, body) = invoke(&app, &function_url_event("POST", "/token", r#"{"audience":"api"}"#, None)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("no IAM identity in the invocation"), "{body}");

    // A JWT authorizer's claims are not an IAM caller.
    let mut jwt = function_url_event("POST", "/token", r#"{"audience":"api"}"#, None);
    jwt["requestContext"]["authorizer"] = json!({"jwt": {"claims": {"sub": ROOT}, "scopes": null}});
    assert_eq!(invoke(&app, &jwt).await.0, 401);

    // Headers and body fields that claim an identity count for nothing.
    let mut headers = function_url_event("POST", "/token", r#"{"audience":"api"}"#, None);
    headers["headers"]["x-amzn-iam-user-arn"] = json!(ROOT);
    headers["headers"]["x-kms-jwt-caller"] = json!(ROOT);
    assert_eq!(invoke(&app, &headers).await.0, 401);
    let body = format!(r#"{{"audience":"api","caller":"{ROOT}"}}"#);
    let (status, answer) =
        invoke(&app, &function_url_event("POST", "/token", &body, Some((ROOT, "000000000000")))).await;
    assert_eq!(status, 400, "a body is the audience and the ttl, nothing else: {answer}");

    // A context whose account is not its ARN's is not AWS's.
    let forged = function_url_event("POST", "/token", r#"{"audience":"api"}"#, Some((ROOT, "999999999999")));
    let (status, body) = invoke(&app, &forged).await;
    assert_eq!(status, 401, "{body}");
    // A Cognito identity pool's credentials: the pool's role, shared by all its identities
    // (guests included), names no one.
    let session = "arn:aws:sts::000000000000:assumed-role/ci-pool-guests/CognitoIdentityCredentials";
    let mut cognito = function_url_event("POST", "/token", r#"{"audience":"deploy"}"#, Some((session, "000000000000")));
    cognito["requestContext"]["authorizer"]["iam"]["cognitoIdentity"] =
        json!({"amr": ["unauthenticated"], "identityId": "us-east-1:guest", "identityPoolId": "us-east-1:pool"});
    assert_eq!(invoke(&app, &cognito).await.0, 401);
    let mut rest = rest_api(r#"{"audience":"deploy"}"#, session);
    rest["requestContext"]["identity"]["cognitoIdentityId"] = json!("us-east-1:guest");
    rest["requestContext"]["identity"]["cognitoIdentityPoolId"] = json!("us-east-1:pool");
    assert_eq!(invoke(&app, &rest).await.0, 401);
    // The same session without Cognito is the ci-* rule's role: the refusals above are Cognito's.
    let plain = function_url_event("POST", "/token", r#"{"audience":"deploy"}"#, Some((session, "000000000000")));
    assert_eq!(invoke(&app, &plain).await.0, 200);

    // A caller that is not an IAM principal.
    let odd = function_url_event("POST", "/token", r#"{"audience":"api"}"#, Some(("arn:aws:s3:::bucket", "")));
    assert_eq!(invoke(&app, &odd).await.0, 401);
}
