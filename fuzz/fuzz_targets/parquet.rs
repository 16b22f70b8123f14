//! Parquet files, as an upload sends them: whatever their footer declares, reading ends in
//! batches or an error, never an allocation the file does not back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simpul_connectors::file::{FileFormat, open_bytes};

fuzz_target!(
    init: {
        // The reader turns a decoder's panic into an error (`file::contained`); libFuzzer's
        // hook would abort on the panic before that, so this target uses a quiet one. A
        // panic that escapes the reader still aborts, as it crosses into libFuzzer.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
    let Ok(reader) = open_bytes("fuzz.parquet", bytes::Bytes::copy_from_slice(data), &FileFormat::Parquet) else {
        return;
    };
    for batch in reader {
        if batch.is_err() {
            return;
        }
    }
    }
);
