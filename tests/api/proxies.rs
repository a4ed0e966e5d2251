//! The per-address handshake limit behind a proxy: the client's address is
//! read from `x-forwarded-for` only when the TCP peer is a trusted proxy, and
//! only from the entries the trusted proxies appended, right to left. IPv6
//! clients share their /64's bucket.

use crate::client::Client;
use crate::helpers::{spawn_app, TestApp};

/// A relay behind a proxy at 127.0.0.1 (or not, with `trusted` elsewhere),
/// with a burst of 2 handshakes per address.
async fn relay(trusted: &str) -> TestApp {
    let trusted = trusted.to_string();
    spawn_app()
        .with(move |s| {
            s.server.client_ip_header = Some("x-forwarded-for".into());
            s.server.trusted_proxies = vec![trusted];
            (s.limits.handshakes_per_second_per_ip, s.limits.handshake_burst_per_ip) = (1, 2);
        })
        .await
}

/// The status of a WebSocket handshake carrying `X-Forwarded-For: forwarded`
/// (101 when it upgraded).
async fn handshake(app: &TestApp, forwarded: &str) -> u16 {
    let headers = [("x-forwarded-for", forwarded)];
    Client::handshake(app.port, "?user=u", &headers).await.map_or_else(|status| status, |_| 101)
}

#[tokio::test]
async fn each_forwarded_client_has_its_own_bucket_which_prepending_cannot_refill() {
    let app = relay("127.0.0.1/32").await;
    assert_eq!(handshake(&app, "198.51.100.1").await, 101);
    assert_eq!(handshake(&app, "198.51.100.1").await, 101);
    assert_eq!(handshake(&app, "198.51.100.1").await, 429, "the burst of 2 is spent");
    assert_eq!(handshake(&app, "198.51.100.2").await, 101, "another client behind the proxy is not affected");
    // The proxy appended 198.51.100.1; what stands left of it is the client's own.
    assert_eq!(handshake(&app, "203.0.113.9, 198.51.100.1").await, 429);
    assert_eq!(handshake(&app, "203.0.113.10,198.51.100.1").await, 429);
}

#[tokio::test]
async fn ipv6_clients_share_the_bucket_of_their_64() {
    let app = relay("127.0.0.1/32").await;
    assert_eq!(handshake(&app, "2001:db8:1:2::1").await, 101);
    assert_eq!(handshake(&app, "2001:db8:1:2:aaaa:bbbb:cccc:dddd").await, 101);
    assert_eq!(handshake(&app, "2001:db8:1:2::99").await, 429, "the same /64");
    assert_eq!(handshake(&app, "2001:db8:1:3::1").await, 101, "another /64");
}

#[tokio::test]
async fn the_header_of_an_untrusted_peer_is_ignored() {
    let app = relay("10.0.0.0/8").await;
    assert_eq!(handshake(&app, "198.51.100.1").await, 101);
    assert_eq!(handshake(&app, "198.51.100.2").await, 101);
    // All three are the peer, 127.0.0.1, whatever they claim.
    assert_eq!(handshake(&app, "198.51.100.3").await, 429);
}
