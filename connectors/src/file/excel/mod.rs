//! Spreadsheets (xlsx, xlsm, xlsb, xls, ods) through calamine, as text columns like a CSV file.
//!
//! Agencies' sheets rarely start with the header: a merged title row or two, a blank row,
//! then the header. Unless `header_row` is given, the header is the first row, among the
//! first [`HEADER_SEARCH_ROWS`], with the most filled cells, all of them text; a merged title
//! has one filled cell, so it is passed over. Rows above the header are not data. Every row
//! below it is, and keeps its sheet row number as its position. Cells become text by the
//! rules of `sheet::cell_text`.
//!
//! In the `simpul` binary, a spreadsheet is parsed in a child process under memory and CPU
//! limits (`sandbox.rs`); its sheet is read sparsely either way (`sheet.rs`).

mod sandbox;
mod sheet;

use std::path::Path;

use calamine::{open_workbook_auto, open_workbook_auto_from_rs};

pub use self::sandbox::{
    CHILD_COMMAND, SpreadsheetSandbox, isolate_spreadsheets, run_spreadsheet_child,
};
use self::sandbox::{ChildSheet, Input};
use self::sheet::Sheet;
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

/// A sheet read into batches of text columns, here or by the sandbox's child.
pub(super) struct ExcelReader {
    sheet: SheetSource,
    columns: Vec<String>,
    progress: ReadProgress,
}

enum SheetSource {
    InProcess(Sheet),
    Child(Box<ChildSheet>),
}

impl ExcelReader {
    pub(super) fn open(
        path: &Path,
        name: &str,
        options: &ExcelOptions,
    ) -> Result<Self, SourceError> {
        let io_error = |source| SourceError::Io {
            path: name.to_string(),
            source,
        };
        let total = std::fs::metadata(path).map_err(io_error)?.len();
        let progress = ReadProgress::new(total);
        let sheet = match sandbox::installed() {
            Some(sandbox) => {
                let file = std::fs::File::open(path).map_err(io_error)?;
                SheetSource::Child(Box::new(ChildSheet::start(
                    sandbox,
                    name,
                    Input::File(file),
                    options,
                    progress.clone(),
                )?))
            }
            None => {
                let workbook =
                    open_workbook_auto(path).map_err(|e| not_a_spreadsheet(name, e.to_string()))?;
                progress.set(total);
                SheetSource::InProcess(Sheet::read(workbook, name, options)?)
            }
        };
        Ok(Self::new(sheet, progress))
    }

    /// Reads a spreadsheet held in memory; its kind is told from its content.
    pub(super) fn from_bytes(
        name: &str,
        data: bytes::Bytes,
        options: &ExcelOptions,
    ) -> Result<Self, SourceError> {
        let progress = ReadProgress::new(data.len() as u64);
        let sheet = match sandbox::installed() {
            Some(sandbox) => SheetSource::Child(Box::new(ChildSheet::start(
                sandbox,
                name,
                Input::Bytes(data),
                options,
                progress.clone(),
            )?)),
            None => {
                progress.set(data.len() as u64);
                let workbook = open_workbook_auto_from_rs(std::io::Cursor::new(data))
                    .map_err(|e| not_a_spreadsheet(name, e.to_string()))?;
                SheetSource::InProcess(Sheet::read(workbook, name, options)?)
            }
        };
        Ok(Self::new(sheet, progress))
    }

    fn new(sheet: SheetSource, progress: ReadProgress) -> Self {
        let columns = match &sheet {
            SheetSource::InProcess(sheet) => sheet.columns().to_vec(),
            SheetSource::Child(sheet) => sheet.columns().to_vec(),
        };
        Self {
            sheet,
            columns,
            progress,
        }
    }
}

impl Iterator for ExcelReader {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.sheet {
            SheetSource::InProcess(sheet) => sheet.next_batch(),
            SheetSource::Child(sheet) => sheet.next_batch(),
        }
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
