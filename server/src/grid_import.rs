//! Importing the grid, checkpoints and people from files (`patrolsync admin grid import`,
//! `admin checkpoints import`, `admin people import`), and what every import shares: CSV and
//! XLSX tables read into records that know their line, and errors by line and column.
//!
//! A file is read and checked whole — against itself and against what the store holds — before
//! anything is written, and then written in one transaction: a bad row is reported by its line
//! and column (for GeoJSON, by feature number and property) and nothing from that file is
//! applied. Writing is an upsert that changes only what differs, so importing the same file
//! again changes nothing and puts nothing in the change log devices pull.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use patrolsync_proto::Role;
use patrolsync_proto::geo::Datum;
use patrolsync_proto::hazard::Agency;

use patrolsync_i18n::{Lang, Text, message, text};

use crate::calendar::Cadence;
use crate::store::AdminStore;
use crate::store::{NewCell, NewCheckpoint, NewPerson, StoreError};

/// Where in a file a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A CSV line, from 1 (the header).
    Line(u64),
    /// A GeoJSON feature, from 1.
    Feature(usize),
}

impl Place {
    /// (`line` or `feature`, its number): the parameters of the catalog's place messages.
    fn parts(self) -> (&'static str, String) {
        match self {
            Place::Line(n) => ("line", n.to_string()),
            Place::Feature(n) => ("feature", n.to_string()),
        }
    }

    /// `line 7` / 第 7 行.
    pub fn text(self, lang: Lang) -> String {
        let (unit, n) = self.parts();
        message!(lang, "import-place", unit = unit, n = n)
    }
}

/// Where in the file, and what is wrong there.
#[derive(Clone, Debug, PartialEq)]
pub struct RowError {
    /// The line (CSV) or feature (GeoJSON).
    pub at: Place,
    /// The column or property.
    pub column: String,
    /// What is wrong.
    pub message: Text,
}

impl RowError {
    /// `line 7, column level: …` in `lang`.
    pub fn text(&self, lang: Lang) -> String {
        let (at, message) = (self.at.text(lang), self.message.in_lang(lang));
        if self.column.is_empty() {
            message!(lang, "import-row", at = at, message = message)
        } else {
            message!(
                lang,
                "import-row-column",
                at = at,
                column = self.column,
                message = message
            )
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(Lang::En))
    }
}

/// Why an import applied nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read or parsed at all.
    #[error("{0}")]
    File(Text),
    /// Rows are wrong; nothing was applied.
    #[error("{}", rows_text(.0, Lang::En))]
    Rows(Vec<RowError>),
    /// The store failed; nothing was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// The error in `lang`, for a person; `Display` gives it in English.
    pub fn text(&self, lang: Lang) -> String {
        match self {
            ImportError::File(t) => t.in_lang(lang),
            ImportError::Rows(rows) => rows_text(rows, lang),
            ImportError::Store(e) => e.text(lang),
        }
    }
}

fn rows_text(rows: &[RowError], lang: Lang) -> String {
    const SHOWN: usize = 20;
    let mut out = message!(lang, "import-rows", n = rows.len(), one = rows.len() == 1);
    for r in rows.iter().take(SHOWN) {
        out.push_str("\n  ");
        out.push_str(&r.text(lang));
    }
    if rows.len() > SHOWN {
        out.push_str("\n  ");
        out.push_str(&message!(lang, "import-more", n = rows.len() - SHOWN));
    }
    out
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    /// Rows (or features) read.
    pub rows: usize,
    /// Rows written because something differed (0 on a repeat import).
    pub changed: u64,
}

/// One record of a file, as column → text, with where it is.
pub(crate) struct Record {
    at: Place,
    fields: HashMap<String, String>,
    /// The header as the file wrote it, by column, where it named a column by another name (a
    /// Chinese header for a unit file): errors name the column as the file does.
    written: std::sync::Arc<HashMap<String, String>>,
}

/// Other names a file may give a column (`名称` for `name`): (as written, column).
pub(crate) type Aliases = &'static [(&'static str, &'static str)];

/// The header with each alias replaced by its column, and what the file wrote for those.
fn canonical_header(
    header: Vec<String>,
    aliases: Aliases,
) -> (Vec<String>, std::sync::Arc<HashMap<String, String>>) {
    let mut written = HashMap::new();
    let header = header
        .into_iter()
        .map(|h| match aliases.iter().find(|(alias, _)| *alias == h) {
            Some((_, column)) => {
                written.insert((*column).to_owned(), h);
                (*column).to_owned()
            }
            None => h,
        })
        .collect();
    (header, std::sync::Arc::new(written))
}

impl Record {
    /// Where the record is in its file.
    pub(crate) fn place(&self) -> Place {
        self.at
    }

    /// The text in `column` (empty when the column or the cell is).
    pub(crate) fn get(&self, column: &str) -> &str {
        self.fields.get(column).map(String::as_str).unwrap_or("")
    }

    /// `message` about `column` of this record.
    pub(crate) fn error(&self, column: &str, message: Text) -> RowError {
        RowError {
            at: self.at,
            column: self
                .written
                .get(column)
                .map_or(column, String::as_str)
                .into(),
            message,
        }
    }

    /// `value` is already on the record at `first`.
    pub(crate) fn duplicate(&self, column: &str, value: &str, first: Place) -> RowError {
        let (unit, n) = first.parts();
        self.error(
            column,
            text!("import-duplicate", value = value, unit = unit, n = n),
        )
    }
}

enum Format {
    Csv,
    Xlsx,
    GeoJson,
}

fn format_of(path: &Path) -> Result<Format, ImportError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("xlsx") => Ok(Format::Xlsx),
        Some("geojson" | "json") => Ok(Format::GeoJson),
        _ => Err(ImportError::File(text!(
            "file-format",
            file = path.display(),
            formats = ".csv, .xlsx, .geojson"
        ))),
    }
}

/// The records of a table file (CSV, or the first sheet of an XLSX workbook), its header
/// checked against `required` and `known` columns.
pub(crate) fn table_records(
    path: &Path,
    required: &[&str],
    known: &[&str],
    aliases: Aliases,
) -> Result<Vec<Record>, ImportError> {
    match format_of(path)? {
        Format::Csv => csv_records(&read_text(path)?, required, known, aliases),
        Format::Xlsx => xlsx_records(path, required, known, aliases),
        Format::GeoJson => Err(ImportError::File(text!(
            "file-format",
            file = path.display(),
            formats = ".csv, .xlsx"
        ))),
    }
}

/// The problems of a header: required columns missing, columns nobody knows.
fn header_problems(header: &[String], required: &[&str], known: &[&str]) -> Vec<RowError> {
    let mut problems = Vec::new();
    for r in required {
        if !header.iter().any(|h| h == r) {
            problems.push(RowError {
                at: Place::Line(1),
                column: (*r).into(),
                message: text!("import-no-column", column = r),
            });
        }
    }
    for (i, h) in header.iter().enumerate() {
        if !known.contains(&h.as_str()) {
            problems.push(RowError {
                at: Place::Line(1),
                column: patrolsync_i18n::printable(h),
                message: text!("import-unknown-column", known = known.join(", ")),
            });
        } else if header[..i].contains(h) {
            // Two headers for one column (编码 and 单位编码): which one holds the value?
            problems.push(RowError {
                at: Place::Line(1),
                column: h.clone(),
                message: text!("import-column-twice", column = h),
            });
        }
    }
    problems
}

/// The rows of the first sheet of an XLSX workbook, the first non-empty row its header; each
/// record's line is its row number in the sheet. Numbers read as a person typed them (a phone
/// number stored as a number has no `.0`), date cells as `YYYY-MM-DD` (with the time when it is
/// not midnight).
fn xlsx_records(
    path: &Path,
    required: &[&str],
    known: &[&str],
    aliases: Aliases,
) -> Result<Vec<Record>, ImportError> {
    use calamine::{Data, Reader, Xlsx};
    let unreadable = |e: &dyn std::fmt::Display| {
        ImportError::File(text!("import-xlsx", file = path.display(), error = e))
    };
    let mut book: Xlsx<_> = calamine::open_workbook(path).map_err(|e| unreadable(&e))?;
    let sheet = match book.worksheet_range_at(0) {
        Some(sheet) => sheet.map_err(|e| unreadable(&e))?,
        None => {
            return Err(ImportError::File(text!(
                "import-xlsx-empty",
                file = path.display()
            )));
        }
    };
    let first_line = u64::from(sheet.start().map_or(0, |(row, _)| row)) + 1;
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for (i, row) in sheet.rows().enumerate() {
        let line = first_line + i as u64;
        let mut cells = Vec::with_capacity(row.len());
        for cell in row {
            cells.push(match cell {
                Data::Empty => String::new(),
                Data::String(s) | Data::DurationIso(s) => s.trim().to_owned(),
                // An ISO date-time cell: its date when the time is midnight, as a date cell.
                Data::DateTimeIso(s) => s
                    .trim()
                    .strip_suffix("T00:00:00")
                    .unwrap_or(s.trim())
                    .to_owned(),
                Data::Int(n) => n.to_string(),
                Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
                Data::Float(f) => f.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::DateTime(d) => match d.as_datetime() {
                    Some(t) if t.time() == chrono::NaiveTime::MIN => {
                        t.format("%Y-%m-%d").to_string()
                    }
                    Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
                    None => d.as_f64().to_string(),
                },
                Data::Error(e) => {
                    problems.push(RowError {
                        at: Place::Line(line),
                        column: String::new(),
                        message: text!("import-xlsx-cell", error = e),
                    });
                    String::new()
                }
            });
        }
        rows.push((line, cells));
    }
    let rows: Vec<(u64, Vec<String>)> = rows
        .into_iter()
        .filter(|(_, cells)| cells.iter().any(|c| !c.is_empty()))
        .collect();
    // The header is the first row naming every required column; a form's title rows above it
    // (重点单位登记表, merged across the sheet) are not data. Without one, the first row is
    // taken, so its problems are named.
    let at = rows
        .iter()
        .position(|(_, cells)| {
            let (names, _) = canonical_header(cells.clone(), aliases);
            required.iter().all(|r| names.iter().any(|n| n == r))
        })
        .unwrap_or(0);
    let mut rows = rows.into_iter().skip(at);
    let Some((header_line, header)) = rows.next() else {
        return Err(ImportError::File(text!(
            "import-xlsx-empty",
            file = path.display()
        )));
    };
    // Trailing empty header cells are the sheet's width, not columns.
    let width = header
        .iter()
        .rposition(|h| !h.is_empty())
        .map_or(0, |i| i + 1);
    let (header, written) = canonical_header(header.into_iter().take(width).collect(), aliases);
    problems.extend(
        header_problems(&header, required, known)
            .into_iter()
            .map(|p| RowError {
                at: Place::Line(header_line),
                ..p
            }),
    );
    let mut records = Vec::new();
    for (line, cells) in rows {
        // A value in a column with no header: nobody knows what it is.
        if let Some(i) = cells.iter().skip(width).position(|c| !c.is_empty()) {
            problems.push(RowError {
                at: Place::Line(line),
                column: String::new(),
                message: text!("import-no-header", column = width + i + 1),
            });
        }
        records.push(Record {
            at: Place::Line(line),
            fields: header.iter().cloned().zip(cells).collect(),
            written: written.clone(),
        });
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    Ok(records)
}

fn read_text(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path)
        .map_err(|e| ImportError::File(text!("file-unreadable", file = path.display(), error = e)))
}

/// CSV rows with a header; `required` columns must be in it.
fn csv_records(
    text: &str,
    required: &[&str],
    known: &[&str],
    aliases: Aliases,
) -> Result<Vec<Record>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::File(text!("import-header", error = e)))?
        .iter()
        .map(str::to_owned)
        .collect();
    let (header, written) = canonical_header(header, aliases);
    let problems = header_problems(&header, required, known);
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            ImportError::Rows(vec![RowError {
                at: Place::Line(line),
                column: String::new(),
                message: text!("import-csv", error = e),
            }])
        })?;
        let line = row.position().map_or(0, |p| p.line());
        if row.iter().all(str::is_empty) {
            continue;
        }
        out.push(Record {
            at: Place::Line(line),
            fields: header
                .iter()
                .cloned()
                .zip(row.iter().map(str::to_owned))
                .collect(),
            written: written.clone(),
        });
    }
    Ok(out)
}

/// GeoJSON features: properties as text, and the geometry.
fn geojson_records(text: &str) -> Result<Vec<(Record, Option<geojson::Geometry>)>, ImportError> {
    let parsed: geojson::GeoJson = text
        .parse()
        .map_err(|e: geojson::Error| ImportError::File(text!("import-not-geojson", error = e)))?;
    let geojson::GeoJson::FeatureCollection(fc) = parsed else {
        return Err(ImportError::File(text!("import-not-collection")));
    };
    Ok(fc
        .features
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let fields = f
                .properties
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.trim().to_owned(),
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::Array(items) => items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(";"),
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect();
            (
                Record {
                    at: Place::Feature(i + 1),
                    fields,
                    written: Default::default(),
                },
                f.geometry,
            )
        })
        .collect())
}

pub(crate) fn check_code(r: &Record, column: &str, problems: &mut Vec<RowError>) -> String {
    let code = r.get(column).to_owned();
    if code.is_empty() {
        problems.push(r.error(column, text!("import-empty")));
    } else if code.len() > 64
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problems.push(r.error(column, text!("import-bad-code", value = code)));
    }
    code
}

/// A boundary as GeoJSON geometry text in WGS-84: from WKT, or from GeoJSON geometry text, its
/// vertices given in `crs`.
fn boundary_text(text: &str, crs: Datum) -> Result<String, Text> {
    let mut geometry = if text.trim_start().starts_with('{') {
        text.parse::<geojson::Geometry>()
            .map_err(|e| text!("import-not-geometry", error = e))?
    } else {
        let g = geo_types_from_wkt(text)?;
        geojson::Geometry::new(geojson::Value::from(&g))
    };
    polygonal(&geometry)?;
    let vertex = |p: &mut Vec<f64>| {
        if let [lon, lat, ..] = p.as_mut_slice() {
            (*lat, *lon) = crs.to_wgs84(*lat, *lon);
        }
    };
    match &mut geometry.value {
        geojson::Value::Polygon(rings) => rings.iter_mut().flatten().for_each(vertex),
        geojson::Value::MultiPolygon(polygons) => {
            polygons.iter_mut().flatten().flatten().for_each(vertex)
        }
        _ => {}
    }
    Ok(geometry.to_string())
}

fn geo_types_from_wkt(text: &str) -> Result<geo_types::Geometry<f64>, Text> {
    use wkt::TryFromWkt;
    geo_types::Geometry::<f64>::try_from_wkt_str(text)
        .map_err(|e| text!("import-not-wkt", error = e))
}

fn polygonal(g: &geojson::Geometry) -> Result<(), Text> {
    match g.value {
        geojson::Value::Polygon(_) | geojson::Value::MultiPolygon(_) => Ok(()),
        _ => Err(text!("import-not-polygon")),
    }
}

/// Reads and checks a cells file, then writes it (new cells created at `now_ms`). See the
/// module docs.
pub async fn import_cells(
    store: &dyn AdminStore,
    path: &Path,
    crs: Datum,
    check_only: bool,
    now_ms: i64,
) -> Result<Imported, ImportError> {
    let records: Vec<(Record, Option<String>)> = match format_of(path)? {
        Format::Csv | Format::Xlsx => table_records(
            path,
            &["code", "level", "name"],
            &["code", "parent", "level", "name", "boundary"],
            &[],
        )?
        .into_iter()
        .map(|r| {
            let b = r.get("boundary").to_owned();
            (r, Some(b).filter(|b| !b.is_empty()))
        })
        .collect(),
        Format::GeoJson => geojson_records(&read_text(path)?)?
            .into_iter()
            .map(|(r, g)| (r, g.map(|g| g.to_string())))
            .collect(),
    };
    let existing: HashMap<String, (u8, String, bool)> = store
        .report_cells(None, i64::MAX)
        .await?
        .into_iter()
        .map(|c| {
            let parent = c.path.parent_code().to_owned();
            (c.code, (c.level, parent, c.retired_at_ms.is_some()))
        })
        .collect();
    let mut problems = Vec::new();
    let mut cells = Vec::new();
    let mut seen: HashMap<String, Place> = HashMap::new();
    for (r, boundary) in &records {
        let code = check_code(r, "code", &mut problems);
        let parent = r.get("parent").to_owned();
        let level = match r.get("level").parse::<u32>() {
            Ok(l) if (1..=4).contains(&l) => l,
            _ => {
                problems.push(r.error("level", text!("import-bad-level", value = r.get("level"))));
                0
            }
        };
        if r.get("name").is_empty() {
            problems.push(r.error("name", text!("import-empty")));
        }
        if let Some(first) = seen.insert(code.clone(), r.at) {
            problems.push(r.duplicate("code", &code, first));
        }
        let boundary = match boundary.as_deref().map(|b| boundary_text(b, crs)) {
            Some(Err(e)) => {
                problems.push(r.error("boundary", e));
                None
            }
            Some(Ok(b)) => Some(b),
            None => None,
        };
        if let Some((_, old_parent, _)) = existing.get(&code)
            && *old_parent != parent
        {
            problems.push(r.error(
                "parent",
                text!("import-cell-moved", cell = code, parent = old_parent),
            ));
        }
        cells.push((
            r,
            NewCell {
                code,
                parent: Some(parent).filter(|p| !p.is_empty()),
                level,
                name: r.get("name").to_owned(),
                boundary,
            },
        ));
    }
    // Parents: in the file or the store, one level up, not retired.
    let levels: HashMap<&str, u32> = cells
        .iter()
        .map(|(_, c)| (c.code.as_str(), c.level))
        .collect();
    for (r, c) in &cells {
        match &c.parent {
            None if c.level != 1 && c.level != 0 => {
                problems.push(r.error("parent", text!("import-needs-parent", level = c.level)))
            }
            None => {}
            Some(p) => {
                let parent_level = match (levels.get(p.as_str()), existing.get(p)) {
                    (Some(l), _) => Some(*l),
                    (None, Some((_, _, true))) => {
                        problems.push(r.error("parent", text!("import-retired", value = p)));
                        continue;
                    }
                    (None, Some((l, _, false))) => Some(u32::from(*l)),
                    (None, None) => None,
                };
                match parent_level {
                    None => {
                        problems.push(r.error("parent", text!("import-unknown-parent", parent = p)))
                    }
                    Some(l) if c.level != 0 && l + 1 != c.level => problems.push(r.error(
                        "level",
                        text!(
                            "import-wrong-level",
                            level = c.level,
                            parent = p,
                            parent_level = l,
                            expected = l + 1
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let rows = cells.len();
    let cells: Vec<NewCell> = cells.into_iter().map(|(_, c)| c).collect();
    let changed = if check_only {
        0
    } else {
        store.upsert_grid(&cells, &[], now_ms).await?
    };
    Ok(Imported { rows, changed })
}

/// Reads and checks a checkpoints file, then writes it (new checkpoints created at `now_ms`).
/// See the module docs.
pub async fn import_checkpoints(
    store: &dyn AdminStore,
    path: &Path,
    crs: Datum,
    check_only: bool,
    now_ms: i64,
) -> Result<Imported, ImportError> {
    let known = [
        "code",
        "cell",
        "name",
        "tag_uid",
        "latitude",
        "longitude",
        "radius_m",
        "cadence",
    ];
    let records: Vec<(Record, Option<(f64, f64)>)> = match format_of(path)? {
        Format::Csv | Format::Xlsx => table_records(path, &["code", "cell", "name"], &known, &[])?
            .into_iter()
            .map(|r| (r, None))
            .collect(),
        Format::GeoJson => {
            let mut out = Vec::new();
            for (r, g) in geojson_records(&read_text(path)?)? {
                let at = match g.map(|g| g.value) {
                    Some(geojson::Value::Point(p)) if p.len() >= 2 => Some((p[1], p[0])),
                    Some(_) => {
                        return Err(ImportError::Rows(vec![
                            r.error("geometry", text!("import-not-point")),
                        ]));
                    }
                    None => None,
                };
                out.push((r, at));
            }
            out
        }
    };
    let cells: HashMap<String, bool> = store
        .report_cells(None, i64::MAX)
        .await?
        .into_iter()
        .map(|c| (c.code, c.retired_at_ms.is_some()))
        .collect();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, Place> = HashMap::new();
    let mut checkpoints = Vec::new();
    for (r, point) in &records {
        let code = check_code(r, "code", &mut problems);
        if let Some(first) = seen.insert(code.clone(), r.at) {
            problems.push(r.duplicate("code", &code, first));
        }
        let cell = r.get("cell").to_owned();
        match cells.get(&cell) {
            None => problems.push(r.error("cell", text!("import-cell-unknown", cell = cell))),
            Some(true) => problems.push(r.error("cell", text!("import-retired", value = cell))),
            Some(false) => {}
        }
        if r.get("name").is_empty() {
            problems.push(r.error("name", text!("import-empty")));
        }
        let number =
            |column: &str, range: std::ops::RangeInclusive<f64>, problems: &mut Vec<RowError>| {
                let t = r.get(column);
                if t.is_empty() {
                    return None;
                }
                match t.parse::<f64>() {
                    Ok(v) if range.contains(&v) => Some(v),
                    _ => {
                        problems.push(r.error(
                            column,
                            text!(
                                "import-number-range",
                                value = t,
                                min = range.start(),
                                max = range.end()
                            ),
                        ));
                        None
                    }
                }
            };
        let position = match point {
            Some((lat, lon)) if (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon) => {
                Some((*lat, *lon))
            }
            Some(_) => {
                problems.push(r.error("geometry", text!("import-coordinates-range")));
                None
            }
            None => {
                let lat = number("latitude", -90.0..=90.0, &mut problems);
                let lon = number("longitude", -180.0..=180.0, &mut problems);
                match (lat, lon) {
                    (Some(a), Some(b)) => Some((a, b)),
                    (None, None) => None,
                    _ if r.get("latitude").is_empty() != r.get("longitude").is_empty() => {
                        problems.push(r.error("longitude", text!("import-both-coordinates")));
                        None
                    }
                    _ => None,
                }
            }
        };
        let radius_m = number("radius_m", 1.0..=10_000.0, &mut problems).unwrap_or(30.0);
        let cadence = Some(r.get("cadence").to_owned()).filter(|c| !c.is_empty());
        if let Some(c) = cadence.as_deref()
            && c.parse::<Cadence>().is_err()
        {
            problems.push(r.error("cadence", unknown_code(c, Cadence::NAMES)));
        }
        checkpoints.push(NewCheckpoint {
            code,
            cell,
            name: r.get("name").to_owned(),
            tag_uid: Some(r.get("tag_uid").to_owned()).filter(|t| !t.is_empty()),
            // Stored in WGS-84, whatever the file's coordinates were in.
            position: position.map(|(lat, lon)| crs.to_wgs84(lat, lon)),
            radius_m,
            cadence,
        });
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let rows = checkpoints.len();
    let changed = if check_only {
        0
    } else {
        store.upsert_grid(&[], &checkpoints, now_ms).await?
    };
    Ok(Imported { rows, changed })
}

/// Reads and checks a people file (`name,role,agency,cells`; cells separated by `;`), then
/// writes it: each person's assignments become exactly the cells listed.
pub async fn import_people(
    store: &dyn AdminStore,
    path: &Path,
    check_only: bool,
    now_ms: i64,
) -> Result<Imported, ImportError> {
    let records = match format_of(path)? {
        Format::Csv | Format::Xlsx => table_records(
            path,
            &["name", "role"],
            &["name", "role", "agency", "cells"],
            &[],
        )?,
        Format::GeoJson => {
            return Err(ImportError::File(text!("import-people-csv")));
        }
    };
    let all: Vec<String> = records
        .iter()
        .flat_map(|r| split_cells(r.get("cells")))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let live: HashSet<String> = store
        .cells(&all)
        .await?
        .into_iter()
        .filter(|c| !c.retired)
        .map(|c| c.code)
        .collect();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, Place> = HashMap::new();
    let mut people = Vec::new();
    for r in &records {
        let name = r.get("name").to_owned();
        if name.is_empty() || name.len() > 128 {
            problems.push(r.error("name", text!("import-name-length")));
        }
        if let Some(first) = seen.insert(name.clone(), r.at) {
            problems.push(r.duplicate("name", &name, first));
        }
        let role = r.get("role").parse::<Role>().unwrap_or_else(|_| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            problems.push(r.error("role", unknown_code(r.get("role"), &known)));
            Role::Patroller
        });
        let agency = Some(r.get("agency").to_owned()).filter(|a| !a.is_empty());
        match (&agency, role) {
            (Some(a), Role::Agency) => {
                if a.parse::<Agency>().is_err() {
                    let known: Vec<&str> = Agency::ALL.iter().map(|a| a.as_str()).collect();
                    problems.push(r.error("agency", unknown_code(a, &known)));
                }
            }
            (None, Role::Agency) => problems.push(r.error("agency", text!("import-agency-needed"))),
            (Some(_), _) => problems.push(r.error("agency", text!("import-agency-only"))),
            (None, _) => {}
        }
        let cells = split_cells(r.get("cells"));
        if role.is_party() && !cells.is_empty() {
            problems.push(r.error("cells", text!("store-party-no-cells", role = role)));
        }
        for c in &cells {
            if !live.contains(c) {
                problems.push(r.error("cells", text!("import-not-live", cell = c)));
            }
        }
        people.push(NewPerson {
            name,
            role,
            agency,
            cells,
        });
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let rows = people.len();
    let changed = if check_only {
        0
    } else {
        store.import_people(&people, now_ms).await?
    };
    Ok(Imported { rows, changed })
}

/// `value` is none of the codes `known`.
pub(crate) fn unknown_code(value: &str, known: &[&str]) -> Text {
    text!(
        "import-unknown-code",
        value = value,
        known = known.join(", ")
    )
}

/// `S1-C1; S1-C2` or `S1-C1 S1-C2` → codes.
pub fn split_cells(text: &str) -> Vec<String> {
    text.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_from_wkt_and_geojson_and_only_polygons() {
        let wkt = boundary_text(
            "POLYGON((126.6 45.7, 126.7 45.7, 126.7 45.8, 126.6 45.7))",
            Datum::Wgs84,
        )
        .expect("wkt polygon");
        assert!(wkt.contains("\"Polygon\""), "{wkt}");
        let json = boundary_text(&wkt, Datum::Wgs84).expect("geojson polygon");
        assert_eq!(json, wkt);
        let point = boundary_text("POINT(1 2)", Datum::Wgs84).expect_err("point");
        assert_eq!(point.id(), "import-not-polygon");
        assert_eq!(
            point.to_string(),
            "a boundary must be a Polygon or MultiPolygon"
        );
        let bad = boundary_text("POLYGON((oops", Datum::Wgs84).expect_err("bad");
        assert_eq!(bad.id(), "import-not-wkt");
        assert!(bad.in_lang(Lang::ZhCn).starts_with("不是 WKT："), "{bad}");
    }

    #[test]
    fn csv_header_problems_name_the_column() {
        let Err(ImportError::Rows(rows)) = csv_records(
            "code,nmae\nA,B\n",
            &["code", "name"],
            &["code", "name"],
            &[],
        ) else {
            panic!("expected row errors");
        };
        let text: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "line 1, column name: the header has no `name` column",
                "line 1, column nmae: unknown column (known: code, name)"
            ]
        );
        let zh: Vec<String> = rows.iter().map(|r| r.text(Lang::ZhCn)).collect();
        assert_eq!(
            zh,
            [
                "第 1 行，name 列：表头缺少 `name` 列",
                "第 1 行，nmae 列：未知的列（可用的列：code, name）"
            ]
        );
    }
}
