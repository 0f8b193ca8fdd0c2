//! The background sync engine an app runs while in the foreground: it syncs (push, then pull)
//! when the server sends Notify, when the app records something or calls
//! [`SyncEngine::sync_now`], and otherwise on a slow timer; after a failure it backs off
//! exponentially with jitter. A subscriber sees every start, finish and failure.

use std::sync::Arc;
use std::time::Duration;

use patrolsync_proto::{frame, wire};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::events::SyncEvent;
use crate::{Client, ErrorCode, SyncError};

/// How the engine paces itself.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Sync at least this often even without a trigger (a safety net; Notify does the work).
    pub interval: Duration,
    /// First delay after a failed sync; doubles per failure.
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// Keep a connection open to receive Notify from the server.
    pub listen: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            interval: Duration::from_secs(300),
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            listen: true,
        }
    }
}

/// A running engine. Dropping it leaves the tasks running until [`SyncEngine::stop`].
#[derive(Debug)]
pub struct SyncEngine {
    trigger: Arc<Notify>,
    events: broadcast::Sender<SyncEvent>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SyncEngine {
    /// Sync as soon as possible.
    pub fn sync_now(&self) {
        self.trigger.notify_one();
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// Stops the engine and waits for its tasks.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn jitter(d: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    // ±25 %, so a fleet that failed together does not retry together.
    let f = 0.75 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 0.5;
    d.mul_f64(f)
}

impl Client {
    /// Starts the background engine. It syncs once at once.
    pub fn start_engine(&self, options: EngineOptions) -> SyncEngine {
        let trigger = self.inner.trigger.clone();
        let events = self.inner.events.clone();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(run(
            self.clone(),
            options.clone(),
            events.clone(),
            stop_rx.clone(),
        ))];
        if options.listen {
            tasks.push(tokio::spawn(listen(
                self.clone(),
                options,
                events.clone(),
                stop_rx,
            )));
        }
        trigger.notify_one();
        SyncEngine {
            trigger,
            events,
            stop,
            tasks,
        }
    }
}

async fn run(
    client: Client,
    options: EngineOptions,
    events: broadcast::Sender<SyncEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let trigger = client.inner.trigger.clone();
    let mut failures = 0u32;
    let mut wait = options.interval;
    loop {
        tokio::select! {
            _ = trigger.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            // Only an explicit stop ends the engine; a dropped handle leaves it running.
            Ok(()) = stop.changed() => return,
        }
        let _ = events.send(SyncEvent::Started);
        match client.sync().await {
            Ok(summary) => {
                failures = 0;
                wait = options.interval;
                for id in &summary.hazards_changed {
                    let _ = events.send(SyncEvent::HazardChanged { id: id.clone() });
                }
                for c in &summary.new_conflicts {
                    let _ = events.send(SyncEvent::Conflict(c.clone()));
                }
                for n in &summary.scope_changes {
                    let _ = events.send(SyncEvent::ScopeChanged(n.clone()));
                }
                let _ = events.send(SyncEvent::Finished(summary));
            }
            Err(e @ (SyncError::Revoked | SyncError::NotRecognised(_))) => {
                let _ = events.send(SyncEvent::Stopped {
                    reason: e.to_string(),
                    code: e.code(),
                });
                return;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let retry_in = e.is_retryable().then(|| {
                    jitter(
                        options
                            .initial_backoff
                            .saturating_mul(2u32.saturating_pow(failures - 1))
                            .min(options.max_backoff),
                    )
                });
                wait = retry_in.unwrap_or(options.interval);
                let _ = events.send(SyncEvent::Failed {
                    error: e.to_string(),
                    code: e.code(),
                    retry_in,
                });
            }
        }
    }
}

/// Holds a connection open and turns the server's Notify into a sync.
async fn listen(
    client: Client,
    options: EngineOptions,
    events: broadcast::Sender<SyncEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = options.initial_backoff;
    loop {
        let conn = match client.identity().await {
            Ok(id) => client
                .inner
                .endpoints
                .connect(&id.server, id.config, client.inner.config.connect_timeout)
                .await
                .ok(),
            Err(_) => None,
        };
        if let Some(conn) = conn {
            let connected = std::time::Instant::now();
            loop {
                tokio::select! {
                    uni = conn.accept_uni() => match uni {
                        Ok(mut recv) => {
                            let Ok(bytes) = recv.read_to_end(64 * 1024).await else { continue };
                            let mut decoder = frame::FrameDecoder::new(64 * 1024);
                            let Some(body) = decoder.push(&bytes).ok().and_then(|mut f| f.pop()) else { continue };
                            match frame::decode::<wire::ServerEvent>(&body).map(|e| e.kind) {
                                Ok(Some(wire::server_event::Kind::Notify(n))) => {
                                    backoff = options.initial_backoff;
                                    let _ = events.send(SyncEvent::Notified { cursor: n.cursor });
                                    client.inner.trigger.notify_one();
                                }
                                Ok(Some(wire::server_event::Kind::GoAway(_))) => break,
                                _ => {}
                            }
                        }
                        Err(quinn::ConnectionError::ApplicationClosed(c))
                            if c.error_code == quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_REVOKED) =>
                        {
                            // Stored first, so an app reading the status on the event sees why.
                            client.note_revoked().await;
                            let _ = events.send(SyncEvent::Stopped { reason: SyncError::Revoked.to_string(), code: ErrorCode::Revoked });
                            return;
                        }
                        Err(quinn::ConnectionError::ApplicationClosed(c))
                            if c.error_code == quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_UNAUTHENTICATED) =>
                        {
                            let _ = events.send(SyncEvent::Stopped { reason: "the server does not recognise this device; re-enroll".into(), code: ErrorCode::NotRecognised });
                            return;
                        }
                        Err(_) => break,
                    },
                    Ok(()) = stop.changed() => {
                        conn.close(quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_DONE), b"engine stopped");
                        return;
                    }
                }
            }
            // A connection that held up for a while was a working session: start backing off
            // afresh. One closed at once (refused, going away) keeps backing off.
            if connected.elapsed() > std::time::Duration::from_secs(30) {
                backoff = options.initial_backoff;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(jitter(backoff)) => {}
            Ok(()) = stop.changed() => return,
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}
