//! The outbound address guard: upstream calls may not reach private, loopback,
//! link-local or cloud-metadata addresses unless the provider's entry allows it.
//!
//! The check runs on the addresses DNS returns, inside the resolver the HTTP client
//! connects with, so a name that resolves (or re-resolves) to a private address is
//! refused too, not only literal IPs.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses a request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Public addresses only.
    PublicOnly,
    /// Also private, loopback and link-local (for local servers such as vLLM or Ollama).
    AllowPrivate,
}

/// Cloud instance-metadata endpoints: refused whatever the policy, since no provider
/// lives there and reaching them leaks the machine's credentials.
const METADATA: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// Why an address is refused, or `None` when `policy` allows it.
pub fn refusal(ip: IpAddr, policy: Policy) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if METADATA.contains(&ip) {
        return Some("a cloud metadata address");
    }
    if policy == Policy::AllowPrivate {
        return None;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
            {
                Some("a reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("a private address")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("a reserved address")
            } else {
                None
            }
        }
    }
}

/// The error the guarded resolver returns; recognised in reqwest's error chain.
#[derive(Debug)]
pub struct Refused {
    /// The host name.
    pub host: String,
    /// The refused address.
    pub ip: IpAddr,
    /// Why.
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to {} ({}); outbound calls there are refused: set `allow_private_network: true` on the provider entry if this is intended",
            self.host, self.ip, self.why
        )
    }
}

impl std::error::Error for Refused {}

/// A DNS resolver that refuses names resolving to addresses the policy forbids.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// The policy applied to every resolved address.
    pub policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Every address must pass: otherwise a name could mix a public and a private
            // address and let the connector pick the private one.
            if let Some((ip, why)) = addrs
                .iter()
                .find_map(|a| refusal(a.ip(), policy).map(|w| (a.ip(), w)))
            {
                return Err(
                    Box::new(Refused { host, ip, why }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_loopback_and_link_local_ranges_are_refused_by_default() {
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(refusal(ip(addr), Policy::PublicOnly).is_some(), "{addr}");
        }
        for addr in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(refusal(ip(addr), Policy::PublicOnly), None, "{addr}");
        }
    }

    #[test]
    fn allowing_private_networks_still_refuses_cloud_metadata() {
        assert_eq!(refusal(ip("127.0.0.1"), Policy::AllowPrivate), None);
        assert_eq!(refusal(ip("10.0.0.1"), Policy::AllowPrivate), None);
        for addr in [
            "169.254.169.254",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "100.100.100.200",
        ] {
            assert_eq!(
                refusal(ip(addr), Policy::AllowPrivate),
                Some("a cloud metadata address"),
                "{addr}"
            );
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let resolver = GuardedResolver {
            policy: Policy::PublicOnly,
        };
        let error = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is loopback");
        let refused = error.downcast_ref::<Refused>().expect("a guard refusal");
        assert!(refused.ip.is_loopback());
        let open = GuardedResolver {
            policy: Policy::AllowPrivate,
        };
        assert!(open.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
