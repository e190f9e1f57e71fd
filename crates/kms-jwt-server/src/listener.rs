//! The accept loop: every connection has a deadline for its TLS handshake and each request
//! head, and a lifetime (at its end the connection finishes the request in flight, within a
//! grace period, then closes); at most [`Limits::per_address`] come from one address (an IPv6
//! client's /64) and at most [`Limits::total`] are open at once; accept errors (out of file
//! descriptors) back off instead of spinning. On shutdown it stops accepting, closes idle
//! connections, lets requests in flight finish and says how many did not in time.
//! `axum::serve` has none of these.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

use crate::metrics::{Metrics, route_label};

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; more wait in the listen backlog.
    pub total: usize,
    /// Connections open at once from one address; more are closed at once. 0: no such limit
    /// (behind a load balancer, whose few addresses carry every client).
    pub per_address: usize,
    /// How long a client may take to send a request's head, or to finish a TLS handshake.
    pub header_timeout: Duration,
    /// The longest a connection lives, keep-alive included; then the request in flight has
    /// [`Limits::grace`] to finish.
    pub lifetime: Duration,
    /// How long a request in flight may finish once its connection must close.
    pub grace: Duration,
    /// The most request-head bytes buffered (HTTP/1.1), or header bytes of a request (HTTP/2).
    pub max_head_bytes: usize,
    /// Requests at once on one HTTP/2 connection.
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            total: 4096,
            per_address: 64,
            header_timeout: Duration::from_secs(5),
            lifetime: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_streams: 100,
        }
    }
}

/// What a listener serves: a placeholder until the server has loaded what it serves, then the
/// routes. Requests choose when they start.
pub(crate) struct App {
    starting: Router,
    ready: OnceLock<Router>,
}

impl App {
    pub(crate) fn new(starting: Router) -> App {
        App { starting, ready: OnceLock::new() }
    }

    /// Serves `routes` from now on.
    pub(crate) fn ready(&self, routes: Router) {
        let _ = self.ready.set(routes);
    }

    fn current(&self) -> Router {
        self.ready.get().unwrap_or(&self.starting).clone()
    }
}

/// Connections open and requests in flight: what the drain waits for and the metrics show.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    pub(crate) connections: AtomicUsize,
    pub(crate) requests: AtomicUsize,
}

/// One connection or request, counted until dropped: a request whose connection dies is not
/// counted forever.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A listening socket and how it serves.
pub(crate) struct Listener {
    pub(crate) tcp: tokio::net::TcpListener,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) limits: Limits,
    /// Where requests are counted (the public listener's metrics).
    pub(crate) metrics: Option<Arc<Metrics>>,
    pub(crate) activity: Arc<Activity>,
}

/// What a connection task shares with the accept loop.
struct Context {
    app: Arc<App>,
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
    activity: Arc<Activity>,
}

/// Connections open per address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`], given back on drop.
struct Held {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, address: IpAddr, limit: usize) -> Option<Held> {
        let key = limit_key(address);
        let mut open = table.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if limit > 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(Held { table: table.clone(), key })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// An IPv4 address itself; an IPv6 address's /64.
fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("mapped")),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Raises the soft limit on open files to the hard one: every connection is a file, and the
/// default soft limit (often 1,024) is below [`Limits::total`].
pub fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit");
    }
}

impl Listener {
    /// Serves `app` until `shutdown` completes, then drains: no new connection is accepted,
    /// idle connections close, and requests in flight have `drain_timeout` to finish. How many
    /// were still in flight when it ran out (0: a clean drain).
    pub(crate) async fn serve(
        self,
        app: Arc<App>,
        shutdown: impl Future<Output = ()>,
        drain_timeout: Duration,
    ) -> usize {
        let Listener { tcp, tls, limits, metrics, activity } = self;
        let context = Arc::new(Context { app, limits, metrics, activity: activity.clone() });
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.total));
        let per_address = Arc::new(PerAddress::default());
        let (drain, draining) = watch::channel(false);
        // Every connection task holds a sender: the channel closes when the last one ends.
        let (alive, mut all_closed) = mpsc::channel::<()>(1);
        let mut backoff = Duration::from_millis(5);
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(accepted) => {
                        backoff = Duration::from_millis(5);
                        accepted
                    }
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before accept: wait a
                        // little (longer each time) for connections to close, then go on serving.
                        tracing::warn!(error = %e, "accept failed; backing off {backoff:?}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Some(held) = PerAddress::take(&per_address, peer.ip(), limits.per_address) else {
                drop(stream);
                continue;
            };
            let (context, tls, draining, alive) = (context.clone(), tls.clone(), draining.clone(), alive.clone());
            tokio::spawn(async move {
                let _kept = (slot, held, alive, Counted::new(&context.activity.connections));
                serve_connection(stream, peer, tls, &context, draining).await;
            });
        }
        // Refuse new connections at once: a load balancer that still sends some retries them
        // elsewhere, which beats waiting here.
        drop(tcp);
        let _ = drain.send(true);
        drop(alive);
        match tokio::time::timeout(drain_timeout, all_closed.recv()).await {
            Ok(_) => 0,
            Err(_) => activity.requests.load(Ordering::SeqCst),
        }
    }
}

/// One connection's requests in flight, and whether it is closing.
#[derive(Default)]
struct Lifetime {
    in_flight: AtomicUsize,
    closing: AtomicBool,
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    context: &Arc<Context>,
    draining: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        return http1(stream, peer, context, draining).await;
    };
    let stream = match tokio::time::timeout(context.limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "tls handshake failed");
            if let Some(metrics) = &context.metrics {
                metrics.handshake_failed();
            }
            return;
        }
        Err(_) => {
            if let Some(metrics) = &context.metrics {
                metrics.handshake_failed();
            }
            return;
        }
    };
    if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2) {
        http2(stream, peer, context, draining).await;
    } else {
        http1(stream, peer, context, draining).await;
    }
}

/// The service of one connection: each request gets the client's address, is counted while in
/// flight and in the metrics, and (HTTP/1.1) says `Connection: close` once the connection is
/// closing.
fn service(
    context: Arc<Context>,
    peer: SocketAddr,
    life: Arc<Lifetime>,
    http1: bool,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let (context, life) = (context.clone(), life.clone());
        let started = Instant::now();
        let route = route_label(request.uri().path());
        async move {
            let _request = Counted::new(&context.activity.requests);
            let _on_connection = Counted::new(&life.in_flight);
            let mut response = context.app.current().oneshot(request).await?;
            if http1 && life.closing.load(Ordering::SeqCst) {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(metrics) = &context.metrics {
                metrics.request(route, response.status(), started.elapsed());
            }
            Ok(response)
        }
    })
}

/// Why a connection must close before its client closes it.
enum Closing {
    /// Its lifetime is over.
    Lifetime,
    /// The server is draining.
    Drain,
}

/// Waits for the connection's lifetime to end or the drain to start.
async fn until_closing(lifetime: Duration, draining: &mut watch::Receiver<bool>) -> Closing {
    tokio::select! {
        () = tokio::time::sleep(lifetime) => Closing::Lifetime,
        _ = draining.wait_for(|draining| *draining) => Closing::Drain,
    }
}

/// HTTP/1.1. A closing connection takes no new request: an idle one closes at once, and the
/// request in flight gets `Connection: close` on its answer. (hyper's own `graceful_shutdown`
/// was seen to cut a request whose body had been read while its answer was pending; it is
/// used only on a connection with none.)
async fn http1<I>(io: I, peer: SocketAddr, context: &Arc<Context>, mut draining: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let life = Arc::new(Lifetime::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(context.limits.header_timeout)
        .max_buf_size(context.limits.max_head_bytes);
    let connection = http.serve_connection(TokioIo::new(io), service(context.clone(), peer, life.clone(), true));
    tokio::pin!(connection);
    let closing = tokio::select! {
        _ = &mut connection => return,
        closing = until_closing(context.limits.lifetime, &mut draining) => closing,
    };
    life.closing.store(true, Ordering::SeqCst);
    if life.in_flight.load(Ordering::SeqCst) == 0 {
        connection.as_mut().graceful_shutdown();
    }
    finish(connection, closing, context.limits.grace).await;
}

/// HTTP/2: a closing connection sends GOAWAY, so the client opens no new stream on it, and
/// the streams in flight finish.
async fn http2<I>(io: I, peer: SocketAddr, context: &Arc<Context>, mut draining: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let life = Arc::new(Lifetime::default());
    let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .max_concurrent_streams(context.limits.max_streams)
        .max_header_list_size(u32::try_from(context.limits.max_head_bytes).unwrap_or(u32::MAX))
        // A peer that vanished is found within half a minute, not at the lifetime's end.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    let connection = http.serve_connection(TokioIo::new(io), service(context.clone(), peer, life.clone(), false));
    tokio::pin!(connection);
    let closing = tokio::select! {
        _ = &mut connection => return,
        closing = until_closing(context.limits.lifetime, &mut draining) => closing,
    };
    connection.as_mut().graceful_shutdown();
    finish(connection, closing, context.limits.grace).await;
}

/// Lets a closing connection finish: within the grace period at the end of its lifetime; as
/// long as the drain lasts (the server's drain timeout ends it) when draining.
async fn finish(connection: impl Future, closing: Closing, grace: Duration) {
    match closing {
        Closing::Lifetime => {
            let _ = tokio::time::timeout(grace, connection).await;
        }
        Closing::Drain => {
            connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_gives_it_back() {
        let table = Arc::new(PerAddress::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<Held> = (0..3).filter_map(|_| PerAddress::take(&table, a, 3)).collect();
        assert_eq!(held.len(), 3);
        assert!(PerAddress::take(&table, a, 3).is_none());
        assert!(PerAddress::take(&table, "192.0.2.2".parse().unwrap(), 3).is_some());
        drop(held);
        assert!(PerAddress::take(&table, a, 3).is_some());
        let unlimited: Vec<Held> = (0..100).filter_map(|_| PerAddress::take(&table, a, 0)).collect();
        assert_eq!(unlimited.len(), 100, "0 is no limit");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(limit_key(v6a), limit_key(v6b), "one /64");
    }
}
