//! The connections still in their HTTP phase (not upgraded to a WebSocket),
//! counted per client address, so that one address cannot hold every
//! descriptor with connections that never finish a request: beyond
//! `limits.http_connections_per_ip`, a new one is closed at once. Nothing
//! of the request has been read yet, so the count is keyed by the TCP peer
//! (an IPv6 peer by its /64). A trusted proxy's connections are counted but
//! never refused: every client behind it shares its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::client_addr::{limit_key, TrustedProxies};
use crate::prometheus;

/// The connections in their HTTP phase, per address.
pub struct HttpConnections {
    per_address: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
    trusted: TrustedProxies,
}

/// A connection's place in the count, given back when it is dropped: when the
/// connection upgraded or closed.
pub struct HttpConnection {
    owner: Arc<HttpConnections>,
    /// The address it is counted under; none for a trusted proxy.
    key: Option<IpAddr>,
}

/// A connection refused because its address holds as many as it may.
#[derive(Debug, thiserror::Error)]
#[error("{address} already holds {cap} connections that have not upgraded")]
pub struct TooManyConnections {
    pub address: IpAddr,
    pub cap: usize,
}

impl HttpConnections {
    pub fn new(cap: usize, trusted: TrustedProxies) -> Arc<Self> {
        Arc::new(HttpConnections { per_address: Mutex::new(HashMap::new()), cap, trusted })
    }

    /// Counts a connection from `peer`, or refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<HttpConnection, TooManyConnections> {
        let key = (!self.trusted.contains(peer)).then(|| limit_key(peer));
        if let Some(key) = key {
            let mut counts = self.counts();
            let count = counts.entry(key).or_insert(0);
            if *count >= self.cap {
                return Err(TooManyConnections { address: key, cap: self.cap });
            }
            *count += 1;
        }
        ::metrics::gauge!(prometheus::HTTP_CONNECTIONS).increment(1.0);
        Ok(HttpConnection { owner: self.clone(), key })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut counts = self.owner.counts();
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                // Only addresses with connections are kept, so the map stays small.
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
        ::metrics::gauge!(prometheus::HTTP_CONNECTIONS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_the_cap_until_one_is_given_back() {
        let connections = HttpConnections::new(2, TrustedProxies::default());
        let first = connections.admit(ip("192.0.2.1")).unwrap();
        let _second = connections.admit(ip("192.0.2.1")).unwrap();
        assert!(connections.admit(ip("192.0.2.1")).is_err());
        assert!(connections.admit(ip("192.0.2.2")).is_ok(), "another address has its own count");
        drop(first);
        assert!(connections.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn an_ipv6_64_shares_one_count_and_a_trusted_proxy_has_none() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let connections = HttpConnections::new(1, trusted);
        let _held = connections.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(connections.admit(ip("2001:db8:1:2::2")).is_err());
        assert!(connections.admit(ip("2001:db8:1:3::1")).is_ok());
        let proxied: Vec<_> = (0..5).map(|_| connections.admit(ip("10.1.1.1")).unwrap()).collect();
        drop(proxied);
        assert_eq!(connections.counts().len(), 1, "addresses with nothing held are forgotten");
    }
}
