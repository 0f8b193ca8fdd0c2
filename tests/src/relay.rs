//! A fault-injecting UDP relay for tests: it sits between an SDK client and the server on
//! loopback and does to their datagrams what bad networks do — loss, delay and jitter (hence
//! reordering), duplication, a bandwidth cap, a blackhole for a while — and it can move the
//! client's traffic to a new source address and port mid-connection, as a phone switching from
//! Wi-Fi to cellular does (the server sees a QUIC migration).
//!
//! Fault decisions come from a ChaCha generator seeded by [`Faults::seed`], one draw sequence
//! per direction, so the same seed drops, duplicates and delays the same packets of a run.
//! Faults can be changed while traffic flows ([`Relay::set`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// What the relay does to each datagram, per direction.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..jitter`, drawn per datagram (reorders them).
    pub jitter: Duration,
    /// Probability a datagram is sent twice.
    pub duplicate: f64,
    /// Bytes per second each direction may carry; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Seed of the fault decisions.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            duplicate: 0.0,
            bandwidth: None,
            seed: 1,
        }
    }
}

/// Counts of what the relay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Datagrams received from the client.
    pub from_client: u64,
    /// Datagrams received from the server.
    pub from_server: u64,
    /// Datagrams dropped (loss or blackhole).
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Payload bytes forwarded to the server.
    pub bytes_to_server: u64,
    /// Network switches done.
    pub switches: u64,
}

#[derive(Debug, Default)]
struct Counters {
    from_client: AtomicU64,
    from_server: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    bytes_to_server: AtomicU64,
    switches: AtomicU64,
}

/// One direction's fault state.
#[derive(Debug)]
struct Lane {
    rng: ChaCha8Rng,
    /// When the bandwidth cap lets the next datagram leave.
    free_at: Instant,
}

impl Lane {
    fn new(seed: u64) -> Lane {
        Lane {
            rng: ChaCha8Rng::seed_from_u64(seed),
            free_at: Instant::now(),
        }
    }

    /// When each copy of a datagram of `len` bytes leaves, or no copies if it is lost.
    fn schedule(&mut self, f: &Faults, len: usize, now: Instant) -> Vec<Instant> {
        // Always draw the same numbers per datagram, so one fault's setting does not shift
        // another's decisions.
        let lost = self.rng.gen_bool(f.loss.clamp(0.0, 1.0));
        let twice = self.rng.gen_bool(f.duplicate.clamp(0.0, 1.0));
        let jitter = self.rng.gen_range(0.0..1.0) * f.jitter.as_secs_f64();
        if lost {
            return Vec::new();
        }
        let mut leave = now + f.delay + Duration::from_secs_f64(jitter);
        if let Some(bps) = f.bandwidth.filter(|b| *b > 0) {
            let start = self.free_at.max(now);
            self.free_at = start + Duration::from_secs_f64(len as f64 / bps as f64);
            leave = leave.max(self.free_at);
        }
        if twice {
            vec![leave, leave]
        } else {
            vec![leave]
        }
    }
}

#[derive(Debug)]
struct State {
    faults: Faults,
    to_server: Lane,
    to_client: Lane,
    blackhole_until: Option<Instant>,
    client: Option<SocketAddr>,
    /// The socket that carries the client's traffic to the server now.
    upstream: Arc<UdpSocket>,
}

impl State {
    /// When the copies of a `len`-byte datagram leave in one direction (none: dropped).
    fn plan(&mut self, to_server: bool, len: usize, now: Instant) -> Vec<Instant> {
        let faults = self.faults.clone();
        let lane = if to_server {
            &mut self.to_server
        } else {
            &mut self.to_client
        };
        // Draw even when dark, so a blackhole does not shift the decisions after it.
        let at = lane.schedule(&faults, len, now);
        if self.blackhole_until.is_some_and(|until| now < until) {
            Vec::new()
        } else {
            at
        }
    }
}

impl Counters {
    /// Counts a datagram's fate; false when it was dropped.
    fn fate(&self, copies: usize) -> bool {
        match copies {
            0 => {
                self.dropped.fetch_add(1, Ordering::SeqCst);
                return false;
            }
            2 => {
                self.duplicated.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        true
    }
}

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    front: Arc<UdpSocket>,
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    next_ip: AtomicU64,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            t.abort();
        }
    }
}

impl Relay {
    /// Starts a relay in front of `server`; clients dial [`Relay::addr`].
    pub async fn start(server: SocketAddr, faults: Faults) -> std::io::Result<Relay> {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let upstream = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let state = Arc::new(Mutex::new(State {
            to_server: Lane::new(faults.seed),
            to_client: Lane::new(faults.seed.wrapping_add(0x9e37_79b9)),
            faults,
            blackhole_until: None,
            client: None,
            upstream: upstream.clone(),
        }));
        let relay = Relay {
            addr: front.local_addr()?,
            front: front.clone(),
            state: state.clone(),
            counters: Arc::default(),
            tasks: Mutex::new(Vec::new()),
            next_ip: AtomicU64::new(2),
        };
        let forward = tokio::spawn(client_to_server(
            front.clone(),
            server,
            state,
            relay.counters.clone(),
        ));
        let back = relay.spawn_downstream(upstream, front);
        relay
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([forward, back]);
        Ok(relay)
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the faults from now on (the random sequences continue).
    pub fn set(&self, faults: Faults) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).faults = faults;
    }

    /// Drops everything in both directions for `d`.
    pub fn blackhole(&self, d: Duration) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .blackhole_until = Some(Instant::now() + d);
    }

    /// Moves the client's traffic to a new source address (the next loopback IP, a new port):
    /// to the server the client has changed networks. Replies to the old address still reach
    /// the client for as long as the server sends them.
    pub async fn switch_network(&self) -> std::io::Result<SocketAddr> {
        let n = self.next_ip.fetch_add(1, Ordering::SeqCst);
        let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(n.min(250)).unwrap_or(250));
        let socket = Arc::new(UdpSocket::bind((IpAddr::V4(ip), 0)).await?);
        let local = socket.local_addr()?;
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upstream = socket.clone();
        let task = self.spawn_downstream(socket, self.front.clone());
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        self.counters.switches.fetch_add(1, Ordering::SeqCst);
        Ok(local)
    }

    /// What the relay has done so far.
    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            from_client: c.from_client.load(Ordering::SeqCst),
            from_server: c.from_server.load(Ordering::SeqCst),
            dropped: c.dropped.load(Ordering::SeqCst),
            duplicated: c.duplicated.load(Ordering::SeqCst),
            bytes_to_server: c.bytes_to_server.load(Ordering::SeqCst),
            switches: c.switches.load(Ordering::SeqCst),
        }
    }

    fn spawn_downstream(
        &self,
        upstream: Arc<UdpSocket>,
        front: Arc<UdpSocket>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(server_to_client(
            upstream,
            front,
            self.state.clone(),
            self.counters.clone(),
        ))
    }
}

/// Sends `bytes` on `socket` to `to` at each of `at`: at once, in order, when no delay is due;
/// else from a task per datagram, so later ones with less delay overtake (reordering).
async fn send_later(socket: Arc<UdpSocket>, to: SocketAddr, bytes: Vec<u8>, at: Vec<Instant>) {
    let now = Instant::now();
    for when in at {
        if when <= now {
            let _ = socket.send_to(&bytes, to).await;
            continue;
        }
        let socket = socket.clone();
        let bytes = bytes.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(when).await;
            let _ = socket.send_to(&bytes, to).await;
        });
    }
}

async fn client_to_server(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            return;
        };
        counters.from_client.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        let (upstream, at) = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.client = Some(from);
            (s.upstream.clone(), s.plan(true, n, now))
        };
        if !counters.fate(at.len()) {
            continue;
        }
        counters
            .bytes_to_server
            .fetch_add(n as u64, Ordering::SeqCst);
        send_later(upstream, server, buf[..n].to_vec(), at).await;
    }
}

async fn server_to_client(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, _)) = upstream.recv_from(&mut buf).await else {
            return;
        };
        counters.from_server.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        let (client, at) = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            (s.client, s.plan(false, n, now))
        };
        let Some(client) = client else { continue };
        if !counters.fate(at.len()) {
            continue;
        }
        send_later(front.clone(), client, buf[..n].to_vec(), at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP echo server; returns its address and what it received (source, first 4 bytes as
    /// a number), in order.
    async fn echo() -> (SocketAddr, Arc<Mutex<Vec<(SocketAddr, u32)>>>) {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let mut number = [0u8; 4];
                let k = n.min(4);
                number[..k].copy_from_slice(&buf[..k]);
                log.lock()
                    .expect("log")
                    .push((from, u32::from_be_bytes(number)));
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        (addr, seen)
    }

    /// Sends `count` numbered datagrams through `relay` and collects what comes back within
    /// `wait` of the last one.
    async fn round_trip(relay: &Relay, count: u32, wait: Duration) -> Vec<u32> {
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        for i in 0..count {
            client
                .send_to(&i.to_be_bytes(), relay.addr())
                .await
                .expect("send");
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok(Ok((n, _))) = tokio::time::timeout(wait, client.recv_from(&mut buf)).await {
            if n == 4 {
                got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        }
        got
    }

    #[tokio::test]
    async fn clean_relay_forwards_everything_both_ways() {
        let (server, _) = echo().await;
        let relay = Relay::start(server, Faults::default())
            .await
            .expect("relay");
        let got = round_trip(&relay, 50, Duration::from_millis(300)).await;
        assert_eq!(got.len(), 50);
        let s = relay.stats();
        assert_eq!((s.from_client, s.from_server, s.dropped), (50, 50, 0));
    }

    /// The datagrams (by number) that reached a fresh echo server through a relay with `f`.
    async fn delivered(f: Faults) -> Vec<u32> {
        let (server, seen) = echo().await;
        let relay = Relay::start(server, f).await.expect("relay");
        round_trip(&relay, 200, Duration::from_millis(300)).await;
        let mut got: Vec<u32> = seen.lock().expect("log").iter().map(|(_, n)| *n).collect();
        got.sort_unstable();
        got
    }

    #[tokio::test]
    async fn the_same_seed_loses_the_same_packets() {
        let lossy = |seed| Faults {
            loss: 0.3,
            seed,
            ..Faults::default()
        };
        let a = delivered(lossy(42)).await;
        let b = delivered(lossy(42)).await;
        assert_eq!(a, b, "same seed, same fate");
        assert!((100..=180).contains(&a.len()), "~30% lost: {}", a.len());
        assert_ne!(a, delivered(lossy(43)).await, "another seed, another fate");
    }

    #[tokio::test]
    async fn duplicates_jitter_reorders_and_blackhole_drops() {
        let (server, _) = echo().await;
        let relay = Relay::start(
            server,
            Faults {
                duplicate: 1.0,
                ..Faults::default()
            },
        )
        .await
        .expect("relay");
        // Each way doubles: four copies of each come back.
        let got = round_trip(&relay, 10, Duration::from_millis(300)).await;
        assert_eq!(got.len(), 40);

        relay.set(Faults {
            jitter: Duration::from_millis(50),
            seed: 7,
            ..Faults::default()
        });
        let got = round_trip(&relay, 100, Duration::from_millis(400)).await;
        assert_eq!(got.len(), 100);
        assert!(
            got.windows(2).any(|w| w[0] > w[1]),
            "jitter reorders: {got:?}"
        );

        relay.set(Faults::default());
        relay.blackhole(Duration::from_secs(30));
        assert!(
            round_trip(&relay, 10, Duration::from_millis(200))
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_network_switch_changes_the_source_the_server_sees() {
        let (server, seen) = echo().await;
        let relay = Relay::start(server, Faults::default())
            .await
            .expect("relay");
        assert_eq!(
            round_trip(&relay, 1, Duration::from_millis(200)).await,
            vec![0]
        );
        let new = relay.switch_network().await.expect("switch");
        assert_eq!(
            round_trip(&relay, 1, Duration::from_millis(200)).await,
            vec![0]
        );
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 2);
        assert_ne!(seen[0].0, seen[1].0);
        assert_eq!(seen[1].0, new);
        assert_eq!(relay.stats().switches, 1);
    }
}
