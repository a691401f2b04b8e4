//! The X-Ray daemon's address (`AWS_XRAY_DAEMON_ADDRESS`).
//!
//! Two forms are accepted: `host:port` (the same address for UDP segments and the TCP
//! sampling proxy), or `tcp:host:port udp:host:port` in either order, one space apart.

use std::fmt;
use std::str::FromStr;

/// The default daemon address.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// A host and a port, not yet resolved (resolution happens off the request path).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where segments (UDP) and sampling requests (TCP) go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DaemonAddress {
    /// UDP address for segment documents.
    pub udp: HostPort,
    /// TCP address of the daemon's X-Ray API proxy (sampling).
    pub tcp: HostPort,
}

/// Why a daemon address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid X-Ray daemon address {input:?}: {reason}; expected \"host:port\" or \"tcp:host:port udp:host:port\"")]
pub struct DaemonAddressError {
    input: String,
    reason: &'static str,
}

impl DaemonAddress {
    /// Parses either accepted form.
    pub fn parse(input: &str) -> Result<Self, DaemonAddressError> {
        let err = |reason| DaemonAddressError {
            input: input.chars().take(200).collect(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let parts: Vec<&str> = s.split(' ').collect();
        match parts.as_slice() {
            [one] => {
                // `udp:host:port` alone is half of the two-address form; `udp:2000` is a host
                // named `udp` with a port.
                let prefixed = one.starts_with("tcp:") || one.starts_with("udp:");
                if prefixed && one[4..].contains(':') {
                    return Err(err("both tcp: and udp: addresses are needed"));
                }
                let hp = parse_host_port(one).map_err(err)?;
                Ok(Self {
                    udp: hp.clone(),
                    tcp: hp,
                })
            }
            [a, b] => {
                let (mut tcp, mut udp) = (None, None);
                for p in [a, b] {
                    if let Some(rest) = p.strip_prefix("tcp:") {
                        if tcp.replace(parse_host_port(rest).map_err(err)?).is_some() {
                            return Err(err("tcp: given twice"));
                        }
                    } else if let Some(rest) = p.strip_prefix("udp:") {
                        if udp.replace(parse_host_port(rest).map_err(err)?).is_some() {
                            return Err(err("udp: given twice"));
                        }
                    } else {
                        return Err(err("each part must start with tcp: or udp:"));
                    }
                }
                match (tcp, udp) {
                    (Some(tcp), Some(udp)) => Ok(Self { udp, tcp }),
                    _ => Err(err("both tcp: and udp: addresses are needed")),
                }
            }
            _ => Err(err("too many parts")),
        }
    }
}

impl Default for DaemonAddress {
    fn default() -> Self {
        let hp = HostPort {
            host: "127.0.0.1".into(),
            port: 2000,
        };
        Self {
            udp: hp.clone(),
            tcp: hp,
        }
    }
}

impl FromStr for DaemonAddress {
    type Err = DaemonAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DaemonAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.udp == self.tcp {
            write!(f, "{}", self.udp)
        } else {
            write!(f, "tcp:{} udp:{}", self.tcp, self.udp)
        }
    }
}

fn parse_host_port(s: &str) -> Result<HostPort, &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed [ in IPv6 address")?;
        let host = &rest[..end];
        let port = rest[end + 1..].strip_prefix(':').ok_or("missing port")?;
        (host, port)
    } else {
        let i = s.rfind(':').ok_or("missing port")?;
        let host = &s[..i];
        if host.contains(':') {
            return Err("IPv6 addresses must be written in brackets");
        }
        (host, &s[i + 1..])
    };
    if host.is_empty() {
        return Err("missing host");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
    {
        return Err("host contains invalid characters");
    }
    let port: u16 = port
        .parse()
        .map_err(|_| "port is not a number from 1 to 65535")?;
    if port == 0 {
        return Err("port is not a number from 1 to 65535");
    }
    Ok(HostPort {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_form_sets_both() {
        let a = DaemonAddress::parse("127.0.0.1:3000").unwrap();
        assert_eq!(a.udp.port, 3000);
        assert_eq!(a.tcp, a.udp);
        assert_eq!(a.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn split_form_in_either_order() {
        let a = DaemonAddress::parse("tcp:127.0.0.1:2000 udp:xray.local:2001").unwrap();
        let b = DaemonAddress::parse("udp:xray.local:2001 tcp:127.0.0.1:2000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.udp.host, "xray.local");
        assert_eq!(a.tcp.port, 2000);
        assert_eq!(a.to_string(), "tcp:127.0.0.1:2000 udp:xray.local:2001");
    }

    #[test]
    fn hosts_named_udp_or_tcp_round_trip() {
        for input in ["[udp]:2", "udp:2", "tcp:2000", "tcp:udp:1 udp:tcp:2"] {
            let a = DaemonAddress::parse(input).unwrap();
            assert_eq!(DaemonAddress::parse(&a.to_string()), Ok(a), "{input}");
        }
        assert_eq!(DaemonAddress::parse("udp:2").unwrap().udp.host, "udp");
    }

    #[test]
    fn ipv6_in_brackets() {
        let a = DaemonAddress::parse("[::1]:2000").unwrap();
        assert_eq!(a.udp.host, "::1");
        assert_eq!(a.to_string(), "[::1]:2000");
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "localhost",
            "localhost:",
            ":2000",
            "localhost:99999",
            "localhost:0",
            "tcp:127.0.0.1:2000",
            "tcp:a:1 tcp:b:2",
            "tcp:a:1  udp:b:2",
            "foo:a:1 udp:b:2",
            "a:1 b:2 c:3",
            "::1:2000",
            "ho st:1",
        ] {
            let e = DaemonAddress::parse(bad).unwrap_err();
            assert!(e.to_string().contains("expected"), "{bad}: {e}");
        }
    }
}
