//! Photos: uploads through the server against raw quinn streams of the same bytes.

use std::sync::Arc;
use std::time::Instant;

use fleet::Fleet;
use patrolsync_proto::{Role, wire};
use serde_json::{Value, json};
use server::ServerProc;

use super::*;

/// A deterministic photo of `size` bytes, different per `seed`.
pub(super) fn photo(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub(super) fn sha256(bytes: &[u8]) -> Vec<u8> {
    patrolsync_proto::digest::sha256(bytes).to_vec()
}

/// Workload 3: photos uploaded at once; baseline: raw quinn streams of the same bytes.
pub(super) async fn photos(
    srv: &ServerProc,
    fleet: &Fleet,
    first: usize,
    sizes: &Sizes,
    rounds: usize,
) -> anyhow::Result<Value> {
    let n = sizes.photo_devices;
    let codes = srv
        .codes("bench-photo", n, Role::Patroller, &["S1".into()])
        .await?;
    let mut devices = enroll_fleet(fleet, first, codes, 16).await?;
    let raw_quinn = RawQuinn::connect(n).await?;
    let raw_bytes = Arc::new(photo(sizes.photo_bytes, 7));
    // Short transfers on a shared machine are noisy and its speed drifts, so each round of new
    // photos is paired with a round of the baseline, which goes first in every other pair, and
    // the median of the pairs' ratios is reported. Both sides send on new streams of
    // connections already in use, as a device does.
    let mut real = Vec::new();
    let mut raw = Vec::new();
    // CPU a round, while it is timed: the server's and the devices' (this process); for the
    // baseline, its senders' (this process) and its receiver's. A ratio can then be read as
    // CPU or as waiting.
    let mut cpu = Vec::new();
    let (mut devices_cpu, mut baseline_cpu) = (0, 0);
    let me = std::process::id();
    let sink = raw_quinn.sink_pid();
    let both = || server::cpu_ms_of(me) + server::cpu_ms_of(sink);
    let baseline_round = async |baseline_cpu: &mut u64| {
        let before = both();
        let seconds = raw_quinn.round(&raw_bytes).await;
        *baseline_cpu += both().saturating_sub(before);
        seconds
    };
    for round in 0..rounds {
        if round % 2 == 1 {
            raw.push(baseline_round(&mut baseline_cpu).await?);
        }
        let timed = upload_round(srv, &mut devices, round, sizes.photo_bytes).await?;
        real.push(timed.seconds);
        cpu.push(timed.server_cpu_ms);
        devices_cpu += timed.devices_cpu_ms;
        if round % 2 == 0 {
            raw.push(baseline_round(&mut baseline_cpu).await?);
        }
    }
    drop(raw_quinn);
    let ratios: Vec<f64> = raw.iter().zip(&real).map(|(b, r)| b / r).collect();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let (elapsed, baseline, ratio) = (median(&real), median(&raw), median(&ratios));
    let cpu_per_round = cpu.iter().sum::<u64>() as f64 / rounds as f64;
    let total_mb = (n * sizes.photo_bytes) as f64 / 1e6;
    for d in devices {
        d.conn.close(0u32.into(), b"done");
    }
    Ok(json!({
        "devices": n,
        "photo_bytes": sizes.photo_bytes,
        "rounds": rounds,
        "seconds_median": elapsed,
        "seconds_each": real,
        "baseline_seconds_each": raw,
        "ratio_each": ratios,
        "mb_per_s": total_mb / elapsed,
        "server_cpu_ms_per_round": srv.measured().then_some(cpu_per_round),
        "devices_cpu_ms_per_round": devices_cpu as f64 / rounds as f64,
        "baseline": {
            "what": "raw quinn streams of the same bytes on loopback to a bare quinn server in a process of its own (as the server is), same windows and socket buffers, from as many client sockets as the devices share, no hashing or storage",
            "mb_per_s": total_mb / baseline,
            "cpu_ms_per_round": baseline_cpu as f64 / rounds as f64,
        },
        "ratio": ratio,
        "target_ratio": 0.75,
    }))
}

/// One line: the median rate, the baseline's, their ratio and each round's.
pub(super) fn summary(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let each: Vec<String> = r["ratio_each"]
        .as_array()
        .map(|a| a.iter().map(|v| format!("{:.2}", f(v))).collect())
        .unwrap_or_default();
    format!(
        "{:.0} MB/s, raw quinn {:.0} MB/s, ratio {:.2} (rounds: {}); CPU a round: server {:.0} ms, \
         devices {:.0} ms, raw quinn {:.0} ms",
        f(&r["mb_per_s"]),
        f(&r["baseline"]["mb_per_s"]),
        f(&r["ratio"]),
        each.join(" "),
        f(&r["server_cpu_ms_per_round"]),
        f(&r["devices_cpu_ms_per_round"]),
        f(&r["baseline"]["cpu_ms_per_round"]),
    )
}

/// Rounds of the photo workload and its baseline in a full run (odd: the median is one of
/// them).
pub(super) const ROUNDS: usize = 9;

/// `photos` on its own: the server, the demo city and the photo devices, no other workload.
#[derive(clap::Args, Debug)]
pub struct PhotosArgs {
    /// Rounds of uploads, each paired with a round of the baseline (odd: the median is one of
    /// them). More rounds steady the ratio, and give a profiler of the server more to sample.
    #[arg(long, default_value_t = ROUNDS, value_parser = odd)]
    pub rounds: usize,
}

fn odd(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n % 2 == 1 => Ok(n),
        Ok(n) => Err(format!(
            "{n} is even; the median of an odd count is one of the rounds"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One round of uploads, timed: its seconds, and the CPU (ms) the server and this process (the
/// devices) spent meanwhile.
struct Timed {
    seconds: f64,
    server_cpu_ms: u64,
    devices_cpu_ms: u64,
}

/// Every device uploads a new photo of `size` bytes at once, each announced by a check-in
/// pushed first (not timed, nor its CPU counted).
async fn upload_round(
    srv: &ServerProc,
    devices: &mut [fleet::Device],
    round: usize,
    size: usize,
) -> anyhow::Result<Timed> {
    let mut shots = Vec::new();
    for (i, d) in devices.iter_mut().enumerate() {
        let bytes = photo(size, 1000 + (round * 100 + i) as u64);
        let sha = sha256(&bytes);
        d.seq += 1;
        let op = fleet::check_in(
            d.seq,
            "S1-C1-K1-B1-P1",
            60_000 + (round * 100 + i) as i64 * 1000,
            vec![sha.clone()],
        );
        fleet::push(&d.conn, &fleet::push_frame(vec![op])).await?;
        shots.push((sha, Arc::new(bytes)));
    }
    let me = std::process::id();
    let (started, server_cpu, cpu) = (Instant::now(), srv.cpu_ms(), server::cpu_ms_of(me));
    let mut tasks = tokio::task::JoinSet::new();
    for (d, (sha, bytes)) in devices.iter().zip(shots) {
        let conn = d.conn.clone();
        tasks.spawn(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            let req = patrolsync_proto::frame::encode(&wire::Request {
                kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                    sha256: sha,
                    size: bytes.len() as u64,
                    offset: 0,
                })),
            });
            send.write_all(&req).await?;
            send.write_all(&bytes).await?;
            send.finish()?;
            match fleet::read_response(&mut recv).await? {
                wire::response::Kind::BlobUpload(u) if u.complete => anyhow::Ok(()),
                other => anyhow::bail!("upload refused: {other:?}"),
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(Timed {
        seconds: started.elapsed().as_secs_f64(),
        server_cpu_ms: srv.cpu_ms().saturating_sub(server_cpu),
        devices_cpu_ms: server::cpu_ms_of(me).saturating_sub(cpu),
    })
}

/// The baseline: a bare quinn server in a process of its own (`raw-sink`), as the patrolsync
/// server is, and `n` connections to it.
struct RawQuinn {
    conns: Vec<quinn::Connection>,
    _clients: Vec<quinn::Endpoint>,
    sink: tokio::process::Child,
}

impl Drop for RawQuinn {
    fn drop(&mut self) {
        for c in &self.conns {
            c.close(0u32.into(), b"done");
        }
        // The sink is killed as `sink` drops (`kill_on_drop`) and reaped by tokio.
    }
}

/// `raw-sink`: the baseline's receiver, for `RawQuinn` to start. It prints its address and
/// its certificate (hex DER) on one line, then reads what each stream brings and answers one
/// byte, until its stdin closes.
#[derive(clap::Args, Debug)]
pub struct RawSinkArgs {}

/// Runs the `raw-sink`: a quinn server with the windows and socket buffers the patrolsync
/// server has, and nothing else.
pub(super) async fn raw_sink() -> anyhow::Result<()> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert_der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)?;
    tls.alpn_protocols = vec![b"bench".to_vec()];
    let mut transport = quinn::TransportConfig::default();
    // The same windows the patrolsync server grants.
    transport
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(4 << 20))
        .send_window(4 << 20);
    let mut server_cfg = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls)?,
    ));
    server_cfg.transport_config(Arc::new(transport));
    // And the same socket buffers.
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_recv_buffer_size(4 << 20)?;
    socket.set_send_buffer_size(4 << 20)?;
    socket.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>()?.into())?;
    let server = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_cfg),
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )?;
    println!("{} {}", server.local_addr()?, hex::encode(&cert_der));
    let acceptor = async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {}
                        let _ = send.write_all(b"k").await;
                        let _ = send.finish();
                    });
                }
            });
        }
    };
    let closed = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        std::io::stdin().read_to_end(&mut Vec::new())
    });
    tokio::select! {
        () = acceptor => {}
        _ = closed => {}
    }
    Ok(())
}

impl RawQuinn {
    async fn connect(n: usize) -> anyhow::Result<RawQuinn> {
        use rustls::pki_types::CertificateDer;
        use tokio::io::AsyncBufReadExt;
        let mut sink = tokio::process::Command::new(std::env::current_exe()?)
            .arg("raw-sink")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = sink.stdout.take().context("raw-sink: no stdout")?;
        let mut line = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::io::BufReader::new(out).read_line(&mut line),
        )
        .await
        .context("raw-sink did not say where it listens within 30 s")??;
        let (addr, cert) = line
            .trim()
            .split_once(' ')
            .with_context(|| format!("raw-sink said {line:?}"))?;
        let addr: std::net::SocketAddr = addr.parse()?;
        let cert_der = CertificateDer::from(hex::decode(cert)?);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut ctls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        ctls.alpn_protocols = vec![b"bench".to_vec()];
        let client_cfg = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(ctls)?,
        ));
        // As many client sockets as the fleet's devices share (`fleet::SOCKETS`), the
        // connections spread over them the same way.
        let bind: std::net::SocketAddr = "127.0.0.1:0".parse()?;
        let clients = (0..fleet::SOCKETS)
            .map(|_| quinn::Endpoint::client(bind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conns = Vec::new();
        for i in 0..n {
            conns.push(
                clients[i % clients.len()]
                    .connect_with(client_cfg.clone(), addr, "localhost")?
                    .await?,
            );
        }
        Ok(RawQuinn {
            conns,
            _clients: clients,
            sink,
        })
    }

    /// The sink's process id (0 once it has exited: its CPU then reads as 0).
    fn sink_pid(&self) -> u32 {
        self.sink.id().unwrap_or(0)
    }

    /// Seconds for every connection to send `bytes` on a new stream and be answered.
    async fn round(&self, bytes: &Arc<Vec<u8>>) -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for conn in &self.conns {
            let (conn, bytes) = (conn.clone(), bytes.clone());
            tasks.spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&bytes).await?;
                send.finish()?;
                let mut ack = [0u8; 1];
                recv.read_exact(&mut ack).await?;
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(started.elapsed().as_secs_f64())
    }
}
