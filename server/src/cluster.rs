//! Several nodes on one PostgreSQL: a change committed through one node wakes the devices
//! connected to every other node. Each node publishes `{node, origin, cursor, paths, audiences}` on the
//! `patrolsync_changes` channel (PostgreSQL NOTIFY) after a commit and LISTENs for the others'.
//! Best effort, as Notify is: a wake-up lost while a listener reconnects is caught by the
//! device's own timer, and pull is the source of truth.

use std::sync::Arc;
use std::time::Duration;

use patrolsync_proto::DeviceId;
use serde::{Deserialize, Serialize};

/// The NOTIFY channel.
pub const CHANNEL: &str = "patrolsync_changes";

/// PostgreSQL's NOTIFY payload limit is 8000 bytes; above this the paths are left out and every
/// connected device is woken.
const MAX_PAYLOAD: usize = 7000;
const _: () = assert!(MAX_PAYLOAD < 8000);

/// A change, as it travels between nodes.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Change {
    /// The publishing node (it has woken its own devices already).
    node: String,
    /// The device that pushed (not woken).
    origin: String,
    /// The change-log position after the commit.
    cursor: u64,
    /// The grid paths that changed; `None` means "too many to list, wake everyone".
    paths: Option<Vec<String>>,
    /// Scope feeds (`user:ID`, `agency:NAME`) granted or revoked something.
    #[serde(default)]
    audiences: Vec<String>,
}

/// This node's link to the others.
#[derive(Debug)]
pub struct Cluster {
    node: String,
    pool: sqlx::PgPool,
    url: String,
}

impl Cluster {
    /// A link over the PostgreSQL at `url` (connections are made when first needed).
    pub fn new(url: &str) -> Result<Cluster, sqlx::Error> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(url)?;
        Ok(Cluster {
            node: uuid::Uuid::now_v7().to_string(),
            pool,
            url: url.to_owned(),
        })
    }

    /// Tells the other nodes about a commit; returns at once.
    pub fn publish(&self, origin: DeviceId, paths: &[String], audiences: &[String], cursor: u64) {
        let mut change = Change {
            node: self.node.clone(),
            origin: origin.to_string(),
            cursor,
            paths: Some(paths.to_vec()),
            audiences: audiences.to_vec(),
        };
        let mut payload = serde_json::to_string(&change).unwrap_or_default();
        if payload.len() > MAX_PAYLOAD {
            change.paths = None;
            change.audiences = Vec::new();
            payload = serde_json::to_string(&change).unwrap_or_default();
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "could not tell the other nodes about a change");
            }
        });
    }

    /// Listens for the other nodes' changes and calls `wake(origin, paths, audiences, cursor)`
    /// for each (`paths` is `None` for "everyone"). Runs until aborted; reconnects after
    /// failures.
    pub async fn listen<F>(self: Arc<Self>, wake: F)
    where
        F: Fn(Option<DeviceId>, Option<&[String]>, &[String], u64) + Send + Sync,
    {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect(&self.url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "cluster listener cannot LISTEN; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tracing::info!(node = %self.node, "listening for changes from other nodes");
            loop {
                match listener.recv().await {
                    Ok(n) => match serde_json::from_str::<Change>(n.payload()) {
                        Ok(c) if c.node != self.node => wake(
                            c.origin.parse().ok(),
                            c.paths.as_deref(),
                            &c.audiences,
                            c.cursor,
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed change"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster listener lost; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
