//! Simulated devices over the real protocol: each enrolls with a one-time code (a key pair and
//! CSR of its own, the Enroll RPC), then connects with its certificate and speaks framed protobuf
//! on QUIC streams, as the SDK does, without the SDK's local database (so a thousand of them fit
//! in one process and the server, not the simulation, is what gets measured).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use patrolsync_proto::{frame, wire};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Client sockets the benchmark's devices share, as phones behind a few NATs would: device `i`
/// sends from socket `i mod SOCKETS`.
pub const SOCKETS: usize = 16;

/// Where the devices connect and what they trust.
#[derive(Clone)]
pub struct Fleet {
    endpoints: Vec<quinn::Endpoint>,
    pub server: SocketAddr,
    ca: CertificateDer<'static>,
}

/// An enrolled, connected device.
pub struct Device {
    pub conn: quinn::Connection,
    /// The last `device_seq` used.
    pub seq: u64,
}

/// A device's credentials from enrollment.
pub struct Credentials {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Fleet {
    /// `sockets` client UDP sockets share the devices' connections.
    pub fn new(
        server: SocketAddr,
        ca: CertificateDer<'static>,
        sockets: usize,
    ) -> anyhow::Result<Fleet> {
        let bind: SocketAddr = if server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        }
        .parse()?;
        let endpoints = (0..sockets.max(1))
            .map(|_| quinn::Endpoint::client(bind))
            .collect::<Result<_, _>>()?;
        Ok(Fleet {
            endpoints,
            server,
            ca,
        })
    }

    fn config(&self, creds: Option<&Credentials>) -> anyhow::Result<quinn::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots);
        let mut tls = match creds {
            None => builder.with_no_client_auth(),
            Some(c) => builder.with_client_auth_cert(
                vec![c.cert.clone()],
                PrivateKeyDer::Pkcs8(c.key.clone_key()),
            )?,
        };
        tls.alpn_protocols = vec![patrolsync_proto::ALPN_V1.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
                120_000,
            ))))
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(4));
        let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
        cfg.transport_config(Arc::new(transport));
        Ok(cfg)
    }

    async fn dial(
        &self,
        i: usize,
        creds: Option<&Credentials>,
    ) -> anyhow::Result<quinn::Connection> {
        let ep = &self.endpoints[i % self.endpoints.len()];
        let conn = ep
            .connect_with(self.config(creds)?, self.server, "localhost")?
            .await
            .with_context(|| format!("device {i}: connecting to {}", self.server))?;
        Ok(conn)
    }

    /// Enrolls with the one-time `code`: a fresh key pair, a CSR, the Enroll RPC.
    pub async fn enroll(&self, i: usize, code: &str) -> anyhow::Result<Credentials> {
        let key = rcgen::KeyPair::generate()?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
        let conn = self.dial(i, None).await?;
        let resp = call(
            &conn,
            wire::request::Kind::Enroll(wire::EnrollRequest {
                code: code.to_owned(),
                csr_der: csr.der().to_vec(),
                device_name: format!("bench-{i}"),
                app_version: "patrolsync-bench".into(),
            }),
        )
        .await?;
        conn.close(0u32.into(), b"enrolled");
        match resp {
            wire::response::Kind::Enroll(e) => Ok(Credentials {
                cert: CertificateDer::from(e.certificate_der),
                key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            }),
            other => anyhow::bail!("device {i}: enrollment refused: {other:?}"),
        }
    }

    /// Connects an enrolled device and says Hello.
    pub async fn connect(&self, i: usize, creds: &Credentials) -> anyhow::Result<Device> {
        let conn = self.dial(i, Some(creds)).await?;
        let hello = call(
            &conn,
            wire::request::Kind::Hello(wire::Hello {
                app_version: "patrolsync-bench".into(),
                sdk_version: "raw".into(),
                device_time_ms: now_ms(),
                ..Default::default()
            }),
        )
        .await?;
        let wire::response::Kind::Hello(h) = hello else {
            anyhow::bail!("device {i}: Hello refused: {hello:?}");
        };
        Ok(Device {
            conn,
            seq: h.acked_through,
        })
    }
}

/// One request on a fresh stream; the one response.
pub async fn call(
    conn: &quinn::Connection,
    kind: wire::request::Kind,
) -> anyhow::Result<wire::response::Kind> {
    call_frame(conn, &frame::encode(&wire::Request { kind: Some(kind) })).await
}

/// Sends an already encoded request frame; the one response.
pub async fn call_frame(
    conn: &quinn::Connection,
    request: &[u8],
) -> anyhow::Result<wire::response::Kind> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(request).await?;
    send.finish()?;
    read_response(&mut recv).await
}

/// Reads one response frame.
pub async fn read_response(recv: &mut quinn::RecvStream) -> anyhow::Result<wire::response::Kind> {
    let mut header = [0u8; frame::HEADER_LEN];
    recv.read_exact(&mut header).await?;
    let len = frame::body_len(header, 64 << 20)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    let resp: wire::Response = frame::decode(&body)?;
    resp.kind.context("empty response")
}

/// Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A check-in op at `checkpoint`, recorded `ago_ms` before now, referencing `photos`.
pub fn check_in(seq: u64, checkpoint: &str, ago_ms: i64, photos: Vec<Vec<u8>>) -> wire::Op {
    let t = now_ms() - ago_ms;
    wire::Op {
        op_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        device_seq: seq,
        hlc: Some(wire::Hlc {
            wall_ms: t as u64,
            logical: 0,
        }),
        body: Some(wire::op::Body::CheckIn(wire::CheckIn {
            id: uuid::Uuid::now_v7().as_bytes().to_vec(),
            checkpoint: checkpoint.to_owned(),
            method: wire::CheckInMethod::Qr as i32,
            outcome: wire::CheckInOutcome::Inspected as i32,
            device_time_ms: t,
            fix: Some(wire::GeoFix {
                latitude: 45.75,
                longitude: 126.65,
                accuracy_m: 8.0,
                ..Default::default()
            }),
            photo_sha256: photos,
            ..Default::default()
        })),
    }
}

/// The same check-in as JSON, as a REST sync API would carry it (for the wire-cost comparison).
pub fn check_in_json(op: &wire::Op) -> String {
    let Some(wire::op::Body::CheckIn(c)) = &op.body else {
        return String::new();
    };
    let uuid = |b: &[u8]| {
        uuid::Uuid::from_slice(b)
            .map(|u| u.to_string())
            .unwrap_or_default()
    };
    let fix = c.fix.unwrap_or_default();
    serde_json::json!({
        "op_id": uuid(&op.op_id),
        "device_seq": op.device_seq,
        "hlc": { "wall_ms": op.hlc.map(|h| h.wall_ms), "logical": 0 },
        "check_in": {
            "id": uuid(&c.id),
            "checkpoint": c.checkpoint,
            "method": "qr",
            "outcome": "inspected",
            "device_time_ms": c.device_time_ms,
            "fix": { "latitude": fix.latitude, "longitude": fix.longitude, "accuracy_m": fix.accuracy_m },
        },
    })
    .to_string()
}

/// A push frame of `ops`.
pub fn push_frame(ops: Vec<wire::Op>) -> Vec<u8> {
    frame::encode(&wire::Request {
        kind: Some(wire::request::Kind::Push(wire::PushRequest { ops })),
    })
}

/// Pushes an encoded frame; returns how many ops were applied (or already held). Paced like the
/// SDK: a push refused by the per-device rate limit is sent again shortly.
pub async fn push(conn: &quinn::Connection, frame: &[u8]) -> anyhow::Result<usize> {
    let mut tries = 0;
    loop {
        match call_frame(conn, frame).await? {
            wire::response::Kind::Error(e)
                if e.retryable
                    && e.code == wire::ErrorCode::LimitExceeded as i32
                    && tries < 200 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return applied(other),
        }
    }
}

fn applied(resp: wire::response::Kind) -> anyhow::Result<usize> {
    match resp {
        wire::response::Kind::Push(p) => Ok(p
            .results
            .iter()
            .filter(|r| {
                r.outcome == wire::OpOutcome::Applied as i32
                    || r.outcome == wire::OpOutcome::Duplicate as i32
            })
            .count()),
        other => anyhow::bail!("push refused: {other:?}"),
    }
}

/// Where a raw device is in its scope feed.
#[derive(Clone, Debug, Default)]
pub struct Position {
    /// The change-log cursor.
    pub cursor: u64,
    /// The feed the cursor belongs to (empty before the first pull).
    pub feed: String,
}

/// Pulls from `pos` until caught up (bootstrap compacts), moving `pos`; returns how many
/// changes came.
pub async fn pull_all(
    conn: &quinn::Connection,
    pos: &mut Position,
    compact: bool,
    mut each: impl FnMut(&wire::Change),
) -> anyhow::Result<usize> {
    let (mut n, mut backfill_after) = (0, 0);
    loop {
        let resp = call(
            conn,
            wire::request::Kind::Pull(wire::PullRequest {
                cursor: pos.cursor,
                limit: 1000,
                compact,
                backfill_after,
                protocol: patrolsync_proto::scope::PULL_PROTOCOL,
                feed: pos.feed.clone(),
            }),
        )
        .await?;
        let wire::response::Kind::Pull(p) = resp else {
            anyhow::bail!("pull refused: {resp:?}");
        };
        n += p.changes.len();
        p.changes.iter().for_each(&mut each);
        pos.cursor = p.next_cursor;
        pos.feed = p.feed;
        backfill_after = p.backfill_after;
        if !p.has_more {
            return Ok(n);
        }
    }
}
