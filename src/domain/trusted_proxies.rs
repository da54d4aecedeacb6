//! The reverse proxies whose forwarding headers are believed: their
//! `X-Forwarded-For` names the client for the throttles, and their
//! `X-Forwarded-Proto`/`-Host` and `Forwarded` the scheme and host the
//! browser used (src/web/origin.rs). From anyone else these are ignored.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// One proxy address or network: `127.0.0.1`, `::1`, `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IP address or network (like 127.0.0.1, ::1 or 10.0.0.0/8)")]
pub struct TrustedProxyError(String);

impl FromStr for TrustedProxy {
    type Err = TrustedProxyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // A bare address is a network of one; a network given with host
        // bits set (10.1.2.3/8) is taken as the network it names.
        s.parse::<IpAddr>()
            .map(IpNet::from)
            .or_else(|_| s.parse::<IpNet>().map(|n| n.trunc()))
            .map(TrustedProxy)
            .map_err(|_| TrustedProxyError(s.to_owned()))
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The set of trusted proxies; empty means "believe no forwarding header".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<TrustedProxy>);

impl TrustedProxies {
    pub fn new(proxies: Vec<TrustedProxy>) -> Self {
        Self(proxies)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|p| p.0.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the right-most `X-Forwarded-For` entry that is not one. Entries
    /// further left were written by the client itself and prove nothing, so
    /// the walk stops at the first untrusted or unreadable one.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for.unwrap_or("").rsplit(',');
        for hop in hops {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`) as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    None
}

/// `::ffff:192.0.2.1` is 192.0.2.1: a dual-stack listener reports IPv4
/// peers that way, and one client must not count as two.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_a_network_and_an_ipv6_address_parse() {
        assert_eq!(
            "127.0.0.1".parse::<TrustedProxy>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(
            " 10.1.2.3/8 ".parse::<TrustedProxy>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "::1".parse::<TrustedProxy>().unwrap().to_string(),
            "::1/128"
        );
    }

    #[test]
    fn anything_else_is_refused_with_its_text() {
        for bad in ["", "localhost", "10.0.0.0/33", "1.2.3", "127.0.0.1:80"] {
            let err = bad.parse::<TrustedProxy>().unwrap_err();
            assert!(err.to_string().contains("is not an IP address"), "{bad}");
        }
    }

    #[test]
    fn with_no_trusted_proxy_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), Some("203.0.113.7")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_peer_that_is_not_trusted_is_the_client_whatever_it_forwards() {
        let proxies = trusted(&["127.0.0.1"]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.9"), Some("203.0.113.7")),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
        let proxies = trusted(&["127.0.0.1"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("203.0.113.7")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn addresses_a_client_forges_left_of_the_real_one_are_not_believed() {
        let proxies = trusted(&["127.0.0.1"]);
        // nginx's $proxy_add_x_forwarded_for appends the real peer.
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("10.9.9.9, 1.1.1.1, 203.0.113.7")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_through() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("203.0.113.7, 10.0.0.5")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn an_unreadable_entry_stops_the_walk_at_the_last_trusted_hop() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("203.0.113.7, garbage, 10.0.0.5")),
            ip("10.0.0.5")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("")),
            ip("127.0.0.1")
        );
        assert_eq!(proxies.client_ip(ip("127.0.0.1"), None), ip("127.0.0.1"));
    }

    #[test]
    fn entries_with_ports_and_mapped_ipv6_are_read_as_plain_addresses() {
        let proxies = trusted(&["127.0.0.1"]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), Some("[2001:db8::1]:4711")),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("203.0.113.7:4711")),
            ip("203.0.113.7")
        );
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), Some("::ffff:203.0.113.7")),
            ip("203.0.113.7")
        );
    }
}
