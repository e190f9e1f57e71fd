//! `kms-jwt health`: one GET to a probe of a running server (a container's `HEALTHCHECK` has
//! no curl), over HTTP or HTTPS, within a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use axum::http::{Request, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    /// The URL to GET: `http://` or `https://`.
    pub url: &'a str,
    /// The CA that signed the server's certificate (PEM); the system's roots without.
    pub ca_file: Option<&'a Path>,
    /// The name the certificate must carry, when it is not the URL's host (a probe of
    /// `https://127.0.0.1:8443` from inside the container).
    pub server_name: Option<&'a str>,
    /// The whole exchange's deadline.
    pub timeout: Duration,
}

/// GETs the URL; its status code.
pub async fn probe(probe: &Probe<'_>) -> Result<u16> {
    let uri: Uri = probe.url.parse().with_context(|| format!("{} is not a URL", probe.url))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!("{} is not an http(s) URL", probe.url),
    };
    let host = uri.host().context("the URL has no host")?.trim_matches(['[', ']']).to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let authority = uri.authority().map(ToString::to_string).unwrap_or_default();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let request = Request::get(path).header(header::HOST, authority).body(Empty::<bytes::Bytes>::new())?;
        if tls {
            let name = probe.server_name.unwrap_or(&host);
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(probe.ca_file)?));
            let name = ServerName::try_from(name.to_owned()).with_context(|| format!("{name} is not a server name"))?;
            let stream = connector.connect(name, tcp).await.context("TLS handshake failed")?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    };
    tokio::time::timeout(probe.timeout, exchange)
        .await
        .with_context(|| format!("no answer within {}", humantime::format_duration(probe.timeout)))?
}

async fn send<I>(io: I, request: Request<Empty<bytes::Bytes>>) -> Result<u16>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.context("no HTTP answer")?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.context("no HTTP answer")?;
    Ok(response.status().as_u16())
}

fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        for cert in CertificateDer::pem_file_iter(path).with_context(|| format!("cannot read {}", path.display()))? {
            let cert = cert.with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            roots.add(cert).with_context(|| format!("{} is not a CA certificate", path.display()))?;
        }
    } else {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
