//! Arrow IPC streams, read through [`CheckedIpcRead`] so that no declared length is
//! believed before it is checked.

use std::io::Read;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::reader::StreamReader;

use super::{normalized_schema, typed_raw_batch};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// Reads an Arrow IPC stream as typed batches, renaming columns to normalized names.
/// Positions are row numbers, 1-based.
pub(super) struct ArrowIpcReader<R: Read> {
    path: String,
    source: Arc<str>,
    reader: StreamReader<CheckedIpcRead<R>>,
    schema: Arc<Schema>,
    rows_read: u64,
    progress: ReadProgress,
    /// Set after an error: the decoder is not asked again.
    failed: bool,
}

/// How errors name the format.
const FORMAT: &str = "Arrow IPC stream";

impl<R: Read> ArrowIpcReader<R> {
    /// Reads `input`, of `total` bytes when that is known (a file, a body in memory).
    pub(super) fn new(
        path: String,
        input: R,
        total: Option<u64>,
        progress: ReadProgress,
    ) -> Result<Self, SourceError> {
        let reader = super::contained(&path, FORMAT, || {
            StreamReader::try_new(CheckedIpcRead::new(input, total), None)
                .map_err(|e| e.to_string())
        })?;
        let source_schema = reader.schema();
        let schema = normalized_schema(&source_schema);
        Ok(Self {
            source: path.as_str().into(),
            path,
            reader,
            schema,
            rows_read: 0,
            progress,
            failed: false,
        })
    }
}

impl<R: Read> Iterator for ArrowIpcReader<R> {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let reader = &mut self.reader;
        let batch = match super::contained(&self.path, FORMAT, || {
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
        Some(typed_raw_batch(
            &self.schema,
            &batch,
            &self.source,
            &self.path,
            first,
        ))
    }
}

impl<R: Read + Send> RawBatchReader for ArrowIpcReader<R> {
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

/// The largest metadata part of one IPC message: a schema of thousands of columns is far
/// smaller.
const MAX_METADATA_BYTES: usize = 16 << 20;
/// The largest body of one IPC message (a record batch), compressed or not, and the most its
/// compressed buffers may declare they unpack to.
pub(crate) const MAX_BODY_BYTES: u64 = 1 << 30;
/// The IPC continuation marker that precedes each message's metadata length.
const CONTINUATION: [u8; 4] = [0xff; 4];

/// A reader of an Arrow IPC stream that checks each message's declared lengths before the
/// Arrow reader sees them.
///
/// arrow-ipc allocates a message's body (`bodyLength`, an `i64` from the input) and every
/// compressed buffer's declared size before reading them, and a failed allocation aborts
/// the process. This reader reads each message's length and metadata ahead, refuses a
/// metadata part over [`MAX_METADATA_BYTES`], a body longer than what is left of the input
/// (when its size is known) or over [`MAX_BODY_BYTES`], and, for compressed bodies, buffers
/// that claim to unpack to more than [`MAX_BODY_BYTES`] in all. Only then does it hand the
/// bytes on.
pub(crate) struct CheckedIpcRead<R> {
    inner: R,
    /// Input bytes not yet read from `inner`, when its size is known.
    remaining: Option<u64>,
    /// Bytes read ahead and checked, not yet handed on.
    ahead: Vec<u8>,
    at: usize,
    /// Body bytes still to pass through unread.
    body_left: u64,
    ended: bool,
}

impl<R: Read> CheckedIpcRead<R> {
    /// Checks `inner`, which holds `total` bytes when that is known.
    pub(crate) fn new(inner: R, total: Option<u64>) -> Self {
        Self {
            inner,
            remaining: total,
            ahead: Vec::new(),
            at: 0,
            body_left: 0,
            ended: false,
        }
    }

    /// Fills `buf` from `inner` as far as it goes; the bytes read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        fill(&mut self.inner, &mut self.remaining, buf)
    }

    /// Appends `length` bytes of `inner` to `ahead`; the bytes there were.
    fn read_ahead(&mut self, length: usize) -> std::io::Result<usize> {
        let start = self.ahead.len();
        self.ahead.resize(start + length, 0);
        let n = fill(
            &mut self.inner,
            &mut self.remaining,
            &mut self.ahead[start..],
        )?;
        self.ahead.truncate(start + n);
        Ok(n)
    }

    /// Reads the next message's length and metadata ahead and checks them.
    fn read_message_ahead(&mut self) -> std::io::Result<()> {
        self.ahead.clear();
        self.at = 0;
        let mut word = [0u8; 4];
        let n = self.read_up_to(&mut word)?;
        self.ahead.extend_from_slice(&word[..n]);
        if n < 4 {
            // The end of the input, or a truncated length the Arrow reader reports.
            self.ended = true;
            return Ok(());
        }
        if word == CONTINUATION {
            let n = self.read_up_to(&mut word)?;
            self.ahead.extend_from_slice(&word[..n]);
            if n < 4 {
                self.ended = true;
                return Ok(());
            }
        }
        let length = i32::from_le_bytes(word);
        if length == 0 {
            self.ended = true;
            return Ok(());
        }
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l <= MAX_METADATA_BYTES)
            .ok_or_else(|| invalid(format!("a message declares {length} bytes of metadata")))?;
        let start = self.ahead.len();
        let n = self.read_ahead(length)?;
        if n < length {
            return Err(invalid(format!(
                "a message declares {length} bytes of metadata but the input ends after {n}"
            )));
        }
        let message = arrow::ipc::root_as_message(&self.ahead[start..])
            .map_err(|e| invalid(format!("a message's metadata is not valid: {e}")))?;
        let body = u64::try_from(message.bodyLength()).map_err(|_| {
            invalid(format!(
                "a message declares a body of {} bytes",
                message.bodyLength()
            ))
        })?;
        if body > MAX_BODY_BYTES {
            return Err(invalid(format!(
                "a message declares a body of {body} bytes; at most {MAX_BODY_BYTES} are read per message"
            )));
        }
        if let Some(remaining) = self.remaining
            && body > remaining
        {
            return Err(invalid(format!(
                "a message declares a body of {body} bytes but only {remaining} are left"
            )));
        }
        let batch = message
            .header_as_record_batch()
            .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        match batch {
            Some(batch) if batch.compression().is_some() => {
                let buffers: Vec<(u64, u64)> = batch
                    .buffers()
                    .map(|b| {
                        b.iter()
                            .map(|b| (b.offset() as u64, b.length() as u64))
                            .collect()
                    })
                    .unwrap_or_default();
                self.read_compressed_body(body, &buffers)
            }
            _ => {
                self.body_left = body;
                Ok(())
            }
        }
    }

    /// Reads a compressed body ahead and checks what its buffers claim to unpack to: each
    /// buffer starts with its uncompressed length (`-1` when stored as is).
    fn read_compressed_body(&mut self, body: u64, buffers: &[(u64, u64)]) -> std::io::Result<()> {
        let start = self.ahead.len();
        let length = body as usize;
        let n = self.read_ahead(length)?;
        if n < length {
            return Err(invalid(format!(
                "a message declares a body of {body} bytes but the input ends after {n}"
            )));
        }
        let body = &self.ahead[start..];
        let mut unpacked: u64 = 0;
        for &(offset, length) in buffers {
            if length < 8 {
                continue;
            }
            let prefix = usize::try_from(offset)
                .ok()
                .and_then(|o| body.get(o..o.checked_add(8)?))
                .ok_or_else(|| invalid("a compressed buffer lies outside its message".into()))?;
            let declared = i64::from_le_bytes(prefix.try_into().unwrap_or([0; 8]));
            let size = if declared == -1 {
                length - 8
            } else {
                declared.max(0) as u64
            };
            unpacked = unpacked.saturating_add(size);
        }
        if unpacked > MAX_BODY_BYTES {
            return Err(invalid(format!(
                "a compressed message claims to unpack to {unpacked} bytes; at most {MAX_BODY_BYTES} are allowed"
            )));
        }
        Ok(())
    }
}

/// Fills `buf` from `inner` as far as it goes, counting down `remaining`; the bytes read.
fn fill(
    inner: &mut impl Read,
    remaining: &mut Option<u64>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match inner.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(remaining) = remaining {
        *remaining = remaining.saturating_sub(filled as u64);
    }
    Ok(filled)
}

fn invalid(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason)
}

impl<R: Read> Read for CheckedIpcRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.ahead.len() && self.body_left == 0 && !self.ended {
            self.read_message_ahead()?;
        }
        if self.at < self.ahead.len() {
            let n = buf.len().min(self.ahead.len() - self.at);
            buf[..n].copy_from_slice(&self.ahead[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        if self.body_left > 0 {
            let want = buf
                .len()
                .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut buf[..want])?;
            self.body_left -= n as u64;
            if let Some(remaining) = &mut self.remaining {
                *remaining = remaining.saturating_sub(n as u64);
            }
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};
    use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn stream(options: IpcWriteOptions) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut writer = StreamWriter::try_new_with_options(&mut out, &schema, options).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        out
    }

    fn rows(bytes: &[u8], total: Option<u64>) -> Result<usize, String> {
        let reader = StreamReader::try_new(CheckedIpcRead::new(bytes, total), None)
            .map_err(|e| e.to_string())?;
        let mut rows = 0;
        for batch in reader {
            rows += batch.map_err(|e| e.to_string())?.num_rows();
        }
        Ok(rows)
    }

    /// The offset of the first record batch message's `bodyLength` in `bytes`.
    fn body_length_at(bytes: &[u8]) -> usize {
        let mut at = 0;
        loop {
            let length = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            let meta = &bytes[at + 8..at + 8 + length];
            let message = arrow::ipc::root_as_message(meta).unwrap();
            let body = message.bodyLength();
            if message.header_as_record_batch().is_some() {
                let needle = body.to_le_bytes();
                let inside = meta.windows(8).position(|w| w == needle).unwrap();
                return at + 8 + inside;
            }
            at += 8 + length + body as usize;
        }
    }

    #[test]
    fn a_valid_stream_passes_unchanged_whole_or_compressed() {
        let plain = stream(IpcWriteOptions::default());
        assert_eq!(rows(&plain, Some(plain.len() as u64)), Ok(1000));
        assert_eq!(rows(&plain, None), Ok(1000));
        let zstd = stream(
            IpcWriteOptions::default()
                .try_with_compression(Some(arrow::ipc::CompressionType::ZSTD))
                .unwrap(),
        );
        assert_eq!(rows(&zstd, Some(zstd.len() as u64)), Ok(1000));
    }

    #[test]
    fn a_body_longer_than_the_input_is_refused_before_it_is_allocated() {
        let mut lying = stream(IpcWriteOptions::default());
        let at = body_length_at(&lying);
        lying[at..at + 8].copy_from_slice(&(1i64 << 39).to_le_bytes());
        let known = rows(&lying, Some(lying.len() as u64)).unwrap_err();
        assert!(known.contains("declares a body"), "{known}");
        let unknown = rows(&lying, None).unwrap_err();
        assert!(unknown.contains("at most"), "{unknown}");
    }

    #[test]
    fn a_compressed_buffer_that_claims_a_huge_size_is_refused() {
        let mut lying = stream(
            IpcWriteOptions::default()
                .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))
                .unwrap(),
        );
        // The batch's only data buffer is last: its 8-byte uncompressed length sits at the
        // start of the body's last buffer. Claim 256 GiB for every 8-byte prefix that holds
        // the true length (8,000 bytes for 1,000 Int64 values).
        let needle = 8000i64.to_le_bytes();
        let at = lying.windows(8).rposition(|w| w == needle).unwrap();
        lying[at..at + 8].copy_from_slice(&(1i64 << 38).to_le_bytes());
        let error = rows(&lying, Some(lying.len() as u64)).unwrap_err();
        assert!(error.contains("unpack"), "{error}");
    }

    #[test]
    fn a_schema_the_decoder_panics_on_is_a_format_error() {
        // Found by the arrow_ipc fuzz target: arrow-ipc's schema conversion panics on a field
        // type of NONE ("not implemented").
        let crash = include_bytes!("../../../fuzz/corpus/arrow_ipc/regression-union-type-none");
        let reader = crate::file::open_bytes(
            "crash.arrows",
            bytes::Bytes::from_static(crash),
            &crate::file::FileFormat::ArrowIpc,
        );
        let error = match reader {
            Err(e) => e.to_string(),
            Ok(reader) => reader
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .next()
                .expect("an error"),
        };
        assert!(error.contains("Arrow IPC"), "{error}");
    }

    #[test]
    fn a_huge_metadata_length_is_refused() {
        let mut lying = stream(IpcWriteOptions::default());
        lying[4..8].copy_from_slice(&i32::MAX.to_le_bytes());
        let error = rows(&lying, None).unwrap_err();
        assert!(error.contains("metadata"), "{error}");
    }
}
