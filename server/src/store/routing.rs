//! Routing rules (隐患直报): the published versions, and which rule and party a hazard would go
//! to. The rules themselves and their matching are `crate::routing`; a report is routed when it
//! is ingested, and its reminders are sent by `HazardStore::remind_due`.

use async_trait::async_trait;
use patrolsync_proto::hazard::HazardCategory;

use super::{RouteCheck, StoreError};
use crate::routing::{Published, RuleSet};

/// What the routing commands need of storage.
#[async_trait]
pub trait RoutingStore: Send + Sync {
    /// Publishes `set` as the next version, unless it equals the version in force (then nothing
    /// changes). Every rule's cell must exist and not be retired (its path is filled in), and
    /// every user a rule names must exist with the role `property_company` or `community`.
    /// Returns the version now in force and whether it is new. With `dry_run` it checks and
    /// compares the same way and changes nothing (the version returned is the one it would be).
    async fn publish_routing(
        &self,
        set: &RuleSet,
        dry_run: bool,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError>;

    /// Every published version, oldest first.
    async fn routing_versions(&self) -> Result<Vec<Published>, StoreError>;

    /// Which rule, under the version in force, routes a hazard of `category` reported in
    /// `cell` (at `checkpoint`), and who gets it in any case.
    async fn route_check(
        &self,
        cell: &str,
        category: HazardCategory,
        checkpoint: Option<&str>,
    ) -> Result<RouteCheck, StoreError>;
}
