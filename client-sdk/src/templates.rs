//! Checklist templates on the device, every version as pulled from the server (a check-in is
//! checked against the version it names; see `checkins.rs`).

use patrolsync_proto::template::Template;
use patrolsync_proto::wire;
use prost::Message;

use crate::error::read_failed;
use crate::{Client, ReadError};

fn decode(payload: &[u8]) -> Result<Template, ReadError> {
    let w = wire::ChecklistTemplate::decode(payload).map_err(read_failed)?;
    Template::from_wire(w).map_err(|e| read_failed(e.message))
}

impl Client {
    /// The latest version of every checklist template the server has published.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn templates(&self) -> Result<Vec<Template>, ReadError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT payload FROM templates t WHERE version = \
             (SELECT MAX(version) FROM templates WHERE id = t.id) ORDER BY id",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        rows.iter().map(|p| decode(p)).collect()
    }

    /// Template `id` at `version` (the latest when `None`), if this device has it.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn template(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<Template>, ReadError> {
        let payload: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT payload FROM templates WHERE id = ? AND (? = 0 OR version = ?) \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .bind(i64::from(version.unwrap_or(0)))
        .bind(i64::from(version.unwrap_or(0)))
        .fetch_optional(&self.inner.db)
        .await
        .map_err(read_failed)?;
        payload.as_deref().map(decode).transpose()
    }
}
