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
    if req.protocol < PULL_PROTOCOL
        && let Err(e) = withhold_unfoldable(store, device, req.protocol, &mut changes).await
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

/// For an app of an older pull protocol, leaves out what it cannot fold; the cursor still moves
/// past it, so such an app never holds half of anything.
///
/// - Below 3: every entry of the information reports, and every `ACKNOWLEDGE` event (their
///   category and that event kind are unknown to it; on a hazard an acknowledgement is a
///   conflict that changes nothing).
/// - Below 4: every entry of the hazards a routing rule sent to a party (whose steps, by roles
///   and with an event kind it does not know, it could not fold), their reminders, and the
///   grants that routed them.
async fn withhold_unfoldable(
    store: &dyn Store,
    device: &DeviceSession,
    protocol: u32,
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
        Some(Entity::HazardReminder(e)) => HazardId::from_slice(&e.hazard_id),
        Some(Entity::Scope(s)) => HazardId::from_slice(&s.hazard_id),
        _ => None,
    };
    let mut ids: Vec<HazardId> = changes.iter().filter_map(hazard_of).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort();
    ids.dedup();
    let withheld: std::collections::HashSet<HazardId> = store
        .hazard_refs(&ids, device.role, device.id)
        .await?
        .into_iter()
        .filter(|h| {
            (protocol < 3
                && h.category
                    .parse::<HazardCategory>()
                    .is_ok_and(HazardCategory::is_information))
                || (protocol < 4 && h.routed_to.is_some())
        })
        .map(|h| h.id)
        .collect();
    let acknowledge = wire::HazardEventKind::Acknowledge as i32;
    let unknown_kind = |c: &wire::Change| match &c.entity {
        Some(Entity::HazardEvent(e)) => protocol < 3 && e.kind == acknowledge,
        Some(Entity::HazardReminder(_)) => protocol < 4,
        _ => false,
    };
    changes.retain(|c| !unknown_kind(c) && hazard_of(c).is_none_or(|h| !withheld.contains(&h)));
    Ok(())
}
