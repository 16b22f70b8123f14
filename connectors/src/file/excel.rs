//! Spreadsheets (xlsx, xlsm, xls, ods) through calamine, as text columns like a CSV file.
//!
//! Agencies' sheets rarely start with the header: a merged title row or two, a blank row,
//! then the header. Unless `header_row` is given, the header is the first row, among the
//! first [`HEADER_SEARCH_ROWS`], with the most filled cells, all of them text; a merged title
//! has one filled cell, so it is passed over. Rows above the header are not data. Every row
//! below it is, and keeps its sheet row number as its position.
//!
//! Cells become text by these rules: whole numbers without a fraction (`1234`, not
//! `1234.0`), other numbers as written by Rust (`12.5`), dates as `YYYY-MM-DD`, date-times as
//! `YYYY-MM-DDTHH:MM:SS` (local time, read as WIB downstream), booleans as `true`/`false`,
//! error cells (`#N/A`) as their code, so that a typed column refuses them with a reason.

use std::path::Path;
use std::sync::Arc;

use calamine::{Data, Range, Reader, Sheets, open_workbook_auto, open_workbook_auto_from_rs};
use simpul_schemas::SourcePosition;

use super::{BATCH_ROWS, TextColumns, text_fields, unique_column_names};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// How far down the header is looked for.
pub const HEADER_SEARCH_ROWS: usize = 30;

/// Which sheet and header to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcelOptions {
    /// The sheet's name; the first sheet when `None`.
    pub sheet: Option<String>,
    /// The header's 1-based row number; found by the rule above when `None`.
    pub header_row: Option<usize>,
}

/// A sheet read into batches of text columns.
pub(super) struct ExcelReader {
    path: String,
    source: Arc<str>,
    range: Range<Data>,
    columns: Vec<String>,
    /// The next row to read, 0-based within the range.
    next: usize,
    /// The range's first row in the sheet, 0-based.
    first_row: usize,
    progress: ReadProgress,
}

impl ExcelReader {
    pub(super) fn open(
        path: &Path,
        name: &str,
        options: &ExcelOptions,
    ) -> Result<Self, SourceError> {
        let name = name.to_string();
        let total = std::fs::metadata(path)
            .map_err(|source| SourceError::Io {
                path: name.clone(),
                source,
            })?
            .len();
        let workbook =
            open_workbook_auto(path).map_err(|e| not_a_spreadsheet(&name, e.to_string()))?;
        Self::from_workbook(workbook, name, total, options)
    }

    /// Reads a spreadsheet held in memory; its kind is told from its content.
    pub(super) fn from_bytes(
        name: &str,
        data: bytes::Bytes,
        options: &ExcelOptions,
    ) -> Result<Self, SourceError> {
        let total = data.len() as u64;
        let workbook = open_workbook_auto_from_rs(std::io::Cursor::new(data))
            .map_err(|e| not_a_spreadsheet(name, e.to_string()))?;
        Self::from_workbook(workbook, name.to_string(), total, options)
    }

    fn from_workbook<RS: std::io::Read + std::io::Seek>(
        mut workbook: Sheets<RS>,
        name: String,
        total: u64,
        options: &ExcelOptions,
    ) -> Result<Self, SourceError> {
        let format_error = |reason: String| not_a_spreadsheet(&name, reason);
        let sheets = workbook.sheet_names();
        let sheet = match &options.sheet {
            Some(wanted) => sheets
                .iter()
                .find(|s| *s == wanted)
                .cloned()
                .ok_or_else(|| {
                    format_error(format!(
                        "has no sheet '{wanted}'; its sheets are: {}",
                        sheets.join(", ")
                    ))
                })?,
            None => sheets
                .first()
                .cloned()
                .ok_or_else(|| format_error("has no sheet".into()))?,
        };
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|e| format_error(format!("sheet '{sheet}': {e}")))?;
        let first_row = range.start().map_or(0, |(row, _)| row as usize);
        let header = match options.header_row {
            Some(row) if row >= 1 && row > first_row => row - 1 - first_row,
            Some(row) => {
                return Err(format_error(format!(
                    "header_row {row} is above the sheet's first filled row {}",
                    first_row + 1
                )));
            }
            None => find_header(&range)
                .ok_or_else(|| format_error(format!("sheet '{sheet}' has no header row")))?,
        };
        let headers: Vec<String> = range
            .rows()
            .nth(header)
            .map(|row| {
                row.iter()
                    .map(cell_text)
                    .map(Option::unwrap_or_default)
                    .collect()
            })
            .unwrap_or_default();
        let width = headers
            .iter()
            .rposition(|h| !h.is_empty())
            .map_or(0, |i| i + 1);
        let named: Vec<String> = headers
            .iter()
            .take(width)
            .enumerate()
            .map(|(i, h)| {
                if h.is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    h.clone()
                }
            })
            .collect();
        let progress = ReadProgress::new(total);
        Ok(Self {
            source: format!("{name} ({sheet})").into(),
            path: name,
            columns: unique_column_names(named.iter().map(String::as_str)),
            range,
            next: header + 1,
            first_row,
            progress,
        })
    }

    fn read_batch(&mut self) -> Result<Option<RawBatch>, SourceError> {
        let height = self.range.height();
        if self.next >= height {
            self.progress.set(self.progress.total());
            return Ok(None);
        }
        let mut columns = TextColumns::new(self.columns.len());
        let mut positions = Vec::new();
        while self.next < height && positions.len() < BATCH_ROWS {
            let row = self.next;
            self.next += 1;
            let cells: Vec<Option<String>> = (0..self.columns.len())
                .map(|col| self.range.get((row, col)).and_then(cell_text))
                .collect();
            if cells.iter().all(Option::is_none) {
                // A blank row is layout, not a record.
                continue;
            }
            for (builder, cell) in columns.builders.iter_mut().zip(cells) {
                builder.append_option(cell);
            }
            positions.push(SourcePosition {
                source: self.source.clone(),
                line: (self.first_row + row + 1) as u64,
            });
        }
        let batch = columns
            .finish(text_fields(&self.columns))
            .map_err(|source| SourceError::Arrow {
                path: self.path.clone(),
                source,
            })?;
        Ok(Some(RawBatch {
            batch,
            positions,
            malformed: Vec::new(),
        }))
    }
}

impl Iterator for ExcelReader {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_batch().transpose()
    }
}

impl RawBatchReader for ExcelReader {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }
}

fn not_a_spreadsheet(name: &str, reason: String) -> SourceError {
    SourceError::Format {
        path: name.to_string(),
        format: "spreadsheet",
        reason,
    }
}

/// The 0-based row, among the first ones, with the most filled cells, all text.
fn find_header(range: &Range<Data>) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (index, row) in range.rows().take(HEADER_SEARCH_ROWS).enumerate() {
        let filled = row.iter().filter(|c| !matches!(c, Data::Empty)).count();
        let all_text = row
            .iter()
            .all(|c| matches!(c, Data::Empty | Data::String(_)));
        if filled > 0 && all_text && best.is_none_or(|(_, most)| filled > most) {
            best = Some((index, filled));
        }
    }
    best.map(|(index, _)| index)
}

/// A cell as text; `None` for an empty cell or one with only blanks.
fn cell_text(cell: &Data) -> Option<String> {
    let text = match cell {
        Data::Empty => return None,
        Data::String(text) => text.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(value) => match value.as_datetime() {
            Some(at) if value.is_datetime() && at.time() == chrono::NaiveTime::MIN => {
                at.date().format("%Y-%m-%d").to_string()
            }
            Some(at) if value.is_datetime() => at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            _ => value.as_f64().to_string(),
        },
        Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Error(error) => error.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

    use super::*;

    /// A sheet as an agency sends it: a merged title over two rows, a blank row, the header,
    /// data with dates and numbers, a blank row and a source note at the bottom.
    fn agency_sheet(path: &Path) {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet().set_name("Data 2024").unwrap();
        let title = Format::new().set_bold();
        sheet
            .merge_range(
                0,
                0,
                0,
                3,
                "DATA KUNJUNGAN PUSKESMAS KABUPATEN PURWAKARTA",
                &title,
            )
            .unwrap();
        sheet.merge_range(1, 0, 1, 3, "Tahun 2024", &title).unwrap();
        for (col, header) in [
            "Kode Puskesmas",
            "Nama Puskesmas",
            "Tanggal",
            "Jumlah Kunjungan",
        ]
        .iter()
        .enumerate()
        {
            sheet.write_string(3, col as u16, *header).unwrap();
        }
        let date = Format::new().set_num_format("dd/mm/yyyy");
        let rows = [
            ("P3214010101", "Puskesmas Purwakarta", (2024, 1, 15), 1250.0),
            ("P3214020101", "Puskesmas Campaka", (2024, 2, 1), 873.0),
            ("P3214030101", "Puskesmas Jatiluhur", (2024, 3, 31), 1042.5),
        ];
        for (i, (kode, nama, (y, m, d), jumlah)) in rows.iter().enumerate() {
            let row = 4 + i as u32;
            sheet.write_string(row, 0, *kode).unwrap();
            sheet.write_string(row, 1, *nama).unwrap();
            let day = ExcelDateTime::from_ymd(*y, *m, *d).unwrap();
            sheet
                .write_datetime_with_format(row, 2, &day, &date)
                .unwrap();
            sheet.write_number(row, 3, *jumlah).unwrap();
        }
        sheet.write_string(8, 0, "Sumber: Dinas Kesehatan").unwrap();
        workbook.save(path).unwrap();
    }

    fn texts(batch: &RawBatch, column: &str) -> Vec<Option<String>> {
        let array = batch
            .batch
            .column_by_name(column)
            .unwrap()
            .as_string::<i32>();
        (0..array.len())
            .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
            .collect()
    }

    #[test]
    fn finds_the_header_under_merged_title_rows_and_reads_dates_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kunjungan.xlsx");
        agency_sheet(&path);
        let mut reader =
            ExcelReader::open(&path, "kunjungan.xlsx", &ExcelOptions::default()).unwrap();
        assert_eq!(
            reader.columns(),
            vec![
                "kode_puskesmas",
                "nama_puskesmas",
                "tanggal",
                "jumlah_kunjungan"
            ]
        );
        let batch = reader.next().unwrap().unwrap();
        assert!(reader.next().is_none());
        assert_eq!(
            texts(&batch, "tanggal"),
            vec![
                Some("2024-01-15".into()),
                Some("2024-02-01".into()),
                Some("2024-03-31".into()),
                None
            ]
        );
        assert_eq!(
            texts(&batch, "jumlah_kunjungan")[..3],
            [
                Some("1250".into()),
                Some("873".into()),
                Some("1042.5".into())
            ]
        );
        assert_eq!(
            texts(&batch, "kode_puskesmas")[3].as_deref(),
            Some("Sumber: Dinas Kesehatan")
        );
        let lines: Vec<u64> = batch.positions.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            vec![5, 6, 7, 9],
            "sheet row numbers; the blank row is skipped"
        );
        assert!(
            batch.positions[0]
                .source
                .ends_with("kunjungan.xlsx (Data 2024)")
        );
    }

    #[test]
    fn a_given_header_row_and_sheet_are_used_and_a_missing_sheet_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kunjungan.xlsx");
        agency_sheet(&path);
        let given = ExcelOptions {
            sheet: Some("Data 2024".into()),
            header_row: Some(4),
        };
        assert_eq!(
            ExcelReader::open(&path, "k.xlsx", &given)
                .unwrap()
                .columns()[0],
            "kode_puskesmas"
        );
        let missing = ExcelOptions {
            sheet: Some("Data 2025".into()),
            header_row: None,
        };
        let error = ExcelReader::open(&path, "k.xlsx", &missing)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("Data 2025") && error.contains("Data 2024"),
            "{error}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_spreadsheet_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rusak.xlsx");
        std::fs::write(&path, b"bukan excel").unwrap();
        let error = ExcelReader::open(&path, "rusak.xlsx", &ExcelOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("rusak.xlsx") && error.contains("spreadsheet"),
            "{error}"
        );
    }
}
