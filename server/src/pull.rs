//! The Pull RPC: a page of the device's feed (see `store::sql::scope` for feeds, grants and
//! backfills), its entries decoded into wire changes.

use patrolsync_proto::ChangeKind;
use patrolsync_proto::wire;

use crate::metrics::Metrics;
use crate::store::{DeviceSession, Store};

pub(crate) const MAX_PULL: u32 = 1000;

pub(crate) async fn pull(
    store: &dyn Store,
    metrics: &Metrics,
    device: &DeviceSession,
    req: wire::PullRequest,
) -> wire::Response {
    use patrolsync_proto::scope::{PULL_PROTOCOL, PULL_PROTOCOL_MIN};
    if req.protocol < PULL_PROTOCOL_MIN {
        return wire::Response::error(
            wire::ErrorCode::Unsupported,
            format!(
                "this server sends scope feeds (pull protocol {PULL_PROTOCOL_MIN} to \
                 {PULL_PROTOCOL}) and the app speaks pull protocol {}: update the app. What it \
                 records is still accepted and stored.",
                req.protocol
            ),
            false,
        );
    }
    let scope = device.pull_scope();
    // A cursor is a position in one feed. If the user's feed changed (a new role or agency),
    // or the device kept no feed (it last pulled before feeds), it starts over from nothing.
    if req.cursor > 0 && req.feed != scope.audience {
        tracing::info!(device = %device.id, from = %req.feed, to = %scope.audience, "scope feed changed; the device starts over");
        return wire::Response {
            kind: Some(wire::response::Kind::Pull(wire::PullResponse {
                changes: Vec::new(),
                next_cursor: 0,
                has_more: true,
                backfill_after: 0,
                feed: scope.audience,
                reset: true,
            })),
        };
    }
    let limit = if req.limit == 0 {
        500
    } else {
        req.limit.min(MAX_PULL)
    };
    let started = std::time::Instant::now();
    let page = store
        .pull(&scope, req.cursor, req.backfill_after, limit, req.compact)
        .await;
    metrics.store_call("pull", started.elapsed());
    let page = match page {
        Ok(p) => p,
        Err(e) => {
            return wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("pull failed, retry: {e}"),
                true,
            );
        }
    };
    let mut changes = Vec::with_capacity(page.changes.len());
    for c in page.changes {
        let entity = match ChangeKind::parse(&c.kind)
            .ok_or_else(|| format!("unknown change kind {:?}", c.kind))
            .and_then(|k| k.decode(&c.payload).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(seq = c.seq, kind = %c.kind, error = %e, "unreadable change-log entry");
                return wire::Response::error(
                    wire::ErrorCode::Unavailable,
                    format!("change {} is unreadable", c.seq),
                    false,
                );
            }
        };
        changes.push(wire::Change {
            seq: c.seq,
            hlc: Some(c.hlc.into()),
            device_id: c.device,
            role: c
                .role
                .parse::<patrolsync_proto::Role>()
                .map(|r| r.wire())
                .unwrap_or(0),
            entity: Some(entity),
        });
    }
    if req.protocol < 3
        && let Err(e) = drop_information_reports(store, device, &mut changes).await
    {
        return wire::Response::error(
            wire::ErrorCode::Unavailable,
            format!("pull failed, retry: {e}"),
            true,
        );
    }
    wire::Response {
        kind: Some(wire::response::Kind::Pull(wire::PullResponse {
            changes,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
            backfill_after: page.backfill_after,
            feed: scope.audience,
            reset: false,
        })),
    }
}

/// For an app of pull protocol 2, which cannot fold them: leaves out every entry of the
/// information reports, and every `ACKNOWLEDGE` event (their category and that event kind are
/// unknown to it; on a hazard an acknowledgement is a conflict that changes nothing). The cursor
/// still moves past them, so such an app never holds one.
async fn drop_information_reports(
    store: &dyn Store,
    device: &DeviceSession,
    changes: &mut Vec<wire::Change>,
) -> Result<(), crate::store::StoreError> {
    use patrolsync_proto::HazardId;
    use patrolsync_proto::hazard::HazardCategory;
    use wire::change::Entity;
    let hazard_of = |c: &wire::Change| match &c.entity {
        Some(Entity::HazardReport(r)) => HazardId::from_slice(&r.id),
        Some(Entity::HazardEvent(e)) => HazardId::from_slice(&e.hazard_id),
        Some(Entity::HazardFieldEdit(e)) => HazardId::from_slice(&e.hazard_id),
        Some(Entity::HazardEscalation(e)) => HazardId::from_slice(&e.hazard_id),
        _ => None,
    };
    let mut ids: Vec<HazardId> = changes.iter().filter_map(hazard_of).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort();
    ids.dedup();
    let information: std::collections::HashSet<HazardId> = store
        .hazard_refs(&ids, device.role, device.id)
        .await?
        .into_iter()
        .filter(|h| {
            h.category
                .parse::<HazardCategory>()
                .is_ok_and(HazardCategory::is_information)
        })
        .map(|h| h.id)
        .collect();
    let acknowledge = wire::HazardEventKind::Acknowledge as i32;
    changes.retain(|c| {
        !matches!(&c.entity, Some(Entity::HazardEvent(e)) if e.kind == acknowledge)
            && hazard_of(c).is_none_or(|h| !information.contains(&h))
    });
    Ok(())
}
