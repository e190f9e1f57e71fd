//! The one outbound HTTP client: hyper with rustls on aws-lc (the TLS stack the AWS SDK already
//! uses), the system's roots, no redirects, a deadline for the whole exchange and a bound on the
//! answer's size.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::http::{Method, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::ConfigBuilderExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An HTTP(S) client whose every exchange ends within its timeout.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// An answer: its status and its body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Http {
    /// A client for `https://` and `http://` URLs (`http://` for `LocalStack` and loopback).
    pub(crate) fn new(timeout: Duration) -> Result<Http> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS")?
            .with_native_roots()
            .context("cannot load the system's root certificates")?
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

    /// POSTs `body` with `headers` to `url`; reads at most `max_answer` bytes of the answer.
    pub(crate) async fn post<'a>(
        &self,
        url: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Vec<u8>,
        max_answer: usize,
    ) -> Result<Answer> {
        let mut request = Request::builder().method(Method::POST).uri(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(Bytes::from(body))).context("invalid request")?;
        let exchange = async {
            let response = self.client.request(request).await.context("no answer")?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), max_answer)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("unreadable answer: {e}"))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange).await.context("no answer in time")?
    }
}
