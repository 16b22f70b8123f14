//! The spreadsheet reader's own rules (the sparse sheet, the header search, the cell text)
//! on sheets of any shape: cells at any position, blank rows, far corners. The sheets are
//! written as real xlsx files; every cell under the header comes back, in its row. The cells
//! below the header are numbers: the header is the fullest all-text row near the top, so a
//! row of text cells wider than the header would rightly be taken for it.
//! (What calamine does with a hostile file is contained by the child process the hub reads
//! spreadsheets in; `tests/…/hostile_files.rs` checks that against the binary.)
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use arrow::array::Array;
use libfuzzer_sys::fuzz_target;
use simpul_connectors::file::{ExcelOptions, FileFormat, open_bytes};

#[derive(Debug, Arbitrary)]
struct Sheet {
    header: Vec<u8>,
    cells: Vec<(u16, u8, u8)>,
}

fuzz_target!(|sheet: Sheet| {
    let width = (sheet.header.len() % 6).max(1) as u16;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let worksheet = workbook.add_worksheet();
    for col in 0..width {
        if worksheet
            .write_string(0, col, format!("kolom{col}"))
            .is_err()
        {
            return;
        }
    }
    let mut expected: BTreeMap<u32, BTreeMap<u16, String>> = BTreeMap::new();
    for (row, col, value) in sheet.cells {
        let row = 1 + u32::from(row);
        let col = u16::from(col) % (width + 3);
        if worksheet.write_number(row, col, f64::from(value)).is_err() {
            return;
        }
        if col < width {
            expected
                .entry(row)
                .or_default()
                .insert(col, value.to_string());
        }
    }
    let Ok(bytes) = workbook.save_to_buffer() else {
        return;
    };
    let reader = open_bytes(
        "fuzz.xlsx",
        bytes::Bytes::from(bytes),
        &FileFormat::Spreadsheet(ExcelOptions::default()),
    )
    .expect("a sheet the writer made is read");
    let mut rows: BTreeMap<u32, BTreeMap<u16, String>> = BTreeMap::new();
    for batch in reader {
        let batch = batch.expect("a batch");
        for (i, position) in batch.positions.iter().enumerate() {
            let line = position.line as u32 - 1;
            for col in 0..batch.batch.num_columns() {
                let array = batch.batch.column(col);
                let array = array
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .expect("text");
                if array.is_valid(i) {
                    rows.entry(line)
                        .or_default()
                        .insert(col as u16, array.value(i).to_string());
                }
            }
        }
    }
    // Rows only outside the header's columns are layout, not records.
    expected.retain(|_, cells| !cells.is_empty());
    assert_eq!(rows, expected);
});
