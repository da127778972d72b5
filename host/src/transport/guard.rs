//! The outbound address guard: upstream calls may not reach private, loopback,
//! link-local or cloud-metadata addresses unless the provider's entry allows it.
//!
//! The check runs on the addresses DNS returns, inside the resolver the HTTP client
//! connects with, so a name that resolves (or re-resolves) to a private address is
//! refused too, not only literal IPs.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Which addresses a request may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Public addresses only.
    PublicOnly,
    /// Also private, loopback and link-local (for local servers such as vLLM or Ollama).
    AllowPrivate,
}

/// Cloud instance-metadata and credential endpoints: refused whatever the policy,
/// since no provider lives there and reaching them leaks the machine's credentials.
/// AWS (IMDS over IPv4 and IPv6, the ECS task and EKS pod-identity agents, the IPv6
/// DNS/metadata address), GCP and Azure IMDS (169.254.169.254), Azure's wire server,
/// Alibaba and Oracle.
const METADATA: [IpAddr; 8] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023)),
];

/// The IPv4 addresses an IPv6 address carries, which the network may route to: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96` and the local
/// `64:ff9b:1::/48`), 6to4 (`2002:AABB:CCDD::/16`) and Teredo (`2001:0::/32`, its server
/// and its obfuscated client). Each is checked as if the IPv4 address had been named.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mut found = Vec::new();
    if let Some(mapped) = v6.to_ipv4_mapped() {
        found.push(mapped);
    }
    // `::` and `::1` are IPv6's own unspecified and loopback, not compatible forms.
    if s[..6] == [0; 6] && !(v6.is_unspecified() || v6.is_loopback()) {
        found.push(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..2] == [0x64, 0xff9b] && s[2] == 1 {
        found.push(low);
    }
    if s[0] == 0x2002 {
        found.push(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        found.push(Ipv4Addr::new(
            (s[2] >> 8) as u8,
            s[2] as u8,
            (s[3] >> 8) as u8,
            s[3] as u8,
        ));
        found.push(Ipv4Addr::from(!u32::from(low)));
    }
    found
}

/// Why an address is refused, or `None` when `policy` allows it. An IPv6 address that
/// embeds IPv4 addresses is refused when any of them is.
pub fn refusal(ip: IpAddr, policy: Policy) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, policy),
        IpAddr::V6(v6) => embedded_ipv4(v6)
            .into_iter()
            .find_map(|v4| refusal_v4(v4, policy))
            .or_else(|| refusal_v6(v6, policy)),
    }
}

fn refusal_v4(v4: Ipv4Addr, policy: Policy) -> Option<&'static str> {
    if METADATA.contains(&IpAddr::V4(v4)) {
        return Some("a cloud metadata address");
    }
    if policy == Policy::AllowPrivate {
        return None;
    }
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some("a loopback address")
    } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some("a private address")
    } else if v4.is_link_local() {
        Some("a link-local address")
    } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 || a >= 240 {
        Some("a reserved address")
    } else {
        None
    }
}

fn refusal_v6(v6: Ipv6Addr, policy: Policy) -> Option<&'static str> {
    if METADATA.contains(&IpAddr::V6(v6)) {
        return Some("a cloud metadata address");
    }
    if policy == Policy::AllowPrivate {
        return None;
    }
    let first = v6.segments()[0];
    if v6.is_loopback() {
        Some("a loopback address")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("a private address")
    } else if (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0 {
        // fec0::/10 is the deprecated site-local range, as private as fc00::/7.
        Some("a link-local address")
    } else if v6.is_unspecified() || v6.is_multicast() {
        Some("a reserved address")
    } else {
        None
    }
}

/// The error the guarded resolver returns; recognised in the HTTP client's error chain.
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

/// Checks a URL's host before a request is sent: a literal address always, and a name
/// too when `resolve_names` (a proxy resolves it, so the guarded resolver never sees
/// it). Names the HTTP client resolves are checked by its resolver instead.
pub async fn check(host: &str, policy: Policy, resolve_names: bool) -> Result<(), Refused> {
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if resolve_names => match tokio::net::lookup_host((host, 0)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            // An unknown name is the proxy's to report.
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    match addrs
        .into_iter()
        .find_map(|ip| refusal(ip, policy).map(|why| (ip, why)))
    {
        Some((ip, why)) => Err(Refused {
            host: host.to_owned(),
            ip,
            why,
        }),
        None => Ok(()),
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
    fn ipv6_forms_that_embed_a_private_ipv4_address_are_refused_as_that_address() {
        for (addr, why) in [
            ("::127.0.0.1", "a loopback address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("64:ff9b::127.0.0.1", "a loopback address"),
            ("64:ff9b::10.0.0.1", "a private address"),
            ("64:ff9b:1::a00:1", "a private address"),
            ("2002:7f00:1::", "a loopback address"),
            ("2002:c0a8:101::1", "a private address"),
            // Teredo: server 192.168.1.1, client 127.0.0.1 obfuscated (bits inverted).
            ("2001:0:c0a8:101::", "a private address"),
            ("2001:0:808:808::80ff:fffe", "a loopback address"),
        ] {
            assert_eq!(refusal(ip(addr), Policy::PublicOnly), Some(why), "{addr}");
        }
        for addr in [
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:0:808:808::f7f7:f7f7",
        ] {
            assert_eq!(refusal(ip(addr), Policy::PublicOnly), None, "{addr}");
        }
    }

    #[test]
    fn metadata_addresses_are_refused_in_every_form_even_on_a_private_network() {
        for addr in [
            "169.254.170.2",
            "169.254.170.23",
            "fd00:ec2::23",
            "168.63.129.16",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "64:ff9b::a9fe:aa02",
            "2002:a9fe:a9fe::",
            "2001:0:a9fe:a9fe::",
        ] {
            assert_eq!(
                refusal(ip(addr), Policy::AllowPrivate),
                Some("a cloud metadata address"),
                "{addr}"
            );
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
}
