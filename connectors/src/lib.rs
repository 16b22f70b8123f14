//! Sources: where data enters Simpul from outside.
//!
//! Owns the readers that turn files (and, later, APIs and databases) into Arrow batches of raw
//! values, each row tagged with its position in the source, plus the records that could not
//! even be parsed. Typing and validation happen downstream, in `simpul-schemas`.
//!
//! Knows nothing of the catalog, the lake or the hub: a connector never writes anything.

pub mod file;

mod raw;

pub use raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};
