//! The accept loop: every connection has a deadline for each request head and a lifetime (at
//! its end the connection finishes the request in flight, within a grace period, then closes),
//! at most [`Limits::per_address`] come from one address (an IPv6 client's /64) and at most
//! [`Limits::total`] are open at once; accept errors (out of file descriptors) back off instead
//! of spinning. `axum::serve` has none of these.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt as _;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; more wait in the listen backlog.
    pub total: usize,
    /// Connections open at once from one address; more are closed at once. 0: no such limit
    /// (behind a load balancer, whose few addresses carry every client).
    pub per_address: usize,
    /// How long a client may take to send a request's head.
    pub header_timeout: Duration,
    /// The longest a connection lives, keep-alive included; then the request in flight has
    /// [`Limits::grace`] to finish.
    pub lifetime: Duration,
    /// How long a request in flight may finish once its connection must close.
    pub grace: Duration,
    /// The most request-head bytes buffered.
    pub max_head_bytes: usize,
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
        }
    }
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

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.total));
    let per_address = Arc::new(PerAddress::default());
    let mut backoff = Duration::from_millis(5);
    tokio::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
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
            () = &mut shutdown => return,
        };
        let Some(held) = PerAddress::take(&per_address, peer.ip(), limits.per_address) else {
            drop(stream);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let (_slot, _held) = (slot, held);
            serve_connection(stream, peer, app, limits).await;
        });
    }
}

/// One connection's requests in flight, and whether it is closing.
#[derive(Default)]
struct Lifetime {
    in_flight: AtomicUsize,
    closing: AtomicBool,
}

/// Serves one connection for at most its lifetime. Then it takes no new request: an idle
/// connection closes at once, and the request in flight gets `Connection: close` on its answer
/// and up to the grace period to finish. (hyper's own `graceful_shutdown` was seen to cut a
/// request whose body had been read while its answer was pending.)
async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, app: Router, limits: Limits) {
    let life = Arc::new(Lifetime::default());
    let state = life.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let (app, state) = (app.clone(), state.clone());
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        async move {
            let answer = app.oneshot(request).await;
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            answer.map(|mut response| {
                if state.closing.load(Ordering::SeqCst) {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            })
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(limits.max_head_bytes);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = &mut connection => {}
        () = tokio::time::sleep(limits.lifetime) => {
            life.closing.store(true, Ordering::SeqCst);
            if life.in_flight.load(Ordering::SeqCst) > 0 {
                let _ = tokio::time::timeout(limits.grace, connection).await;
            }
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
