//! Who is asking: the bearer token names an admin (the data dir's admin.token is the bootstrap
//! owner), with a role and optionally a subtree. Handlers ask for the role an action needs and
//! filter what they show to the admin's subtree.
// A refusal is the HTTP response to send, built once per refused request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::Response;

use patrolsync_i18n::text;

use super::{AdminState, json_error, json_text};
use crate::store::admins::{AdminRole, AuditRecord};

/// The name the bootstrap token acts under in the audit log.
pub const BOOTSTRAP: &str = "bootstrap";

/// An admin's subtree: the cell and its path.
#[derive(Clone, Debug)]
pub struct Subtree {
    /// The root cell's code.
    pub cell: String,
    /// Its path, `/S1/`.
    pub path: String,
}

/// A request that carried a working admin token.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The admin's name (`bootstrap` for admin.token).
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
    /// Where it may look and act (`None`: everywhere).
    pub subtree: Option<Subtree>,
    /// The client's address, for the audit log.
    pub source: String,
}

impl FromRequestParts<AdminState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AdminState) -> Result<Self, Response> {
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = given else {
            return Err(json_text(
                StatusCode::UNAUTHORIZED,
                &text!("admin-token-missing"),
            ));
        };
        // Compared digest to digest, so timing reveals nothing of a token.
        let digest = patrolsync_proto::digest::sha256(token.as_bytes());
        if digest == s.token_sha256 {
            return Ok(Admin {
                name: BOOTSTRAP.into(),
                role: AdminRole::Owner,
                subtree: None,
                source,
            });
        }
        let account = s
            .db
            .admin_by_token(&digest)
            .await
            .map_err(|e| json_error(StatusCode::SERVICE_UNAVAILABLE, e))?
            .ok_or_else(|| json_text(StatusCode::UNAUTHORIZED, &text!("admin-token-unknown")))?;
        let now = crate::clock::now_ms();
        if let Some(at) = account.revoked_at_ms {
            return Err(json_text(
                StatusCode::UNAUTHORIZED,
                &text!(
                    "admin-token-revoked",
                    admin = account.name,
                    at = crate::calendar::time_text(at)
                ),
            ));
        }
        if let Some(at) = account.expires_at_ms.filter(|at| *at <= now) {
            return Err(json_text(
                StatusCode::UNAUTHORIZED,
                &text!(
                    "admin-token-expired",
                    admin = account.name,
                    at = crate::calendar::time_text(at)
                ),
            ));
        }
        let subtree = match &account.cell {
            None => None,
            Some(cell) => Some(Subtree {
                cell: cell.clone(),
                path: s
                    .db
                    .cell_path(cell)
                    .await
                    .map_err(|e| json_error(StatusCode::SERVICE_UNAVAILABLE, e))?,
            }),
        };
        Ok(Admin {
            name: account.name,
            role: account.role,
            subtree,
            source,
        })
    }
}

impl Admin {
    /// Refuses unless the admin's role is at least `needed`; `what` is the action's code
    /// (`revoke_device`, `audit_log`, `admins`), worded by the catalog.
    pub fn require(&self, needed: AdminRole, what: &str) -> Result<(), Response> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(json_text(
                StatusCode::FORBIDDEN,
                &text!(
                    "admin-needs-role",
                    admin = self.name,
                    role = self.role.as_str(),
                    needed = needed.as_str(),
                    what = what
                ),
            ))
        }
    }

    /// Refuses an admin limited to a subtree (node-wide figures are not of one district); `what`
    /// is the figures' code (`store_counts`, `node_series`, `audit_log`, `admins`).
    pub fn require_whole_grid(&self, what: &str) -> Result<(), Response> {
        match &self.subtree {
            None => Ok(()),
            Some(t) => Err(json_text(
                StatusCode::FORBIDDEN,
                &text!(
                    "admin-whole-server",
                    admin = self.name,
                    cell = t.cell,
                    what = what
                ),
            )),
        }
    }

    /// The devices the admin may see (`None`: all).
    pub async fn devices(&self, s: &AdminState) -> Result<Option<HashSet<String>>, Response> {
        match &self.subtree {
            None => Ok(None),
            Some(t) => {
                s.db.devices_under(&t.path)
                    .await
                    .map(|d| Some(d.into_iter().collect()))
                    .map_err(|e| json_error(StatusCode::SERVICE_UNAVAILABLE, e))
            }
        }
    }

    /// The cell a request about `asked` (default: the admin's root, or everything) may cover;
    /// refused when it lies outside the admin's subtree.
    pub async fn cell(
        &self,
        s: &AdminState,
        asked: Option<&str>,
    ) -> Result<Option<String>, Response> {
        let Some(t) = &self.subtree else {
            return Ok(asked.map(str::to_owned));
        };
        let Some(asked) = asked else {
            return Ok(Some(t.cell.clone()));
        };
        let path = s.db.cell_path(asked).await.map_err(super::store_error)?;
        if patrolsync_proto::grid::covers(&t.path, &path) {
            Ok(Some(asked.to_owned()))
        } else {
            Err(json_text(
                StatusCode::FORBIDDEN,
                &text!(
                    "admin-outside",
                    admin = self.name,
                    cell = t.cell,
                    asked = asked
                ),
            ))
        }
    }

    /// Appends what the admin did to the audit log (a failure to write it is logged; the
    /// action itself has happened).
    pub async fn audit(&self, s: &AdminState, action: &str, target: String, outcome: &str) {
        let record = AuditRecord {
            actor: self.name.clone(),
            source: self.source.clone(),
            action: action.into(),
            target,
            outcome: outcome.into(),
        };
        if let Err(e) = s.db.audit(&record, crate::clock::now_ms()).await {
            tracing::error!(error = %e, action, "could not write the audit log");
        }
    }
}
