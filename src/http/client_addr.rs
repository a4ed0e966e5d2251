//! Who a client is, for the limits kept per address. The TCP peer is the
//! client, unless it is one of the deployment's own proxies
//! (`server.trusted_proxies`). Then the forwarding header
//! (`server.client_ip_header`, such as `x-forwarded-for`) is read from the
//! right: each trusted proxy appends the address it was connected from, so
//! the entries are skipped while they are trusted proxies themselves, and the
//! first one that is not is the client. Everything left of it was written by
//! the client and never counts. Limits key IPv6 clients by their /64, the
//! block a single host or home usually gets, and IPv4 clients by the address.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The networks of the proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    /// Whether `address` is one of the deployment's proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address, from the TCP `peer` and the forwarding header's
    /// value (its lines joined with commas, in order), if the request had one.
    pub fn client(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        let peer = peer.to_canonical();
        let Some(forwarded) = forwarded.filter(|_| self.contains(peer)) else { return peer };
        // The nearest address a trusted proxy vouched for.
        let mut vouched = peer;
        for entry in forwarded.rsplit(',') {
            match parse_entry(entry) {
                Some(address) if self.contains(address) => vouched = address,
                Some(address) => return address,
                // A trusted proxy wrote something that is not an address
                // (`unknown`, an obfuscated name): what lies left of it was not
                // vouched for, so the proxy's own client is the best we know.
                None => return vouched,
            }
        }
        // Every entry is a proxy of ours: the request began at the leftmost.
        vouched
    }
}

/// One entry of a forwarding header: an address, possibly with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or in brackets.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let address = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(address.to_canonical())
}

/// The key an address's limits are counted under: an IPv4 address itself
/// (also when it arrives mapped into IPv6), an IPv6 address's /64 prefix.
pub fn limit_key(address: IpAddr) -> IpAddr {
    const PREFIX_64: u128 = !0 << 64;
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & PREFIX_64)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(trusted.client(ip("192.0.2.1"), Some("198.51.100.1")), ip("192.0.2.1"));
        assert_eq!(proxies(&[]).client(ip("10.0.0.1"), Some("198.51.100.1")), ip("10.0.0.1"));
    }

    #[test]
    fn the_first_untrusted_entry_from_the_right_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.1.1.1");
        assert_eq!(trusted.client(peer, Some("198.51.100.1")), ip("198.51.100.1"));
        // Prepended entries are the client's own words.
        assert_eq!(trusted.client(peer, Some("203.0.113.9, 198.51.100.1")), ip("198.51.100.1"));
        // Proxies of ours in a chain are skipped.
        assert_eq!(trusted.client(peer, Some("203.0.113.9,198.51.100.1, 10.2.2.2 ,10.3.3.3")), ip("198.51.100.1"));
        // Ports and brackets, as some proxies write them.
        assert_eq!(trusted.client(peer, Some("[2001:db8::7]:4711")), ip("2001:db8::7"));
        assert_eq!(trusted.client(peer, Some("198.51.100.1:4711")), ip("198.51.100.1"));
    }

    #[test]
    fn without_an_untrusted_entry_the_leftmost_or_the_peer_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.1.1.1");
        assert_eq!(trusted.client(peer, Some("10.9.9.9, 10.2.2.2")), ip("10.9.9.9"));
        assert_eq!(trusted.client(peer, None), peer);
        assert_eq!(trusted.client(peer, Some("")), peer);
        assert_eq!(trusted.client(peer, Some("unknown")), peer);
        // Nothing left of an entry a proxy could not name is believed.
        assert_eq!(trusted.client(peer, Some("203.0.113.9, unknown, 10.2.2.2")), ip("10.2.2.2"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mapped_proxy = ip("::ffff:10.1.1.1");
        assert_eq!(trusted.client(mapped_proxy, Some("::ffff:198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(limit_key(ip("::ffff:198.51.100.1")), ip("198.51.100.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2:bbbb::9")), ip("2001:db8:1:2::"));
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("198.51.100.1")), ip("198.51.100.1"));
    }
}
