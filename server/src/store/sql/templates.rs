//! Checklist templates: published versions, never changed.

use super::*;

fn decode_template(bytes: &[u8]) -> Result<patrolsync_proto::template::Template, StoreError> {
    patrolsync_proto::template::Template::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored template: {}", e.message)))
}

#[async_trait]
impl TemplateStore for SqlStore {
    async fn template(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<patrolsync_proto::template::Template>, StoreError> {
        let payload: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT payload FROM templates WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(i64::from(version))
                .fetch_optional(&self.pool)
                .await?;
        payload.as_deref().map(decode_template).transpose()
    }

    /// Publishes `t` as the next version of its template, unless it equals the latest (then
    /// nothing changes). Returns the version that now holds this content and whether it is
    /// new. A new version goes into the change log for every device.
    async fn publish_template(
        &self,
        t: &patrolsync_proto::template::Template,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(
            "SELECT version, payload FROM templates WHERE id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&t.id)
        .fetch_optional(&mut *tx)
        .await?;
        let (last, same) = match latest {
            Some(r) => {
                let version = r.try_get::<i64, _>(0)?.clamp(0, i64::from(u32::MAX)) as u32;
                let payload: Vec<u8> = r.try_get(1)?;
                let mut as_new = t.clone();
                as_new.version = version;
                (version, payload == as_new.encode())
            }
            None => (0, false),
        };
        if same {
            tx.commit().await?;
            return Ok((last, false));
        }
        let mut published = t.clone();
        published.version = last + 1;
        let payload = published.encode();
        sqlx::query(
            "INSERT INTO templates (id, version, name, payload, published_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&published.id)
        .bind(i64::from(published.version))
        .bind(&published.name)
        .bind(payload.clone())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // For everyone: pull serves `/` to every scope.
        let change = PendingChange::admin(
            "/".into(),
            ChangeKind::Template,
            format!("template:{}:{}", published.id, published.version),
            payload,
            false,
        );
        self.append_changes(&mut tx, &[change], now_ms).await?;
        tx.commit().await?;
        Ok((published.version, true))
    }

    /// Every published version of every template (or of `id`), by id then version.
    async fn templates(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<patrolsync_proto::template::Template>, StoreError> {
        let rows = sqlx::query(
            "SELECT payload FROM templates WHERE ($1 = '' OR id = $1) ORDER BY id, version",
        )
        .bind(id.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode_template(&r.try_get::<Vec<u8>, _>(0)?))
            .collect()
    }
}
