//! The CSV reader on any bytes: never a panic, and every record is either a row of a batch
//! or a malformed record kept with its reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simpul_connectors::file::{FileFormat, open_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = open_bytes(
        "fuzz.csv",
        bytes::Bytes::copy_from_slice(data),
        &FileFormat::Csv(Default::default()),
    ) else {
        return;
    };
    let width = reader.columns().len();
    for batch in reader {
        let Ok(batch) = batch else { return };
        assert_eq!(batch.batch.num_rows(), batch.positions.len());
        assert_eq!(batch.batch.num_columns(), width);
        assert!(batch.malformed.iter().all(|m| !m.errors.is_empty()));
    }
});
