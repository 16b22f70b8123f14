//! Sources: where data enters Simpul from outside.
//!
//! Owns the readers that turn files and HTTP APIs (and, later, databases) into Arrow batches
//! of raw values, each row tagged with its position in the source, plus the records that
//! could not even be parsed. Typing and validation happen downstream, in `simpul-schemas`.
//! API sources follow the Airbyte shape (`source::Source`: spec, check, discover, read).
//!
//! Knows nothing of the catalog, the lake or the hub: a connector never writes anything.

pub mod file;
pub mod opendata_jabar;
pub mod rest_json;

mod raw;
mod source;

pub use raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};
pub use source::{ReadEvent, Source, StreamInfo};
