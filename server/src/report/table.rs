//! One table, rendered as a text table, CSV, XLSX or JSON.

use std::path::Path;

/// A value in a rendered table.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A number.
    Num(f64),
    /// Nothing.
    Empty,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Num(x) => write!(f, "{x:.4}"),
            Value::Empty => Ok(()),
        }
    }
}

/// A rendered report or ledger: a header, rows, and what it is (written as a second XLSX sheet).
#[derive(Clone, Debug)]
pub struct Table {
    /// Sheet name.
    pub title: String,
    /// Lines above the header in a printed form (XLSX): a title, then the grid and period.
    /// Empty for a report.
    pub heading: Vec<String>,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Value>>,
    /// Key-value lines describing the export.
    pub about: Vec<(String, String)>,
    /// The name of the sheet `about` is written on.
    pub about_title: String,
}

impl Table {
    /// As aligned text for a terminal: text left, numbers right.
    pub fn text(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| match v {
                        Value::Num(x) => format!("{:.1}%", x * 100.0),
                        Value::Empty => "-".into(),
                        v => v.to_string(),
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| display_width(c)))
                    .chain([display_width(&self.columns[i])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |values: &mut dyn Iterator<Item = (usize, &str, bool)>| {
            let mut out = String::new();
            for (i, v, left) in values {
                let pad = widths[i].saturating_sub(display_width(v));
                if i > 0 {
                    out.push_str("  ");
                }
                if left {
                    out.push_str(v);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(v);
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(
            &mut self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.as_str(), true)),
        );
        for (row, text) in self.rows.iter().zip(&cells) {
            out += &line(
                &mut text
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (i, t.as_str(), matches!(row.get(i), Some(Value::Text(_))))),
            );
        }
        out
    }

    /// The report in `lang`: in English as it is (machine column names); otherwise the
    /// title (the sheet's name), the column names and the `about` keys in words, a
    /// could-not-inspect reason's column by the outcome's word, and the `level` column's numbers
    /// as the level's name (`level_name`).
    pub fn localized(
        mut self,
        lang: patrolsync_i18n::Lang,
        level_name: &dyn Fn(u32) -> String,
    ) -> Table {
        if lang == patrolsync_i18n::Lang::En {
            return self;
        }
        let word = |prefix: &str, key: &str| lang.word(prefix, key);
        if let Some(title) = word("report", &self.title) {
            self.title = title;
        }
        self.about_title = lang.text("ledger-about");
        if let Some(level) = self.columns.iter().position(|c| c == "level") {
            for row in &mut self.rows {
                if let Some(Value::Int(n)) = row.get(level) {
                    row[level] = Value::Text(level_name(u32::try_from(*n).unwrap_or(0)));
                }
            }
        }
        for column in &mut self.columns {
            if let Some(w) = word("col", column).or_else(|| word("outcome", column)) {
                *column = w;
            }
        }
        for (key, _) in &mut self.about {
            if let Some(w) = word("about", key) {
                *key = w;
            }
        }
        self
    }

    /// Writes the header and rows as CSV, starting with the UTF-8 byte order mark when `bom`:
    /// without it Excel on Chinese Windows reads the file as GBK and shows the names garbled.
    /// (A file or a download gets it; text piped to other programs does not.)
    pub fn write_csv(&self, mut w: impl std::io::Write, bom: bool) -> Result<(), csv::Error> {
        if bom {
            w.write_all("\u{feff}".as_bytes())?;
        }
        let mut out = csv::Writer::from_writer(w);
        out.write_record(&self.columns)?;
        for row in &self.rows {
            out.write_record(row.iter().map(|v| match v {
                // A spreadsheet would run text starting like a formula (a note "=HYPERLINK(…)");
                // a leading apostrophe keeps it text.
                Value::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                    format!("'{t}")
                }
                v => v.to_string(),
            }))?;
        }
        out.flush()?;
        Ok(())
    }

    /// Writes an XLSX workbook: the rows on the first sheet, `about` on a second.
    pub fn write_xlsx(&self, path: &Path) -> Result<(), rust_xlsxwriter::XlsxError> {
        self.workbook()?.save(path)
    }

    /// The XLSX workbook's bytes (for a download).
    pub fn xlsx_bytes(&self) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
        self.workbook()?.save_to_buffer()
    }

    /// The workbook: the form on the first sheet, laid out to print on A4 (landscape, one page
    /// wide, the header row repeated on every page, columns as wide as what they hold), and
    /// `about` on a second sheet.
    fn workbook(&self) -> Result<rust_xlsxwriter::Workbook, rust_xlsxwriter::XlsxError> {
        use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook};
        /// A4, in the paper sizes of the XLSX format.
        const A4: u8 = 9;
        let mut book = Workbook::new();
        let bold = Format::new().set_bold();
        let title_format = Format::new()
            .set_bold()
            .set_font_size(16)
            .set_align(FormatAlign::Center);
        let line_format = Format::new().set_align(FormatAlign::Center);
        let header_format = Format::new()
            .set_bold()
            .set_text_wrap()
            .set_align(FormatAlign::Center)
            .set_align(FormatAlign::VerticalCenter)
            .set_border(FormatBorder::Thin);
        let cell_format = Format::new().set_border(FormatBorder::Thin);
        let sheet = book.add_worksheet();
        sheet.set_name(&self.title)?;
        let last_col = self.columns.len().saturating_sub(1) as u16;
        for (r, text) in self.heading.iter().enumerate() {
            let format = if r == 0 { &title_format } else { &line_format };
            if last_col == 0 {
                sheet.write_string_with_format(r as u32, 0, text, format)?;
            } else {
                sheet.merge_range(r as u32, 0, r as u32, last_col, text, format)?;
            }
        }
        let header_row = self.heading.len() as u32;
        for (c, name) in self.columns.iter().enumerate() {
            sheet.write_string_with_format(header_row, c as u16, name, &header_format)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = header_row + 1 + r as u32;
            for (c, v) in row.iter().enumerate() {
                let c = c as u16;
                match v {
                    Value::Text(s) => sheet.write_string_with_format(r, c, s, &cell_format)?,
                    Value::Int(i) => {
                        sheet.write_number_with_format(r, c, *i as f64, &cell_format)?
                    }
                    Value::Num(x) => sheet.write_number_with_format(r, c, *x, &cell_format)?,
                    Value::Empty => sheet.write_blank(r, c, &cell_format)?,
                };
            }
        }
        for (c, name) in self.columns.iter().enumerate() {
            let widest = self
                .rows
                .iter()
                .filter_map(|row| row.get(c))
                .map(|v| display_width(&v.to_string()))
                .chain([display_width(name)])
                .max()
                .unwrap_or(0);
            sheet.set_column_width(c as u16, (widest + 2).clamp(6, 40) as f64)?;
        }
        sheet.set_freeze_panes(header_row + 1, 0)?;
        sheet.set_paper_size(A4);
        sheet.set_landscape();
        sheet.set_print_fit_to_pages(1, 0);
        sheet.set_repeat_rows(header_row, header_row)?;
        let about = book.add_worksheet();
        about.set_name(&self.about_title)?;
        for (r, (k, v)) in self.about.iter().enumerate() {
            about.write_string_with_format(r as u32, 0, k, &bold)?;
            about.write_string(r as u32, 1, v)?;
        }
        Ok(book)
    }
}

/// Columns a text takes in a spreadsheet or terminal: Chinese characters take two.
fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// Writes `table` as `format` (`csv` or `xlsx`) to `out`, or CSV to stdout when `out` is `None`.
pub fn write(table: &Table, format: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let unwritable = |p: &Path, e: &dyn std::fmt::Display| {
        patrolsync_i18n::text!("file-unwritable", file = p.display(), error = e)
    };
    match (format, out) {
        ("csv", None) => table.write_csv(std::io::stdout().lock(), false)?,
        ("csv", Some(p)) => {
            let f = std::fs::File::create(p).map_err(|e| unwritable(p, &e))?;
            table
                .write_csv(std::io::BufWriter::new(f), true)
                .map_err(|e| unwritable(p, &e))?;
        }
        ("xlsx", Some(p)) => table.write_xlsx(p).map_err(|e| unwritable(p, &e))?,
        ("xlsx", None) => return Err(patrolsync_i18n::text!("report-xlsx-needs-out").into()),
        (f, _) => {
            return Err(patrolsync_i18n::text!(
                "unknown-choice",
                what = "--format",
                value = f,
                known = "csv, xlsx"
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            title: "inspections".into(),
            heading: vec![],
            about_title: "about".into(),
            columns: vec!["checkpoint".into(), "note".into()],
            rows: vec![vec![
                Value::Text("S1-C1-K1-B1-P1".into()),
                Value::Text("消防通道被电动车堵塞".into()),
            ]],
            about: vec![],
        }
    }

    #[test]
    fn a_csv_file_starts_with_the_byte_order_mark_and_reads_back_as_utf8() -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        table().write_csv(&mut bytes, true)?;
        assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
        let text = std::str::from_utf8(&bytes[3..])?;
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(rows.headers()?, vec!["checkpoint", "note"]);
        let first = rows.records().next().expect("a row")?;
        assert_eq!(&first[1], "消防通道被电动车堵塞");
        // Piped text has no mark.
        let mut piped = Vec::new();
        table().write_csv(&mut piped, false)?;
        assert!(piped.starts_with(b"checkpoint,note"));
        Ok(())
    }
}
