//! Who a call came from: the connection's address, or, when the connection is from a trusted
//! gateway (`--trusted-proxies`), the address the gateway forwards in `x-forwarded-for`.
//! Sign-in limits per address and the audit trail use it, so callers behind a gateway are
//! told apart; anyone else's `x-forwarded-for` is ignored (it could be anything).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The header a gateway names the caller's address in.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// A call's caller, put in the request's extensions by `observe.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    pub ip: IpAddr,
    /// Known for a direct connection, not for an address a gateway forwarded.
    pub port: Option<u16>,
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// The connection's remote address, plaintext or TLS.
pub fn connection(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
}

/// The caller of a request that arrived on a connection from `from`.
pub fn client(from: SocketAddr, headers: &http::HeaderMap, trusted: &[IpAddr]) -> ClientAddress {
    let forwarded = trusted
        .contains(&from.ip())
        .then(|| forwarded_for(headers))
        .flatten();
    match forwarded {
        Some(ip) => ClientAddress { ip, port: None },
        None => ClientAddress {
            ip: from.ip(),
            port: Some(from.port()),
        },
    }
}

/// The last address of `x-forwarded-for` (the one the nearest gateway added).
fn forwarded_for(headers: &http::HeaderMap) -> Option<IpAddr> {
    let value = headers.get(FORWARDED_FOR)?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_gateway_may_name_the_caller() {
        let gateway: SocketAddr = "10.0.0.4:40000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.9:50000".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(FORWARDED_FOR, "192.0.2.1, 203.0.113.7".parse().unwrap());
        let trusted = ["10.0.0.4".parse().unwrap()];
        let behind = client(gateway, &headers, &trusted);
        assert_eq!(behind.to_string(), "203.0.113.7");
        let spoofed = client(stranger, &headers, &trusted);
        assert_eq!(spoofed.to_string(), "198.51.100.9:50000");
        let garbled = {
            let mut h = http::HeaderMap::new();
            h.insert(FORWARDED_FOR, "not-an-address".parse().unwrap());
            client(gateway, &h, &trusted)
        };
        assert_eq!(garbled.to_string(), "10.0.0.4:40000");
    }
}
