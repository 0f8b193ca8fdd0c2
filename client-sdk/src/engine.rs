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

/// The longest the engine waits between syncs while the user is on duty: well inside the
/// server's default `dispatch.duty_ttl` (30 min), after which a silent device is on duty no more.
pub const ON_DUTY_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// How the engine paces itself.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Sync at least this often even without a trigger (a safety net; Notify does the work).
    /// While the user is on duty the engine syncs at least every [`ON_DUTY_INTERVAL`] whatever
    /// this says, so the server keeps them on duty (and their position fresh).
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

/// A running engine. Dropping it stops the engine (without waiting; [`SyncEngine::stop`] waits).
#[derive(Debug)]
pub struct SyncEngine {
    client: Client,
    trigger: Arc<Notify>,
    events: broadcast::Sender<SyncEvent>,
    stop: watch::Sender<bool>,
    paused: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
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

    /// The app went to the background: no more syncs (a sync already running finishes) and the
    /// idle connection that listens for Notify is closed, until [`SyncEngine::resume`]. Records
    /// keep going to the local outbox. For work in a background window, see
    /// [`Client::sync_for`].
    pub fn pause(&self) {
        let _ = self.paused.send(true);
    }

    /// The app is in the foreground again: sync now and listen for Notify.
    pub fn resume(&self) {
        let _ = self.paused.send(false);
        self.trigger.notify_one();
    }

    /// Whether the engine is paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// The phone moved to another network: whether it is metered (cellular) decides whether
    /// photos go now (see `ClientConfig::photos_only_unmetered`); sync at once, since a new
    /// network often means the old connection is gone.
    pub fn network_changed(&self, metered: bool) {
        self.client.set_network_metered(metered);
        self.trigger.notify_one();
    }

    /// Stops the engine and waits until its tasks have ended: a sync in flight is abandoned
    /// (what the server acknowledged stays acknowledged, the rest is sent next time).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
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
        let (paused, paused_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(run(
            self.clone(),
            options.clone(),
            events.clone(),
            stop_rx.clone(),
            paused_rx.clone(),
        ))];
        if options.listen {
            tasks.push(tokio::spawn(listen(
                self.clone(),
                options,
                events.clone(),
                stop_rx,
                paused_rx,
            )));
        }
        trigger.notify_one();
        SyncEngine {
            client: self.clone(),
            trigger,
            events,
            stop,
            paused,
            tasks,
        }
    }
}

async fn run(
    client: Client,
    options: EngineOptions,
    events: broadcast::Sender<SyncEvent>,
    mut stop: watch::Receiver<bool>,
    mut paused: watch::Receiver<bool>,
) {
    let trigger = client.inner.trigger.clone();
    let mut failures = 0u32;
    let mut wait = options.interval;
    loop {
        tokio::select! {
            _ = trigger.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // Paused (the app is in the background): wait for resume, which also triggers a sync.
        if *paused.borrow_and_update() {
            tokio::select! {
                _ = paused.wait_for(|p| !*p) => continue,
                _ = stop.changed() => return,
            }
        }
        // The sync tells subscribers it started, what changed and that it finished; the
        // engine adds when it retries a failure, and stops for good on a revocation.
        // A stop abandons a sync in flight (sync is cancel-safe: what the server acknowledged
        // stays acknowledged, the rest goes next time).
        let result = tokio::select! {
            result = client.sync_own(true) => result,
            _ = stop.changed() => return,
        };
        let handovers = crate::sync::handovers_follow(&result);
        match result {
            Ok(_) => {
                failures = 0;
                let on_duty = client.duty().await.is_ok_and(|d| d.on_duty);
                wait = if on_duty {
                    options.interval.min(ON_DUTY_INTERVAL)
                } else {
                    options.interval
                };
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
        // Then what volunteers who signed out left here (after this sync's own events).
        if handovers {
            tokio::select! {
                _ = client.send_handovers(true) => {}
                _ = stop.changed() => return,
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
    mut paused: watch::Receiver<bool>,
) {
    let mut backoff = options.initial_backoff;
    loop {
        // The idle connection is held only while the app is in the foreground; back in the
        // foreground, it is opened at once.
        if *paused.borrow_and_update() {
            tokio::select! {
                _ = paused.wait_for(|p| !*p) => backoff = options.initial_backoff,
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        let conn = match client.identity().await {
            Ok(id) => client
                .inner
                .endpoints
                .connect(
                    &id.server,
                    id.listen_config,
                    client.inner.config.connect_timeout,
                )
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
                            client.note_revoked(&SyncError::Revoked).await;
                            let _ = events.send(SyncEvent::Stopped { reason: SyncError::Revoked.to_string(), code: ErrorCode::Revoked });
                            return;
                        }
                        Err(quinn::ConnectionError::ApplicationClosed(c))
                            if c.error_code == quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_UNAUTHENTICATED) =>
                        {
                            let why = SyncError::NotRecognised("closed by the server".into());
                            client.note_revoked(&why).await;
                            let _ = events.send(SyncEvent::Stopped { reason: why.to_string(), code: ErrorCode::NotRecognised });
                            return;
                        }
                        Err(_) => break,
                    },
                    _ = stop.changed() => {
                        conn.close(quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_DONE), b"engine stopped");
                        return;
                    }
                    Ok(()) = paused.changed() => {
                        if *paused.borrow() {
                            conn.close(quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_DONE), b"app in background");
                            break;
                        }
                    }
                }
            }
            // A connection that held up for a while was a working session: start backing off
            // afresh. One closed at once (refused, going away) keeps backing off.
            if connected.elapsed() > std::time::Duration::from_secs(30) {
                backoff = options.initial_backoff;
            }
        }
        // Paused meanwhile (or the connection closed for the pause): no back-off, wait above.
        if *paused.borrow_and_update() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(jitter(backoff)) => {}
            _ = stop.changed() => return,
            // Paused during the back-off: go and wait for the foreground.
            Ok(()) = paused.changed() => continue,
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    #[tokio::test]
    async fn the_engine_stops_when_its_handle_is_dropped() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), ClientConfig::default()).await?;
        let engine = client.start_engine(EngineOptions::default());
        // The engine's two tasks (sync and listen) and the handle hold the client.
        assert_eq!(Arc::strong_count(&client.inner), 4);
        drop(engine);
        // The tasks end on their own; the bound only keeps a broken build from hanging.
        for _ in 0..1000 {
            if Arc::strong_count(&client.inner) == 1 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the engine's tasks still hold the client: {}",
            Arc::strong_count(&client.inner)
        );
    }

    #[tokio::test]
    async fn a_paused_engine_does_not_sync_until_resumed() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), ClientConfig::default()).await?;
        let engine = client.start_engine(EngineOptions {
            listen: false,
            ..EngineOptions::default()
        });
        let mut events = engine.subscribe();
        // Not enrolled: the first sync fails, and says why.
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await?? {
            SyncEvent::Started => {}
            other => panic!("{other:?}"),
        }
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await?? {
            SyncEvent::Failed { code, .. } => assert_eq!(code, ErrorCode::NotEnrolled),
            other => panic!("{other:?}"),
        }
        engine.pause();
        assert!(engine.is_paused());
        engine.sync_now();
        client.inner.trigger.notify_one();
        // Nothing starts while paused. (Waiting for an event that must not come: the wait is
        // the test's own bound, not a timing claim about the engine.)
        assert!(
            tokio::time::timeout(Duration::from_millis(300), events.recv())
                .await
                .is_err(),
            "a paused engine synced"
        );
        engine.resume();
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await?? {
            SyncEvent::Started => {}
            other => panic!("{other:?}"),
        }
        Ok(())
    }
}
