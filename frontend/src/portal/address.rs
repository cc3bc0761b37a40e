//! Which client a sign-in comes from, for its per-address limit. A connection from a trusted
//! proxy (`trusted_proxies` in `CLUSTER.toml`) carries many clients: the client is the last
//! address in its `Forwarded` (or else `X-Forwarded-For`) chain that is not itself a trusted
//! proxy. From anyone else those headers are ignored: they are the client's to forge.

use std::net::{IpAddr, SocketAddr};

use warp::http::HeaderMap;

/// The client's address: the socket's peer, or the one a trusted proxy forwarded.
pub fn client(remote: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> String {
    let Some(peer) = remote.map(|r| r.ip()) else {
        return String::new();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let chain = forwarded_chain(headers);
    // From the right: each trusted hop vouches for the one before it.
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(ip) => continue,
            Some(ip) => return ip.to_string(),
            // A hop we cannot read: the proxy's own address is the best key left.
            None => break,
        }
    }
    peer.to_string()
}

/// The addresses in `Forwarded` (RFC 7239 `for=`), or else in `X-Forwarded-For`, in order;
/// `None` for an entry that is not an address (`unknown`, an obfuscated name).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for").then(|| parse_node(v))
                })
            })
            .collect();
    }
    values("x-forwarded-for")
        .iter()
        .map(|v| parse_node(v))
        .collect()
}

/// `192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:4711"` or `2001:db8::1`.
fn parse_node(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Ok(sock) = v.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    v.strip_prefix('[')?.split(']').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let from_proxy = Some(SocketAddr::new(proxy, 50000));
        let stranger = Some("192.0.2.9:50000".parse().unwrap());
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 198.51.100.2")]);
        assert_eq!(client(from_proxy, &xff, &[proxy]), "198.51.100.2");
        // A client's own claim ahead of what the proxy appended is not believed.
        assert_eq!(
            client(stranger, &xff, &[proxy]),
            "192.0.2.9",
            "forged by an untrusted peer"
        );
        assert_eq!(client(from_proxy, &xff, &[]), "10.0.0.5");
        // Two trusted hops: the client before them.
        let inner: IpAddr = "10.0.0.6".parse().unwrap();
        let two = headers(&[("x-forwarded-for", "198.51.100.2, 10.0.0.5")]);
        assert_eq!(
            client(Some(SocketAddr::new(inner, 1)), &two, &[proxy, inner]),
            "198.51.100.2"
        );
        let fwd = headers(&[(
            "forwarded",
            "for=203.0.113.7;proto=https, for=\"[2001:db8::17]:4711\"",
        )]);
        assert_eq!(client(from_proxy, &fwd, &[proxy]), "2001:db8::17");
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client(from_proxy, &unknown, &[proxy]), "10.0.0.5");
        assert_eq!(client(from_proxy, &HeaderMap::new(), &[proxy]), "10.0.0.5");
    }
}
