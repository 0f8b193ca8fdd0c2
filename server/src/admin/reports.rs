//! Reports, ledgers, the audit log and the admin accounts over HTTP. Reports and ledgers are
//! limited to the asking admin's subtree (default: its root cell); a ledger export is an admin
//! action and goes into the audit log.
// A refusal is the HTTP response to send, built once per refused request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Admin, AdminState, json_error, json_text, store_error};
use crate::report::{self, Calendar, Ledger, Period};
use crate::store::admins::AdminRole;

/// `?period=&cell=&as_of=&by=&format=` of the report routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// `2026-11`, `2026-Q4`, `2026-11-23` or `2026-11-23..2026-11-29`.
    period: Option<String>,
    /// Root of the subtree (default: the admin's, or the whole grid).
    cell: Option<String>,
    /// The moment the report stands at (default: now); see `admin report --as-of`.
    as_of: Option<String>,
    /// Evaluation: `cell` or `person`.
    by: Option<String>,
    /// Exports: `csv` (default) or `xlsx`.
    format: Option<String>,
    /// Exports: the form's language, `zh-CN` (the official form, default) or `en`.
    lang: Option<String>,
    /// Exports: one key unit's ledger (its cell is the subtree; `cell` is then not asked).
    unit: Option<String>,
}

type Rejected = axum::extract::rejection::QueryRejection;

/// What every report request needs: the calendar, the period, the cell and the moment.
struct Asked {
    cal: Calendar,
    period: Period,
    cell: Option<String>,
    as_of: i64,
}

async fn asked(s: &AdminState, admin: &Admin, q: &ReportQuery) -> Result<Asked, Response> {
    let bad = |t: &patrolsync_i18n::Text| json_text(StatusCode::BAD_REQUEST, t);
    let cal = s
        .reports
        .calendar()
        .map_err(|m| json_error(StatusCode::INTERNAL_SERVER_ERROR, m))?;
    let period: Period = q
        .period
        .as_deref()
        .ok_or_else(|| bad(&patrolsync_i18n::text!("admin-period-required")))?
        .parse()
        .map_err(|e| bad(&e))?;
    let cell = admin.cell(s, q.cell.as_deref()).await?;
    let now = crate::clock::now_ms();
    let as_of = match q.as_of.as_deref() {
        None => now,
        Some(t) => {
            let ms = cal.moment(t).map_err(|e| bad(&e))?;
            if ms > now {
                return Err(bad(&patrolsync_i18n::text!(
                    "admin-as-of-future",
                    value = t
                )));
            }
            ms
        }
    };
    Ok(Asked {
        cal,
        period,
        cell,
        as_of,
    })
}

/// `GET /api/reports/compliance`.
pub async fn compliance(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<ReportQuery>, Rejected>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let a = match asked(&s, &admin, &q).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rules = s.reports.anomaly_rules();
    match report::compliance(
        s.db.as_ref(),
        &a.cal,
        &rules,
        &a.period,
        a.cell.as_deref(),
        a.as_of,
    )
    .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/reports/visits`: must-visit households (六必访).
pub async fn visits(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<ReportQuery>, Rejected>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let a = match asked(&s, &admin, &q).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cadence = |g| {
        s.reports
            .visit_cadence(g)
            .unwrap_or(crate::calendar::Cadence::Monthly)
    };
    match report::visit_compliance(
        s.db.as_ref(),
        &a.cal,
        &cadence,
        &a.period,
        a.cell.as_deref(),
        a.as_of,
    )
    .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/reports/tasks?period=&cell=&as_of=`: task response per street (the period
/// defaults to this month in the reports' time zone).
pub async fn tasks(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<ReportQuery>, Rejected>,
) -> Response {
    let Query(mut q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if q.period.is_none()
        && let Ok(cal) = s.reports.calendar()
    {
        q.period = Some(cal.date(crate::clock::now_ms()).format("%Y-%m").to_string());
    }
    let a = match asked(&s, &admin, &q).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match report::task_report(s.db.as_ref(), &a.cal, &a.period, a.cell.as_deref(), a.as_of).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/reports/evaluation`.
pub async fn evaluation(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<ReportQuery>, Rejected>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let by_person = match q.by.as_deref() {
        None | Some("cell") => false,
        Some("person") => true,
        Some(other) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("by={other:?}: cell or person"),
            );
        }
    };
    let a = match asked(&s, &admin, &q).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rules = s.reports.anomaly_rules();
    match report::evaluation(
        s.db.as_ref(),
        &a.cal,
        &rules,
        &a.period,
        a.cell.as_deref(),
        by_person,
        a.as_of,
    )
    .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/exports/{ledger}`: the ledger as CSV or XLSX; the export is audited.
pub async fn export(
    State(s): State<AdminState>,
    admin: Admin,
    Path(ledger): Path<String>,
    q: Result<Query<ReportQuery>, Rejected>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(which) = [
        Ledger::Inspections,
        Ledger::Patrols,
        Ledger::HazardDisposal,
        Ledger::HazardTransfer,
        Ledger::Visits,
        Ledger::HelpCalls,
    ]
    .into_iter()
    .find(|l| l.name() == ledger) else {
        return json_error(
            StatusCode::NOT_FOUND,
            format!(
                "no ledger {ledger:?}: inspections, patrols, hazard-disposal, hazard-transfer, visits or help-calls"
            ),
        );
    };
    let format = q.format.clone().unwrap_or_else(|| "csv".into());
    if format != "csv" && format != "xlsx" {
        return json_error(
            StatusCode::BAD_REQUEST,
            format!("format={format:?}: csv or xlsx"),
        );
    }
    let target = format!(
        "ledger {} {} of {}",
        which.name(),
        q.period.as_deref().unwrap_or("?"),
        match &q.unit {
            Some(u) => format!("unit {u}"),
            None => q.cell.clone().unwrap_or_else(|| "(all)".into()),
        }
    );
    let unit = match q.unit.as_deref() {
        None => None,
        Some(code) => match s.db.unit_file(code, 0).await {
            Ok(Some(f)) => Some(f.unit),
            Ok(None) => {
                admin.audit(&s, "export", target, "refused").await;
                return json_text(
                    StatusCode::NOT_FOUND,
                    &patrolsync_i18n::text!("store-no-unit", unit = code),
                );
            }
            Err(e) => return store_error(e),
        },
    };
    let mut q = q;
    if let Some(u) = &unit {
        q.cell = Some(u.cell.clone());
    }
    let a = match asked(&s, &admin, &q).await {
        Ok(a) => a,
        Err(r) => {
            admin.audit(&s, "export", target, "refused").await;
            return r;
        }
    };
    let rules = s.reports.anomaly_rules();
    let lang = patrolsync_i18n::Lang::from_tag(q.lang.as_deref().unwrap_or_default());
    let table = match report::ledger(
        s.db.as_ref(),
        &a.cal,
        &rules,
        report::LedgerQuery {
            ledger: which,
            period: &a.period,
            cell: a.cell.as_deref(),
            unit: unit.as_ref(),
            as_of_ms: a.as_of,
            lang,
        },
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            admin
                .audit(&s, "export", target, &format!("error: {e}"))
                .await;
            return store_error(e);
        }
    };
    let (body, content_type) = if format == "xlsx" {
        match table.xlsx_bytes() {
            Ok(b) => (
                b,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    } else {
        let mut out = Vec::new();
        if let Err(e) = table.write_csv(&mut out, true) {
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
        (out, "text/csv; charset=utf-8")
    };
    admin
        .audit(
            &s,
            "export",
            target,
            &format!("ok: {} rows", table.rows.len()),
        )
        .await;
    let file = format!("{}-{}.{format}", which.name(), a.period.label);
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `?since=&actor=&limit=` of the audit log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries from this moment on (as `--as-of` takes it).
    since: Option<String>,
    /// One actor's entries.
    actor: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/audit`: entries, and whether the whole chain verifies.
pub async fn audit(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = admin
        .require(AdminRole::Owner, "audit_log")
        .and_then(|()| admin.require_whole_grid("audit_log"))
    {
        return r;
    }
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(t) => match s.reports.calendar().and_then(|c| c.moment(t)) {
            Ok(ms) => Some(ms),
            Err(m) => return json_text(StatusCode::BAD_REQUEST, &m),
        },
    };
    let entries = match s
        .db
        .audit_log(since, q.actor.as_deref(), q.limit.unwrap_or(500).min(5000))
        .await
    {
        Ok(e) => e,
        Err(e) => return store_error(e),
    };
    let (count, broken_at) = match s.db.verify_audit().await {
        Ok(v) => v,
        Err(e) => return store_error(e),
    };
    Json(serde_json::json!({
        "entries": entries,
        "count": count,
        "chain_verified": broken_at.is_none(),
        "broken_at": broken_at,
    }))
    .into_response()
}

/// `GET /api/admins`.
pub async fn admins(State(s): State<AdminState>, admin: Admin) -> Response {
    if let Err(r) = admin
        .require(AdminRole::Owner, "admins")
        .and_then(|()| admin.require_whole_grid("admins"))
    {
        return r;
    }
    match s.db.admins().await {
        Ok(a) => Json(a).into_response(),
        Err(e) => store_error(e),
    }
}
