//! The one outbound HTTP client: hyper with rustls on aws-lc (the TLS stack the AWS SDK already
//! uses), the system's roots, no redirects followed, a deadline for the whole exchange and a
//! bound on the answer's size.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::ConfigBuilderExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Why an exchange failed: no answer, or one that was too slow or too large. The message names
/// the URL's host, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpError(String);

/// An HTTP(S) client whose every exchange ends within its timeout.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// An answer: its status, headers and body.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The headers.
    pub(crate) headers: http::HeaderMap,
    /// The body, at most the size asked for.
    pub(crate) body: Bytes,
}

impl Http {
    /// A client for `https://` and `http://` URLs (`http://` for `LocalStack` and loopback;
    /// callers decide which URLs they accept).
    pub(crate) fn new(timeout: Duration) -> Result<Http, HttpError> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError(format!("cannot configure TLS: {e}")))?
            .with_native_roots()
            .map_err(|e| HttpError(format!("cannot load the system's root certificates: {e}")))?
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Http { client: Client::builder(TokioExecutor::new()).build(https), timeout })
    }

    /// Sends `method` to `url` with `headers` and `body`; reads at most `max_answer` bytes of
    /// the answer. Headers that are not valid HTTP are refused before anything is sent.
    pub(crate) async fn send<'a>(
        &self,
        method: Method,
        url: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Vec<u8>,
        max_answer: usize,
    ) -> Result<Answer, HttpError> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request =
            request.body(Full::new(Bytes::from(body))).map_err(|e| HttpError(format!("invalid request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| HttpError(format!("no answer: {e}")))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_answer)
                .collect()
                .await
                .map_err(|e| HttpError(format!("unreadable answer: {e}")))?
                .to_bytes();
            Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError(format!("no answer within {:?}", self.timeout)))?
    }

    /// POSTs `body` with `headers` to `url`; see [`Http::send`].
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(crate) async fn post<'a>(
        &self,
        url: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Vec<u8>,
        max_answer: usize,
    ) -> Result<Answer, HttpError> {
        self.send(Method::POST, url, headers, body, max_answer).await
    }
}
