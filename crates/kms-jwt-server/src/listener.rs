//! The accept loop: every connection has a deadline for each request head and a lifetime, at
//! most [`Limits::per_address`] come from one address (an IPv6 client's /64) and at most
//! [`Limits::total`] are open at once; accept errors (out of file descriptors) back off instead
//! of spinning. `axum::serve` has none of these.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt as _;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; more wait in the listen backlog.
    pub total: usize,
    /// Connections open at once from one address; more are closed at once.
    pub per_address: usize,
    /// How long a client may take to send a request's head.
    pub header_timeout: Duration,
    /// The longest a connection lives, keep-alive included.
    pub lifetime: Duration,
    /// The most request-head bytes buffered.
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            total: 1024,
            per_address: 64,
            header_timeout: Duration::from_secs(5),
            lifetime: Duration::from_secs(60),
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
        if *count >= limit {
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
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                app.clone().oneshot(request)
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_head_bytes);
            let _ = tokio::time::timeout(limits.lifetime, http.serve_connection(TokioIo::new(stream), service)).await;
        });
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
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(limit_key(v6a), limit_key(v6b), "one /64");
    }
}
