//! `render --listen`: where a Gateway's bootstrap binds, and what the filter must be told so it
//! still sees the Gateway's own ports (`spec.listeners[].port`: hostnames, redirects and
//! misdirected-request checks are per Gateway listener).
//!
//! Three forms:
//! - `IP`: every Gateway port, on that address;
//! - `IP:PORT`: the Gateway's one listener port, bound at PORT instead (filter: `listenerPort`);
//! - `GWPORT=IP:PORT,…`: each Gateway port at its own address, e.g. `8080=127.0.0.1:18080,
//!   8443=127.0.0.1:18443` for a Gateway with an HTTP and an HTTPS listener (filter:
//!   `listenerPorts`, bound port → Gateway port; TLS chains match the bound port). Bound ports
//!   are distinct: the filter tells listeners apart by the port a connection arrived on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// A parsed `--listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `IP`: every Gateway port on this address.
    Ip(IpAddr),
    /// `IP:PORT`: a Gateway with one listener port, bound here.
    One(SocketAddr),
    /// `GWPORT=IP:PORT,…`: Gateway port → where Envoy binds it.
    Map(BTreeMap<u16, SocketAddr>),
}

/// A `--listen` that does not parse, or that does not fit a Gateway.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ListenError {
    #[error("`{0}` is not IP, IP:PORT or GWPORT=IP:PORT[,GWPORT=IP:PORT...]")]
    Syntax(String),
    #[error("`{0}`: the port must be 1-65535")]
    Port(String),
    #[error("--listen: Gateway port {0} is mapped twice")]
    GatewayPortTwice(u16),
    #[error(
        "--listen: port {0} is bound for two Gateway ports (the filter tells them apart by port)"
    )]
    BoundPortTwice(u16),
    #[error("--listen with one IP:PORT needs one listener port, the Gateway has {0:?}: use GWPORT=IP:PORT,...")]
    OnePortNeeded(BTreeSet<u16>),
    #[error("--listen: Gateway port {0} has no GWPORT=IP:PORT entry")]
    Unmapped(u16),
}

impl std::str::FromStr for Listen {
    type Err = ListenError;

    fn from_str(s: &str) -> Result<Listen, ListenError> {
        if s.contains('=') {
            return map(s);
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            // Port 0: Envoy picks a free one (tests read it back from the admin API).
            return Ok(Listen::One(a));
        }
        let ip = s.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<IpAddr>()
            .map(Listen::Ip)
            .map_err(|_| ListenError::Syntax(s.to_string()))
    }
}

fn map(s: &str) -> Result<Listen, ListenError> {
    let mut out = BTreeMap::new();
    let mut bound = BTreeSet::new();
    for entry in s.split(',').map(str::trim) {
        let (gateway, addr) = entry
            .split_once('=')
            .ok_or_else(|| ListenError::Syntax(s.to_string()))?;
        let gateway = gateway
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ListenError::Port(entry.to_string()))?;
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|_| ListenError::Syntax(entry.to_string()))?;
        if addr.port() == 0 {
            return Err(ListenError::Port(entry.to_string()));
        }
        if !bound.insert(addr.port()) {
            return Err(ListenError::BoundPortTwice(addr.port()));
        }
        if out.insert(gateway, addr).is_some() {
            return Err(ListenError::GatewayPortTwice(gateway));
        }
    }
    Ok(Listen::Map(out))
}

/// Where one Gateway's Envoy listener binds, and the filter settings that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Every address the listener binds.
    pub addrs: Vec<SocketAddr>,
    /// `listenerPort`: the Gateway port, when the listener serves exactly one.
    pub listener_port: Option<u16>,
    /// `listenerPorts`: bound port → Gateway port, for the ports that differ (several ports).
    pub listener_ports: BTreeMap<u16, u16>,
    /// Gateway port → bound port, for TLS chains' `destination_port`.
    pub bound: BTreeMap<u16, u16>,
}

impl Binding {
    /// The port Envoy binds for Gateway port `port`.
    pub fn bound_port(&self, port: u16) -> u16 {
        self.bound.get(&port).copied().unwrap_or(port)
    }
}

/// Binds the Gateway `ports` (non-empty) per `listen`; without it, on the Gateway's `declared`
/// addresses (`spec.addresses`), else `0.0.0.0`.
pub fn bind(
    listen: Option<&Listen>,
    declared: &[IpAddr],
    ports: &BTreeSet<u16>,
) -> Result<Binding, ListenError> {
    let only = match (ports.len(), ports.first()) {
        (1, Some(p)) => Some(*p),
        _ => None,
    };
    let same_ports = |ips: &[IpAddr]| Binding {
        addrs: ips
            .iter()
            .flat_map(|ip| ports.iter().map(move |p| SocketAddr::new(*ip, *p)))
            .collect(),
        // One port: say it; several: the filter reads the destination port per request.
        listener_port: only,
        listener_ports: BTreeMap::new(),
        bound: ports.iter().map(|p| (*p, *p)).collect(),
    };
    match listen {
        None if declared.is_empty() => Ok(same_ports(&[IpAddr::from([0, 0, 0, 0])])),
        None => Ok(same_ports(declared)),
        Some(Listen::Ip(ip)) => Ok(same_ports(&[*ip])),
        Some(Listen::One(addr)) => {
            let port = only.ok_or_else(|| ListenError::OnePortNeeded(ports.clone()))?;
            Ok(Binding {
                addrs: vec![*addr],
                listener_port: Some(port),
                listener_ports: BTreeMap::new(),
                bound: BTreeMap::from([(port, addr.port())]),
            })
        }
        Some(Listen::Map(map)) => {
            let mut binding = Binding {
                addrs: Vec::new(),
                listener_port: only,
                listener_ports: BTreeMap::new(),
                bound: BTreeMap::new(),
            };
            // Entries for ports the Gateway does not bind (an HTTPS listener whose certificate
            // does not resolve) are left out: render notes why that listener is not bound.
            for port in ports {
                let addr = map.get(port).ok_or(ListenError::Unmapped(*port))?;
                binding.addrs.push(*addr);
                binding.bound.insert(*port, addr.port());
                if only.is_none() && addr.port() != *port {
                    binding.listener_ports.insert(addr.port(), *port);
                }
            }
            Ok(binding)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(p: &[u16]) -> BTreeSet<u16> {
        p.iter().copied().collect()
    }

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            "127.0.0.1".parse::<Listen>(),
            Ok(Listen::Ip(IpAddr::from([127, 0, 0, 1])))
        );
        assert_eq!(
            "[::1]".parse::<Listen>(),
            Ok(Listen::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            "127.0.0.1:8080".parse::<Listen>(),
            Ok(Listen::One("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            "80=127.0.0.1:8080, 443=127.0.0.1:8443".parse::<Listen>(),
            Ok(Listen::Map(BTreeMap::from([
                (80, "127.0.0.1:8080".parse().unwrap()),
                (443, "127.0.0.1:8443".parse().unwrap()),
            ])))
        );
        for (bad, err) in [
            ("nope", ListenError::Syntax("nope".into())),
            ("0=127.0.0.1:80", ListenError::Port("0=127.0.0.1:80".into())),
            ("x=127.0.0.1:80", ListenError::Port("x=127.0.0.1:80".into())),
            (
                "80=localhost:80",
                ListenError::Syntax("80=localhost:80".into()),
            ),
            (
                "80=127.0.0.1:8080,81",
                ListenError::Syntax("80=127.0.0.1:8080,81".into()),
            ),
            (
                "80=127.0.0.1:8080,443=127.0.0.2:8080",
                ListenError::BoundPortTwice(8080),
            ),
            (
                "80=127.0.0.1:8080,80=127.0.0.1:8081",
                ListenError::GatewayPortTwice(80),
            ),
        ] {
            assert_eq!(bad.parse::<Listen>(), Err(err), "{bad}");
        }
    }

    #[test]
    fn a_port_map_binds_each_gateway_port_and_tells_the_filter() {
        let listen: Listen = "8080=127.0.0.1:18080,8443=127.0.0.1:18443,9999=127.0.0.1:1"
            .parse()
            .unwrap();
        let b = bind(Some(&listen), &[], &ports(&[8080, 8443])).unwrap();
        assert_eq!(
            b.addrs,
            [
                "127.0.0.1:18080".parse().unwrap(),
                "127.0.0.1:18443".parse().unwrap()
            ]
        );
        assert_eq!(b.listener_port, None);
        assert_eq!(
            b.listener_ports,
            BTreeMap::from([(18080, 8080), (18443, 8443)])
        );
        assert_eq!(b.bound_port(8443), 18443);
        // One Gateway port: listenerPort, no per-request port read.
        let b = bind(Some(&listen), &[], &ports(&[8080])).unwrap();
        assert_eq!((b.listener_port, b.listener_ports.len()), (Some(8080), 0));
        assert_eq!(
            bind(Some(&listen), &[], &ports(&[8080, 80])),
            Err(ListenError::Unmapped(80))
        );
        // The same ports as the Gateway: nothing to map.
        let same: Listen = "80=127.0.0.1:80,443=127.0.0.1:443".parse().unwrap();
        let b = bind(Some(&same), &[], &ports(&[80, 443])).unwrap();
        assert!(b.listener_ports.is_empty());
    }

    #[test]
    fn the_older_forms_keep_their_meaning() {
        let two = ports(&[80, 443]);
        let b = bind(None, &[], &two).unwrap();
        assert_eq!(
            b.addrs,
            [
                "0.0.0.0:80".parse().unwrap(),
                "0.0.0.0:443".parse().unwrap()
            ]
        );
        assert_eq!(b.listener_port, None);
        let ip = Listen::Ip(IpAddr::from([127, 0, 0, 2]));
        let b = bind(Some(&ip), &[IpAddr::from([10, 0, 0, 1])], &ports(&[80])).unwrap();
        assert_eq!(b.addrs, ["127.0.0.2:80".parse().unwrap()]);
        assert_eq!(b.listener_port, Some(80));
        let one = Listen::One("127.0.0.1:18443".parse().unwrap());
        let b = bind(Some(&one), &[], &ports(&[443])).unwrap();
        // A TLS chain of Gateway port 443 matches the port actually bound.
        assert_eq!((b.listener_port, b.bound_port(443)), (Some(443), 18443));
        assert_eq!(
            bind(Some(&one), &[], &two),
            Err(ListenError::OnePortNeeded(two.clone()))
        );
    }
}
