use std::sync::Arc;

use arrow::datatypes::Schema;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{ChunkReader, Length};

use super::{BATCH_ROWS, normalized_schema, typed_raw_batch};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// Reads Parquet as typed batches, renaming columns to normalized names. Positions are row
/// numbers, 1-based.
pub(super) struct ParquetReader {
    path: String,
    /// The path as every row's source position shares it.
    source: std::sync::Arc<str>,
    reader: ParquetRecordBatchReader,
    schema: Arc<Schema>,
    rows_read: u64,
    total_rows: u64,
    progress: ReadProgress,
    /// Set after an error: the decoder is not asked again.
    failed: bool,
}

impl ParquetReader {
    pub(super) fn new<T: ChunkReader + 'static>(
        path: String,
        file: T,
        progress: ReadProgress,
    ) -> Result<Self, SourceError> {
        let (reader, total_rows, source_schema) = super::contained(&path, "Parquet", || {
            check_footer(&file)?;
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
            let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
            let source_schema = builder.schema().clone();
            let reader = builder
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| e.to_string())?;
            Ok((reader, total_rows, source_schema))
        })?;
        let schema = normalized_schema(&source_schema);
        Ok(Self {
            source: path.as_str().into(),
            path,
            reader,
            schema,
            rows_read: 0,
            total_rows,
            progress,
            failed: false,
        })
    }
}

impl Iterator for ParquetReader {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let reader = &mut self.reader;
        let batch = match super::contained(&self.path, "Parquet", || {
            reader.next().transpose().map_err(|e| e.to_string())
        }) {
            Ok(batch) => batch?,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let first = self.rows_read + 1;
        self.rows_read += batch.num_rows() as u64;
        if self.total_rows > 0 {
            let fraction = self.rows_read as f64 / self.total_rows as f64;
            self.progress
                .set((fraction * self.progress.total() as f64) as u64);
        }
        Some(typed_raw_batch(
            &self.schema,
            &batch,
            &self.source,
            &self.path,
            first,
        ))
    }
}

impl RawBatchReader for ParquetReader {
    fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }
}

/// Checks that the file's footer (its Thrift `FileMetaData`) declares no more elements or
/// bytes than it holds. The parquet crate reserves some of its lists (the row groups) by the
/// count the footer declares, before reading them, so a 1 KB file claiming two billion row
/// groups would abort the process. A footer that is not plain Parquet (no `PAR1` at the end,
/// an encrypted footer) is left to the parquet crate, which refuses it.
fn check_footer<T: ChunkReader>(file: &T) -> Result<(), String> {
    let len = file.len();
    if len < 12 {
        return Ok(());
    }
    let tail = file.get_bytes(len - 8, 8).map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Ok(());
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 8 > len {
        return Ok(());
    }
    let footer = file
        .get_bytes(len - 8 - footer_len, footer_len as usize)
        .map_err(|e| e.to_string())?;
    let mut walker = ThriftWalker {
        bytes: &footer,
        at: 0,
    };
    walker
        .skip_struct(0)
        .map_err(|e| format!("its footer is damaged: {e}"))
}

/// Walks Thrift compact-protocol values without building them, checking every declared
/// count and length against the bytes that are left.
struct ThriftWalker<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// How deeply Thrift values may nest; Parquet's metadata nests a handful of levels.
const MAX_THRIFT_DEPTH: usize = 64;

impl ThriftWalker<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or("it ends inside a value")?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number is too long".into())
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if n > self.left() as u64 {
            return Err(format!(
                "a value declares {n} bytes but only {} are left",
                self.left()
            ));
        }
        self.at += n as usize;
        Ok(())
    }

    /// A declared element count, which may not exceed the bytes left (every element takes
    /// at least `each` bytes).
    fn count(&mut self, declared: u64, each: u64) -> Result<u64, String> {
        if declared.saturating_mul(each) > self.left() as u64 {
            return Err(format!(
                "a list declares {declared} elements but only {} bytes are left",
                self.left()
            ));
        }
        Ok(declared)
    }

    fn skip_struct(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_THRIFT_DEPTH {
            return Err("values nest too deeply".into());
        }
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(());
            }
            if header >> 4 == 0 {
                self.varint()?;
            }
            match header & 0x0f {
                // Booleans in a struct carry their value in the type.
                1 | 2 => {}
                kind => self.skip_value(kind, depth + 1)?,
            }
        }
    }

    fn skip_value(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        match kind {
            1..=3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let n = self.varint()?;
                self.skip(n)
            }
            9 | 10 => {
                let header = self.byte()?;
                let declared = match header >> 4 {
                    15 => self.varint()?,
                    small => u64::from(small),
                };
                let element = header & 0x0f;
                for _ in 0..self.count(declared, 1)? {
                    self.skip_value(element, depth + 1)?;
                }
                Ok(())
            }
            11 => {
                let declared = self.varint()?;
                if declared == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                for _ in 0..self.count(declared, 2)? {
                    self.skip_value(kinds >> 4, depth + 1)?;
                    self.skip_value(kinds & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            12 => self.skip_struct(depth),
            13 => self.skip(16),
            other => Err(format!("unknown value type {other}")),
        }
    }
}

/// A local Parquet file whose byte ranges are checked against its length before they are
/// read. The `File` reader of the parquet crate reserves a range's declared length (from the
/// file's own metadata) before reading it, so a column chunk claiming terabytes would abort
/// the process instead of failing.
pub(super) struct CheckedFile {
    file: std::fs::File,
    len: u64,
}

impl CheckedFile {
    pub(super) fn new(file: std::fs::File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }

    fn check(&self, start: u64, length: u64) -> parquet::errors::Result<()> {
        match start.checked_add(length) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(parquet::errors::ParquetError::EOF(format!(
                "the file's metadata names {length} bytes at offset {start}, but the file has {} bytes",
                self.len
            ))),
        }
    }
}

impl Length for CheckedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for CheckedFile {
    type T = <std::fs::File as ChunkReader>::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.check(start, 0)?;
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.check(start, length as u64)?;
        self.file.get_bytes(start, length)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::file::{FileFormat, open};

    fn three_rows() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out
    }

    fn read_all(bytes: &[u8]) -> Result<usize, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, bytes).unwrap();
        let mut rows = 0;
        for batch in open(&path, &FileFormat::Parquet).map_err(|e| e.to_string())? {
            rows += batch.map_err(|e| e.to_string())?.batch.num_rows();
        }
        Ok(rows)
    }

    #[test]
    fn a_range_past_the_end_of_the_file_is_an_error_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, three_rows()).unwrap();
        let file = CheckedFile::new(std::fs::File::open(&path).unwrap()).unwrap();
        let len = file.len();
        assert_eq!(file.get_bytes(0, 4).unwrap().as_ref(), b"PAR1");
        for (start, length) in [(0, 1usize << 40), (len - 2, 4), (u64::MAX, 1)] {
            let error = file.get_bytes(start, length).unwrap_err().to_string();
            assert!(error.contains("bytes at offset"), "{error}");
        }
        assert!(file.get_read(len + 1).is_err());
        assert_eq!(read_all(&three_rows()), Ok(3));
    }

    #[test]
    fn an_embedded_schema_the_decoder_panics_on_is_a_format_error() {
        // Found by the parquet fuzz target: the Arrow schema a Parquet footer carries is
        // decoded by arrow-ipc, which panics on an integer type of width 0.
        let crash = include_bytes!("../../../fuzz/corpus/parquet/regression-int-width-0");
        let error = read_all(crash).unwrap_err();
        assert!(error.contains("Parquet"), "{error}");
    }

    #[test]
    fn a_footer_that_claims_two_billion_row_groups_is_an_error() {
        let good = three_rows();
        let footer_len =
            u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().unwrap());
        let footer_start = good.len() - 8 - footer_len as usize;
        let mut footer = good[footer_start..good.len() - 8].to_vec();
        // num_rows (field 3, i64 zigzag 3 = 6), then row_groups (field 4, a list of one struct).
        let at = footer
            .windows(4)
            .position(|w| w == [0x16, 0x06, 0x19, 0x1c])
            .expect("num_rows and the row group list");
        footer.splice(at + 3..at + 4, [0xfc, 0xff, 0xff, 0xff, 0xff, 0x07]);
        let mut lying = good[..footer_start].to_vec();
        lying.extend(&footer);
        lying.extend((footer.len() as u32).to_le_bytes());
        lying.extend(b"PAR1");
        let error = read_all(&lying).unwrap_err();
        assert!(error.contains("Parquet"), "{error}");
    }
}
