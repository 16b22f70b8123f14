//! Arrow IPC streams, as a bus publish or an upload sends them: whatever lengths they
//! declare, reading ends in batches or an error, never an allocation the input does not back.
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
    let Ok(reader) = open_bytes("fuzz.arrows", bytes::Bytes::copy_from_slice(data), &FileFormat::ArrowIpc) else {
        return;
    };
    for batch in reader {
        if batch.is_err() {
            return;
        }
    }
    }
);
