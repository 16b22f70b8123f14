//! One sheet's filled cells, read sparsely, and the batches of rows under its header.
//!
//! A sheet names its cells by position, and a file of two cells, A1 and XFD1048576, spans
//! 17 billion of them. calamine's `Range` is dense over that span, so xlsx and xlsb sheets are
//! read through calamine's cell readers instead: only the filled cells are kept, with their
//! positions, and memory follows what the sheet holds. xls and ods sheets come whole from
//! calamine (their formats cap a sheet's span, and ods's repeats are capped by calamine), and
//! are then kept the same sparse way.

use std::io::{Read, Seek};
use std::sync::Arc;

use calamine::{Data, Reader, Sheets};
use simpul_schemas::SourcePosition;

use super::{ExcelOptions, HEADER_SEARCH_ROWS, not_a_spreadsheet};
use crate::file::{BATCH_ROWS, TextColumns, text_fields, unique_column_names};
use crate::raw::{RawBatch, SourceError};

/// The most filled cells one sheet may hold (a full sheet of a million rows of 25 columns).
pub const MAX_FILLED_CELLS: usize = 25_000_000;

/// One filled cell: its 0-based position in the sheet and its text.
#[derive(Debug, Clone, PartialEq)]
struct Filled {
    row: u32,
    col: u32,
    /// The cell as text; `None` for a cell that holds only blanks.
    text: Option<String>,
    /// Whether the cell holds text (not a number, date or boolean), for finding the header.
    is_text: bool,
}

impl Filled {
    fn new(row: u32, col: u32, cell: &Data) -> Option<Self> {
        if matches!(cell, Data::Empty) {
            return None;
        }
        Some(Self {
            row,
            col,
            text: cell_text(cell),
            is_text: matches!(cell, Data::String(_)),
        })
    }
}

/// A sheet under its header, handing out batches of text columns.
pub(super) struct Sheet {
    path: String,
    source: Arc<str>,
    columns: Vec<String>,
    /// Filled cells below the header, ordered by row, then column.
    cells: std::vec::IntoIter<Filled>,
    /// The first cell of the next row, already taken from `cells`.
    pending: Option<Filled>,
    /// The leftmost filled column; the header's first column is counted from here.
    first_col: u32,
}

impl Sheet {
    /// Reads the chosen sheet of `workbook` and finds its header.
    pub(super) fn read<RS: Read + Seek>(
        mut workbook: Sheets<RS>,
        name: &str,
        options: &ExcelOptions,
    ) -> Result<Self, SourceError> {
        let format_error = |reason: String| not_a_spreadsheet(name, reason);
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
        let mut cells = filled_cells(&mut workbook, &sheet)
            .map_err(|reason| format_error(format!("sheet '{sheet}': {reason}")))?;
        cells.sort_by_key(|c| (c.row, c.col));
        let first_row = cells.first().map_or(0, |c| c.row);
        let first_col = cells.iter().map(|c| c.col).min().unwrap_or(0);
        let header = match options.header_row {
            Some(row) if row > first_row as usize => u32::try_from(row - 1).map_err(|_| {
                format_error(format!("header_row {row} is past a sheet's last row"))
            })?,
            Some(row) => {
                return Err(format_error(format!(
                    "header_row {row} is above the sheet's first filled row {}",
                    first_row + 1
                )));
            }
            None => find_header(&cells, first_row)
                .ok_or_else(|| format_error(format!("sheet '{sheet}' has no header row")))?,
        };
        let headers = header_texts(&cells, header, first_col);
        let named: Vec<String> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Some(h) => h.clone(),
                None => format!("column_{}", i + 1),
            })
            .collect();
        let below: Vec<Filled> = cells.into_iter().filter(|c| c.row > header).collect();
        Ok(Self {
            source: format!("{name} ({sheet})").into(),
            path: name.to_string(),
            columns: unique_column_names(named.iter().map(String::as_str)),
            cells: below.into_iter(),
            pending: None,
            first_col,
        })
    }

    /// The normalized column names.
    pub(super) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The name every row's position carries: the file and the sheet.
    pub(super) fn source(&self) -> &Arc<str> {
        &self.source
    }

    /// The next row with a filled cell under a named column: its sheet row and its cells.
    fn next_row(&mut self) -> Option<(u32, Vec<Option<String>>)> {
        let width = self.columns.len();
        loop {
            let first = self.pending.take().or_else(|| self.cells.next())?;
            let row = first.row;
            let mut values = vec![None; width];
            let mut filled = false;
            let mut cell = Some(first);
            while let Some(c) = cell {
                if c.row != row {
                    self.pending = Some(c);
                    break;
                }
                let index = (c.col - self.first_col) as usize;
                if index < width && c.text.is_some() {
                    values[index] = c.text;
                    filled = true;
                }
                cell = self.cells.next();
            }
            // A blank row is layout, not a record.
            if filled {
                return Some((row, values));
            }
        }
    }

    /// The next batch of up to [`BATCH_ROWS`] rows; `None` after the last.
    pub(super) fn next_batch(&mut self) -> Option<Result<RawBatch, SourceError>> {
        let mut columns = TextColumns::new(self.columns.len());
        let mut positions = Vec::new();
        while positions.len() < BATCH_ROWS {
            let Some((row, values)) = self.next_row() else {
                break;
            };
            for (builder, value) in columns.builders.iter_mut().zip(values) {
                builder.append_option(value);
            }
            positions.push(SourcePosition {
                source: self.source.clone(),
                line: u64::from(row) + 1,
            });
        }
        if positions.is_empty() {
            return None;
        }
        Some(
            columns
                .finish(text_fields(&self.columns))
                .map(|batch| RawBatch {
                    batch,
                    positions,
                    malformed: Vec::new(),
                })
                .map_err(|source| SourceError::Arrow {
                    path: self.path.clone(),
                    source,
                }),
        )
    }
}

/// Every filled cell of `sheet`, at most [`MAX_FILLED_CELLS`].
fn filled_cells<RS: Read + Seek>(
    workbook: &mut Sheets<RS>,
    sheet: &str,
) -> Result<Vec<Filled>, String> {
    let mut cells = Vec::new();
    let mut keep = |row: u32, col: u32, cell: &Data| -> Result<(), String> {
        if let Some(filled) = Filled::new(row, col, cell) {
            if cells.len() == MAX_FILLED_CELLS {
                return Err(format!(
                    "has more than {MAX_FILLED_CELLS} filled cells; split it, or save it as CSV"
                ));
            }
            cells.push(filled);
        }
        Ok(())
    };
    match workbook {
        Sheets::Xlsx(xlsx) => {
            let mut reader = xlsx
                .worksheet_cells_reader(sheet)
                .map_err(|e| e.to_string())?;
            while let Some(cell) = reader.next_cell().map_err(|e| e.to_string())? {
                let (row, col) = cell.get_position();
                keep(row, col, &Data::from(cell.get_value().clone()))?;
            }
        }
        Sheets::Xlsb(xlsb) => {
            let mut reader = xlsb
                .worksheet_cells_reader(sheet)
                .map_err(|e| e.to_string())?;
            while let Some(cell) = reader.next_cell().map_err(|e| e.to_string())? {
                let (row, col) = cell.get_position();
                keep(row, col, &Data::from(cell.get_value().clone()))?;
            }
        }
        Sheets::Xls(_) | Sheets::Ods(_) => {
            let range = workbook.worksheet_range(sheet).map_err(|e| e.to_string())?;
            let (top, left) = range.start().unwrap_or((0, 0));
            for (row, col, cell) in range.used_cells() {
                keep(top + row as u32, left + col as u32, cell)?;
            }
        }
    }
    Ok(cells)
}

/// The sheet row, among the first [`HEADER_SEARCH_ROWS`] from the first filled one, with the
/// most filled cells, all of them text. A merged title has one filled cell, so it is passed
/// over.
fn find_header(cells: &[Filled], first_row: u32) -> Option<u32> {
    let last = first_row.saturating_add(HEADER_SEARCH_ROWS as u32);
    let mut best: Option<(u32, usize)> = None;
    let mut rows = cells.iter().take_while(|c| c.row < last).peekable();
    while let Some(first) = rows.next() {
        let mut filled = 1;
        let mut all_text = first.is_text;
        while let Some(cell) = rows.next_if(|c| c.row == first.row) {
            filled += 1;
            all_text &= cell.is_text;
        }
        if all_text && best.is_none_or(|(_, most)| filled > most) {
            best = Some((first.row, filled));
        }
    }
    best.map(|(row, _)| row)
}

/// The header row's texts from the first filled column to its last filled header cell.
fn header_texts(cells: &[Filled], header: u32, first_col: u32) -> Vec<Option<String>> {
    let row: Vec<&Filled> = cells
        .iter()
        .filter(|c| c.row == header && c.text.is_some())
        .collect();
    let width = row.last().map_or(0, |c| (c.col - first_col) as usize + 1);
    let mut texts = vec![None; width];
    for cell in row {
        texts[(cell.col - first_col) as usize] = cell.text.clone();
    }
    texts
}

/// A cell as text; `None` for an empty cell or one with only blanks.
///
/// Whole numbers without a fraction (`1234`, not `1234.0`), other numbers as written by Rust
/// (`12.5`), dates as `YYYY-MM-DD`, date-times as `YYYY-MM-DDTHH:MM:SS` (local time, read as
/// WIB downstream), booleans as `true`/`false`, error cells (`#N/A`) as their code, so that a
/// typed column refuses them with a reason.
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
    use super::*;

    fn text(row: u32, col: u32, value: &str) -> Filled {
        Filled {
            row,
            col,
            text: Some(value.into()),
            is_text: true,
        }
    }

    #[test]
    fn the_header_is_the_fullest_all_text_row_near_the_top() {
        let cells = vec![
            text(0, 0, "JUDUL"),
            text(2, 0, "kode"),
            text(2, 1, "nama"),
            Filled {
                row: 3,
                col: 0,
                text: Some("1".into()),
                is_text: false,
            },
            text(3, 1, "ani"),
        ];
        assert_eq!(find_header(&cells, 0), Some(2));
        assert_eq!(
            header_texts(&cells, 2, 0),
            vec![Some("kode".into()), Some("nama".into())]
        );
    }

    #[test]
    fn a_far_corner_cell_beyond_the_header_is_not_a_column() {
        let cells = vec![text(0, 0, "kode"), text(1_048_575, 16_383, "x")];
        assert_eq!(find_header(&cells, 0), Some(0));
        assert_eq!(header_texts(&cells, 0, 0).len(), 1);
    }
}
