//! The device side of the QUIC edge: one endpoint per client, one bidirectional stream per
//! request, frames of a u32 length and a protobuf message. Wire types stop here.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use patrolsync_proto::frame::{self, FrameError};
use patrolsync_proto::{Message, codes, wire};
use quinn::{Connection, ConnectionError, Endpoint};

use crate::ErrorCode;

/// Why one request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("could not resolve {0}")]
    Resolve(String),
    #[error("no network route to {0} (the device is offline)")]
    NoRoute(String),
    #[error("connecting to {server} timed out after {secs} s (server down or unreachable)")]
    ConnectTimeout { server: String, secs: u64 },
    #[error("connection failed: {0}")]
    Connection(#[from] ConnectionError),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("request stream failed: {0}")]
    Stream(String),
    #[error("bad response: {0}")]
    Frame(#[from] FrameError),
    #[error("no response within {0} s")]
    Timeout(u64),
    #[error("local network error: {0}")]
    Io(#[from] std::io::Error),
}

impl CallError {
    /// The application close code, if the server closed the connection with one.
    pub(crate) fn close_code(&self) -> Option<u32> {
        match self {
            CallError::Connection(ConnectionError::ApplicationClosed(c)) => {
                u32::try_from(c.error_code.into_inner()).ok()
            }
            _ => None,
        }
    }

    /// The server refused our TLS credentials during the handshake.
    pub(crate) fn is_tls_refusal(&self) -> bool {
        matches!(self, CallError::Connection(ConnectionError::ConnectionClosed(c)) if (0x100..0x200).contains(&u64::from(c.error_code)))
    }

    /// Which network failure this is, for the app: offline, timeout, DNS, TLS or a connection
    /// that broke.
    pub(crate) fn code(&self, server: &str) -> ErrorCode {
        match self {
            CallError::Resolve(host) => ErrorCode::Dns { host: host.clone() },
            CallError::NoRoute(_) => ErrorCode::Offline,
            CallError::Connect(quinn::ConnectError::InvalidServerName(host)) => {
                ErrorCode::Dns { host: host.clone() }
            }
            CallError::ConnectTimeout { secs, .. } | CallError::Timeout(secs) => {
                ErrorCode::Timeout { secs: *secs }
            }
            // Our side gave up the handshake over the server's certificate.
            CallError::Connection(ConnectionError::TransportError(e))
                if (0x100..0x200).contains(&u64::from(e.code)) =>
            {
                ErrorCode::TlsUntrusted {
                    server: server.to_owned(),
                }
            }
            CallError::Connect(_) | CallError::Io(_) => ErrorCode::Offline,
            CallError::Connection(_) | CallError::Stream(_) | CallError::Frame(_) => {
                ErrorCode::ConnectionLost
            }
        }
    }

    /// The request may be repeated (network trouble, not a refusal).
    pub(crate) fn is_transient(&self) -> bool {
        !matches!(
            self.close_code(),
            Some(codes::CLOSE_REVOKED | codes::CLOSE_UNAUTHENTICATED)
        ) && !self.is_tls_refusal()
    }
}

/// The client's UDP endpoints (one per address family), reused for every connection.
#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    v4: Mutex<Option<Endpoint>>,
    v6: Mutex<Option<Endpoint>>,
    /// The address that answered last; tried first next time.
    last_good: Mutex<Option<SocketAddr>>,
}

impl Endpoints {
    fn for_addr(&self, addr: SocketAddr) -> std::io::Result<Endpoint> {
        let (slot, bind): (_, SocketAddr) = if addr.is_ipv4() {
            (&self.v4, SocketAddr::from(([0, 0, 0, 0], 0)))
        } else {
            (&self.v6, SocketAddr::from(([0u16; 8], 0)))
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ep) = slot.as_ref() {
            return Ok(ep.clone());
        }
        let ep = Endpoint::client(bind)?;
        *slot = Some(ep.clone());
        Ok(ep)
    }

    /// Connects to `server`: `host:port`, or several separated by commas. Every address each
    /// name resolves to is tried in turn (several server nodes behind one DNS name), the one
    /// that answered last first, so a device whose node went away moves to another.
    pub(crate) async fn connect(
        &self,
        server: &str,
        config: quinn::ClientConfig,
        timeout: Duration,
    ) -> Result<Connection, CallError> {
        let mut candidates: Vec<(SocketAddr, &str)> = Vec::new();
        for entry in server.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let host = host_of(entry);
            if let Ok(addrs) = tokio::net::lookup_host(entry).await {
                candidates.extend(addrs.map(|a| (a, host)));
            }
        }
        if candidates.is_empty() {
            // A phone with no network fails to resolve too: say which it is.
            if !has_route(None) {
                return Err(CallError::NoRoute(server.to_owned()));
            }
            return Err(CallError::Resolve(hosts(server)));
        }
        let last_good = *self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = candidates.iter().position(|(a, _)| Some(*a) == last_good) {
            candidates[..=i].rotate_right(1);
        }
        let mut last_err = None;
        for (addr, host) in candidates {
            let connecting = self
                .for_addr(addr)?
                .connect_with(config.clone(), addr, host)?;
            match tokio::time::timeout(timeout, connecting).await {
                Ok(Ok(conn)) => {
                    *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                    return Ok(conn);
                }
                // The server itself refused us: another node would say the same.
                Ok(Err(e)) if !CallError::from(e.clone()).is_transient() => return Err(e.into()),
                Ok(Err(e)) => last_err = Some(e.into()),
                // QUIC sends into the void when there is no network (quinn drops the send
                // error), so a timeout is where an offline phone ends up: ask the routing table.
                Err(_) if !has_route(Some(addr)) => {
                    last_err = Some(CallError::NoRoute(addr.to_string()))
                }
                Err(_) => {
                    last_err = Some(CallError::ConnectTimeout {
                        server: addr.to_string(),
                        secs: whole_secs(timeout),
                    })
                }
            }
        }
        Err(last_err.unwrap_or_else(|| CallError::Resolve(hosts(server))))
    }
}

/// Sends one request on a new stream and reads the one response frame.
pub(crate) async fn call(
    conn: &Connection,
    request: &wire::Request,
    limit: u32,
    timeout: Duration,
) -> Result<wire::Response, CallError> {
    let work = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(&frame::encode(request))
            .await
            .map_err(|e| match e {
                quinn::WriteError::ConnectionLost(c) => CallError::Connection(c),
                other => CallError::Stream(other.to_string()),
            })?;
        let _ = send.finish();
        read_response(&mut recv, limit).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| CallError::Timeout(whole_secs(timeout)))?
}

/// Reads the one response frame of a stream with the protocol's decoder: memory grows with the
/// bytes that arrive, and nothing past the frame is read (a download's bytes follow it).
pub(crate) async fn read_response(
    recv: &mut quinn::RecvStream,
    limit: u32,
) -> Result<wire::Response, CallError> {
    let mut decoder = frame::FrameDecoder::new(limit);
    loop {
        let wants = decoder.wants();
        match recv.read_chunk(wants, true).await {
            Ok(Some(chunk)) => {
                if let Some(body) = decoder.feed(&chunk.bytes)? {
                    return Ok(frame::decode::<wire::Response>(&body)?);
                }
            }
            Ok(None) => {
                decoder.finish()?;
                return Err(CallError::Frame(FrameError::Truncated {
                    expected: wants,
                    got: 0,
                }));
            }
            Err(quinn::ReadError::ConnectionLost(c)) => return Err(CallError::Connection(c)),
            Err(e) => return Err(CallError::Stream(e.to_string())),
        }
    }
}

/// Encodes a push from the outbox's stored op payloads (each an encoded `wire::Op`).
pub(crate) fn push_request(payloads: &[Vec<u8>]) -> Result<wire::Request, prost::DecodeError> {
    let ops = payloads
        .iter()
        .map(|p| wire::Op::decode(p.as_slice()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(wire::Request {
        kind: Some(wire::request::Kind::Push(wire::PushRequest { ops })),
    })
}

/// A timeout in whole seconds for people to read, rounded up (300 ms reads as 1 s, not 0).
pub(crate) fn whole_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// The host names of a `host:port[,host:port…]` server string.
fn hosts(server: &str) -> String {
    server
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(host_of)
        .collect::<Vec<_>>()
        .join(",")
}

/// The host of a `host:port` entry (an IPv6 address without its brackets).
fn host_of(entry: &str) -> &str {
    entry
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(entry)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// Whether the routing table has a way to `addr` (or anywhere, for `None`). Connecting a UDP
/// socket only looks the route up: nothing is sent.
fn has_route(addr: Option<SocketAddr>) -> bool {
    // TEST-NET-2 (RFC 5737): never contacted; its route is the default route.
    let addr = addr.unwrap_or_else(|| SocketAddr::from(([198, 51, 100, 1], 9)));
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    match std::net::UdpSocket::bind(bind).and_then(|s| s.connect(addr)) {
        Ok(()) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::AddrNotAvailable
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_failures_map_to_their_codes() {
        let server = "sync.example.org:4433";
        assert_eq!(
            CallError::Resolve(hosts("sync.example.org:4433, [2001:db8::1]:4433")).code(server),
            ErrorCode::Dns {
                host: "sync.example.org,2001:db8::1".into()
            }
        );
        assert_eq!(
            CallError::NoRoute("10.1.2.3:4433".into()).code(server),
            ErrorCode::Offline
        );
        assert_eq!(
            CallError::ConnectTimeout {
                server: server.into(),
                secs: 1
            }
            .code(server),
            ErrorCode::Timeout { secs: 1 }
        );
        assert_eq!(
            CallError::Timeout(30).code(server),
            ErrorCode::Timeout { secs: 30 }
        );
        assert_eq!(
            CallError::Stream("reset".into()).code(server),
            ErrorCode::ConnectionLost
        );
        assert_eq!(
            CallError::Connection(ConnectionError::TimedOut).code(server),
            ErrorCode::ConnectionLost
        );
        assert_eq!(
            CallError::Connection(ConnectionError::TransportError(
                quinn_proto::TransportError {
                    code: quinn::TransportErrorCode::crypto(42),
                    frame: None,
                    reason: "invalid peer certificate".into(),
                }
            ))
            .code(server),
            ErrorCode::TlsUntrusted {
                server: server.into()
            }
        );
    }

    #[test]
    fn a_timeout_reads_in_whole_seconds_rounded_up() {
        assert_eq!(whole_secs(Duration::from_millis(300)), 1);
        assert_eq!(whole_secs(Duration::from_secs(30)), 30);
        assert_eq!(whole_secs(Duration::from_millis(30_001)), 31);
    }

    #[test]
    fn loopback_always_has_a_route() {
        assert!(has_route(Some(SocketAddr::from(([127, 0, 0, 1], 4433)))));
    }
}
