//! Importing the registers (`patrolsync admin units import FILE`, `admin households import
//! FILE`), from CSV or the first sheet of an XLSX workbook, whole or not at all like the grid
//! (see `grid_import`).
//!
//! Households: `code`, `cell`, `address`, `group` (hardship, elderly_alone, disabled, migrant,
//! unemployed, assisted, or 困难群众, 独居老人 …), `contact_name`, `contact_phone`; headed in
//! Chinese as 编码, 网格, 地址, 人群类别, 联系人, 联系电话.
//!
//! Units: `code`, `cell`, `kind`, `name`, `address`, `responsible_person`,
//! `responsible_phone`, `risk`, `self_check_date`, `checkpoints` (codes separated by `;`, `,`
//! or spaces), `responsible_user` (the responsible person's account, for routing rules that
//! send the unit's hazards to it); a file may head them in Chinese as the register's forms do
//! (编码, 网格, 类型, 名称, 地址, 责任人, 联系电话, 风险等级, 四个能力自评日期, 检查点,
//! 责任人账号), and give kinds and risk levels by their Chinese names (出租房屋, 高 …) as well
//! as their codes.

use std::collections::HashMap;
use std::path::Path;

use patrolsync_i18n::{Lang, text};
use patrolsync_proto::household::HouseholdGroup;
use patrolsync_proto::unit::{RiskLevel, UnitKind};

use crate::grid_import::{
    Aliases, ImportError, Imported, Place, Record, RowError, check_code, split_cells,
    table_records, unknown_code,
};
use crate::store::AdminStore;
use crate::store::registry::{NewHousehold, NewUnit};

/// The columns of a unit file.
pub const COLUMNS: [&str; 11] = [
    "code",
    "cell",
    "kind",
    "name",
    "address",
    "responsible_person",
    "responsible_phone",
    "risk",
    "self_check_date",
    "checkpoints",
    "responsible_user",
];

/// Chinese headers, as the register's forms write them.
const ALIASES: Aliases = &[
    ("编码", "code"),
    ("单位编码", "code"),
    ("网格", "cell"),
    ("所属网格", "cell"),
    ("类型", "kind"),
    ("单位类型", "kind"),
    ("名称", "name"),
    ("单位名称", "name"),
    ("地址", "address"),
    ("责任人", "responsible_person"),
    ("消防安全责任人", "responsible_person"),
    ("联系电话", "responsible_phone"),
    ("电话", "responsible_phone"),
    ("风险等级", "risk"),
    ("四个能力自评日期", "self_check_date"),
    ("检查点", "checkpoints"),
    ("责任人账号", "responsible_user"),
];

/// The longest text a unit's name, address or person may have, in characters.
const TEXT_MAX: usize = 200;

/// A kind by its code or its name in either language (`出租房屋`, `rental housing`).
fn kind_named(value: &str) -> Option<UnitKind> {
    // The plans name small venues both ways (六小 and 九小 场所).
    if value == "六小场所" {
        return Some(UnitKind::SmallVenue);
    }
    UnitKind::ALL.iter().copied().find(|k| {
        let id = format!("unit-kind-{}", k.as_str());
        value == k.as_str() || value == Lang::ZhCn.text(&id) || value == Lang::En.text(&id)
    })
}

/// A risk level by its code or its name in either language (`高`, `high`).
fn risk_named(value: &str) -> Option<RiskLevel> {
    RiskLevel::ALL.iter().copied().find(|r| {
        let id = format!("unit-risk-{}", r.as_str());
        value == r.as_str() || value == Lang::ZhCn.text(&id) || value == Lang::En.text(&id)
    })
}

/// Reads and checks a unit file against itself and the store (cells live, checkpoints there,
/// no unit moving to another cell), then writes it in one transaction: each unit's fields and
/// checkpoints become exactly the file's. Nothing is written if any row is wrong.
pub async fn import_units(
    store: &dyn AdminStore,
    path: &Path,
    check_only: bool,
    now_ms: i64,
) -> Result<Imported, ImportError> {
    let records = table_records(
        path,
        &["code", "cell", "kind", "name", "responsible_person"],
        &COLUMNS,
        ALIASES,
    )?;
    let cells = live_cells(store).await?;
    let checkpoints: HashMap<String, String> = store
        .report_checkpoints(None, i64::MAX)
        .await?
        .into_iter()
        .map(|c| (c.code, c.path.to_string()))
        .collect();
    let held: HashMap<String, String> = store
        .units(None)
        .await?
        .into_iter()
        .map(|u| (u.code, u.cell))
        .collect();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, Place> = HashMap::new();
    let mut units = Vec::with_capacity(records.len());
    for r in &records {
        if let Some(unit) = check_row(r, &cells, &checkpoints, &held, &mut seen, &mut problems) {
            units.push(unit);
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let rows = units.len();
    let changed = if check_only {
        0
    } else {
        store.upsert_units(&units, now_ms).await?
    };
    Ok(Imported { rows, changed })
}

/// One row checked; its problems pushed onto `problems`.
fn check_row(
    r: &Record,
    cells: &HashMap<String, (String, bool)>,
    checkpoints: &HashMap<String, String>,
    held: &HashMap<String, String>,
    seen: &mut HashMap<String, Place>,
    problems: &mut Vec<RowError>,
) -> Option<NewUnit> {
    let before = problems.len();
    let code = check_code(r, "code", problems);
    if let Some(first) = seen.insert(code.clone(), r.place()) {
        problems.push(r.duplicate("code", &code, first));
    }
    let cell = r.get("cell").to_owned();
    let cell_path = check_cell(r, cells, problems);
    if let Some(old) = held.get(&code).filter(|old| **old != cell) {
        problems.push(r.error(
            "cell",
            text!("store-unit-moved", unit = code, old = old, new = cell),
        ));
    }
    let kind = kind_named(r.get("kind")).unwrap_or_else(|| {
        let known: Vec<&str> = UnitKind::ALL.iter().map(|k| k.as_str()).collect();
        problems.push(r.error("kind", unknown_code(r.get("kind"), &known)));
        UnitKind::Other
    });
    let risk = match r.get("risk") {
        // A unit nobody has graded yet is of medium risk until someone does.
        "" => RiskLevel::Medium,
        value => risk_named(value).unwrap_or_else(|| {
            let known: Vec<&str> = RiskLevel::ALL.iter().map(|k| k.as_str()).collect();
            problems.push(r.error("risk", unknown_code(value, &known)));
            RiskLevel::Medium
        }),
    };
    for column in ["name", "responsible_person"] {
        if r.get(column).is_empty() {
            problems.push(r.error(column, text!("import-empty")));
        }
    }
    for column in ["name", "address", "responsible_person", "responsible_user"] {
        if r.get(column).chars().count() > TEXT_MAX {
            problems.push(r.error(column, text!("import-too-long", max = TEXT_MAX)));
        }
    }
    let phone = r.get("responsible_phone");
    if !phone.is_empty() && !valid_phone(phone) {
        problems.push(r.error(
            "responsible_phone",
            text!("import-bad-phone", value = phone),
        ));
    }
    let self_check_date = match r.get("self_check_date") {
        "" => None,
        value => match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
            Ok(d) => Some(d.format("%Y-%m-%d").to_string()),
            Err(_) => {
                problems.push(r.error("self_check_date", text!("import-bad-date", value = value)));
                None
            }
        },
    };
    let codes = split_cells(r.get("checkpoints"));
    for c in &codes {
        match (checkpoints.get(c), cell_path) {
            (None, _) => problems.push(r.error(
                "checkpoints",
                text!("import-checkpoint-unknown", checkpoint = c),
            )),
            (Some(cp_path), Some(path)) => {
                if !patrolsync_proto::grid::covers(path, cp_path) {
                    problems.push(r.error(
                        "checkpoints",
                        text!(
                            "store-unit-checkpoint-outside",
                            unit = code,
                            checkpoint = c,
                            cell = cell
                        ),
                    ));
                }
            }
            (Some(_), None) => {}
        }
    }
    (problems.len() == before).then(|| NewUnit {
        code,
        cell,
        kind,
        name: r.get("name").to_owned(),
        address: r.get("address").to_owned(),
        responsible_person: r.get("responsible_person").to_owned(),
        responsible_phone: phone.to_owned(),
        risk,
        self_check_date,
        checkpoints: codes,
        responsible_user: Some(r.get("responsible_user"))
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
    })
}

/// The columns of a household file.
pub const HOUSEHOLD_COLUMNS: [&str; 6] = [
    "code",
    "cell",
    "address",
    "group",
    "contact_name",
    "contact_phone",
];

/// Chinese headers of a household file.
const HOUSEHOLD_ALIASES: Aliases = &[
    ("编码", "code"),
    ("户编码", "code"),
    ("网格", "cell"),
    ("所属网格", "cell"),
    ("地址", "address"),
    ("住址", "address"),
    ("人群类别", "group"),
    ("类别", "group"),
    ("联系人", "contact_name"),
    ("联系电话", "contact_phone"),
    ("电话", "contact_phone"),
];

/// A group by its code or its name in either language (`独居老人`, `elderly living alone`).
fn group_named(value: &str) -> Option<HouseholdGroup> {
    HouseholdGroup::ALL.iter().copied().find(|g| {
        let id = format!("household-group-{}", g.as_str());
        value == g.as_str() || value == Lang::ZhCn.text(&id) || value == Lang::En.text(&id)
    })
}

/// The group's name in `lang` (`独居老人`).
pub fn group_text(group: &str, lang: Lang) -> String {
    lang.text(&format!("household-group-{group}"))
}

/// Reads and checks a household file against itself and the store (cells live, no household
/// moving to another cell), then writes it in one transaction. Nothing is written if any row is
/// wrong.
pub async fn import_households(
    store: &dyn AdminStore,
    path: &Path,
    check_only: bool,
    now_ms: i64,
) -> Result<Imported, ImportError> {
    let records = table_records(
        path,
        &["code", "cell", "address", "group"],
        &HOUSEHOLD_COLUMNS,
        HOUSEHOLD_ALIASES,
    )?;
    let cells = live_cells(store).await?;
    let held: HashMap<String, String> = store
        .households(None, i64::MAX)
        .await?
        .into_iter()
        .map(|h| (h.code, h.cell))
        .collect();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, Place> = HashMap::new();
    let mut households = Vec::with_capacity(records.len());
    for r in &records {
        let before = problems.len();
        let code = check_code(r, "code", &mut problems);
        if let Some(first) = seen.insert(code.clone(), r.place()) {
            problems.push(r.duplicate("code", &code, first));
        }
        let cell = r.get("cell").to_owned();
        check_cell(r, &cells, &mut problems);
        if let Some(old) = held.get(&code).filter(|old| **old != cell) {
            problems.push(r.error(
                "cell",
                text!(
                    "store-household-moved",
                    household = code,
                    old = old,
                    new = cell
                ),
            ));
        }
        let group = group_named(r.get("group")).unwrap_or_else(|| {
            let known: Vec<&str> = HouseholdGroup::ALL.iter().map(|g| g.as_str()).collect();
            problems.push(r.error("group", unknown_code(r.get("group"), &known)));
            HouseholdGroup::Assisted
        });
        if r.get("address").is_empty() {
            problems.push(r.error("address", text!("import-empty")));
        }
        for column in ["address", "contact_name"] {
            if r.get(column).chars().count() > TEXT_MAX {
                problems.push(r.error(column, text!("import-too-long", max = TEXT_MAX)));
            }
        }
        let phone = r.get("contact_phone");
        if !phone.is_empty() && !valid_phone(phone) {
            problems.push(r.error("contact_phone", text!("import-bad-phone", value = phone)));
        }
        if problems.len() == before {
            households.push(NewHousehold {
                code,
                cell,
                address: r.get("address").to_owned(),
                group,
                contact_name: r.get("contact_name").to_owned(),
                contact_phone: phone.to_owned(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let rows = households.len();
    let changed = if check_only {
        0
    } else {
        store.upsert_households(&households, now_ms).await?
    };
    Ok(Imported { rows, changed })
}

/// Every cell by code: its path, and whether it is retired.
async fn live_cells(
    store: &dyn AdminStore,
) -> Result<HashMap<String, (String, bool)>, ImportError> {
    Ok(store
        .report_cells(None, i64::MAX)
        .await?
        .into_iter()
        .map(|c| (c.code, (c.path.to_string(), c.retired_at_ms.is_some())))
        .collect())
}

/// The path of the row's cell, when it exists and is not retired; else the problem is pushed.
fn check_cell<'a>(
    r: &Record,
    cells: &'a HashMap<String, (String, bool)>,
    problems: &mut Vec<RowError>,
) -> Option<&'a str> {
    let cell = r.get("cell");
    match cells.get(cell) {
        None => {
            problems.push(r.error("cell", text!("import-cell-unknown", cell = cell)));
            None
        }
        Some((_, true)) => {
            problems.push(r.error("cell", text!("import-retired", value = cell)));
            None
        }
        Some((path, false)) => Some(path.as_str()),
    }
}

/// A phone number as people write them: digits, with `+`, `-`, spaces and parentheses, 3 to
/// 20 digits in all.
fn valid_phone(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    (3..=20).contains(&digits)
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'))
}

/// The kind's name in `lang` (`出租房屋`).
pub fn kind_text(kind: &str, lang: Lang) -> String {
    lang.text(&format!("unit-kind-{kind}"))
}

/// The risk level's name in `lang` (`高`).
pub fn risk_text(risk: &str, lang: Lang) -> String {
    lang.text(&format!("unit-risk-{risk}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_risks_read_by_code_and_by_name_in_either_language() {
        assert_eq!(kind_named("drug_handling"), Some(UnitKind::DrugHandling));
        assert_eq!(kind_named("涉药单位"), Some(UnitKind::DrugHandling));
        assert_eq!(kind_named("出租房屋"), Some(UnitKind::RentalHousing));
        assert_eq!(kind_named("rental housing"), Some(UnitKind::RentalHousing));
        assert_eq!(kind_named("网吧"), None);
        assert_eq!(risk_named("高"), Some(RiskLevel::High));
        assert_eq!(risk_named("low"), Some(RiskLevel::Low));
        assert_eq!(risk_named("severe"), None);
        // Every kind and level has a name in both catalogs (no id shown as itself).
        for k in UnitKind::ALL {
            for lang in [Lang::ZhCn, Lang::En] {
                assert_ne!(
                    kind_text(k.as_str(), lang),
                    format!("unit-kind-{}", k.as_str())
                );
            }
        }
        assert_eq!(group_named("独居老人"), Some(HouseholdGroup::ElderlyAlone));
        assert_eq!(group_named("migrant"), Some(HouseholdGroup::Migrant));
        assert_eq!(group_named("老人"), None);
        for g in HouseholdGroup::ALL {
            for lang in [Lang::ZhCn, Lang::En] {
                assert_ne!(
                    group_text(g.as_str(), lang),
                    format!("household-group-{}", g.as_str())
                );
            }
        }
        for r in RiskLevel::ALL {
            for lang in [Lang::ZhCn, Lang::En] {
                assert_ne!(
                    risk_text(r.as_str(), lang),
                    format!("unit-risk-{}", r.as_str())
                );
            }
        }
    }

    #[test]
    fn a_column_headed_twice_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("units.csv");
        std::fs::write(
            &path,
            "编码,单位编码,网格,类型,名称,责任人\nU-1,U-2,S1,school,小学,李\n",
        )
        .expect("file");
        let Err(ImportError::Rows(rows)) = table_records(
            &path,
            &["code", "cell", "kind", "name", "responsible_person"],
            &COLUMNS,
            ALIASES,
        ) else {
            panic!("expected a header problem");
        };
        let text: Vec<String> = rows.iter().map(|r| r.text(Lang::ZhCn)).collect();
        assert_eq!(
            text,
            [
                "第 1 行，code 列：code 列出现了两次（例如同时有「编码」和「单位编码」），无法确定用哪一列"
            ]
        );
    }

    #[test]
    fn phones_as_people_write_them() {
        for ok in [
            "13800000000",
            "+86 138-0000-0000",
            "(0451) 8888 6666",
            "119",
        ] {
            assert!(valid_phone(ok), "{ok}");
        }
        for bad in ["12", "call me", "138000000001380000000", "138\u{0}0000"] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }
}
