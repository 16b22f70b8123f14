use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use arrow::datatypes::{DataType, Field};
use simpul_schemas::{
    FieldError, RAW_ENCODING_JSON, RAW_ENCODING_KEY, RejectedRow, SourcePosition,
};

use super::{BATCH_ROWS, TextColumns, unique_column_names};
use crate::raw::{RawBatch, RawBatchReader, ReadProgress, SourceError};

/// Reads JSON objects (one per line, or the elements of one top-level array) into columns of
/// JSON texts, marked `simpul.encoding = json`.
/// Columns are the keys of the first batch in order of appearance; later keys are added
/// to the batches they appear in. Lines or elements that are not JSON objects are malformed.
pub(super) struct JsonReader<R: Read> {
    path: String,
    /// The path as every row's source position shares it.
    source: std::sync::Arc<str>,
    elements: Elements<R>,
    columns: Vec<String>,
    progress: ReadProgress,
    done: bool,
}

enum Elements<R: Read> {
    Lines { input: BufReader<R>, line: u64 },
    Array(ArraySplitter<R>),
}

/// One record's text and the line it starts on, or why it could not be cut out.
type Element = (u64, Result<Vec<u8>, String>);

impl<R: Read> Elements<R> {
    fn next_element(&mut self, path: &str) -> Result<Option<Element>, SourceError> {
        match self {
            Elements::Lines { input, line } => loop {
                let mut buf = Vec::new();
                let n = input
                    .read_until(b'\n', &mut buf)
                    .map_err(|source| SourceError::Io {
                        path: path.to_string(),
                        source,
                    })?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some((*line, Ok(buf))));
            },
            Elements::Array(splitter) => {
                splitter.next_element().map_err(|source| SourceError::Io {
                    path: path.to_string(),
                    source,
                })
            }
        }
    }
}

impl<R: Read + Send> JsonReader<R> {
    pub(super) fn ndjson(path: String, input: R, progress: ReadProgress) -> Self {
        Self {
            source: path.as_str().into(),
            path,
            elements: Elements::Lines {
                input: BufReader::new(input),
                line: 0,
            },
            columns: Vec::new(),
            progress,
            done: false,
        }
    }

    pub(super) fn array(
        path: String,
        input: R,
        progress: ReadProgress,
    ) -> Result<Self, SourceError> {
        let splitter =
            ArraySplitter::open(BufReader::new(input)).map_err(|reason| SourceError::Format {
                path: path.clone(),
                format: "JSON",
                reason,
            })?;
        Ok(Self {
            source: path.as_str().into(),
            path,
            elements: Elements::Array(splitter),
            columns: Vec::new(),
            progress,
            done: false,
        })
    }

    fn read_batch(&mut self) -> Result<RawBatch, SourceError> {
        let mut objects: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
        let mut positions = Vec::new();
        let mut malformed = Vec::new();
        while objects.len() < BATCH_ROWS && malformed.len() < BATCH_ROWS {
            let Some((line, element)) = self.elements.next_element(&self.path)? else {
                self.done = true;
                break;
            };
            let position = SourcePosition {
                source: self.source.clone(),
                line,
            };
            match element.and_then(|bytes| parse_object(&bytes)) {
                Ok(object) => {
                    objects.push(object);
                    positions.push(position);
                }
                Err(reason) => malformed.push(RejectedRow {
                    position,
                    record: serde_json::Value::Null,
                    errors: vec![FieldError::record("type", reason)],
                }),
            }
        }
        let keys = self.batch_columns(&objects);
        let batch = to_text_batch(&keys, &objects).map_err(|source| SourceError::Arrow {
            path: self.path.clone(),
            source,
        })?;
        Ok(RawBatch {
            batch,
            positions,
            malformed,
        })
    }

    /// The first batch fixes the columns; later batches add keys they introduce.
    fn batch_columns(
        &mut self,
        objects: &[serde_json::Map<String, serde_json::Value>],
    ) -> Vec<(String, String)> {
        let pairs = keyed_columns(objects);
        if self.columns.is_empty() {
            self.columns = pairs.iter().map(|(n, _)| n.clone()).collect();
        }
        pairs
    }
}

/// The keys of a batch of objects in order of first appearance, each with its normalised
/// column name: `(column, key)`.
fn keyed_columns(objects: &[serde_json::Map<String, serde_json::Value>]) -> Vec<(String, String)> {
    let mut seen: Vec<String> = Vec::new();
    for object in objects {
        for key in object.keys() {
            if !seen.contains(key) {
                seen.push(key.clone());
            }
        }
    }
    let normalized = unique_column_names(seen.iter().map(String::as_str));
    normalized.into_iter().zip(seen).collect()
}

/// A raw batch of JSON-text columns from objects an API returned, one column per key.
pub(crate) fn objects_batch(
    objects: &[serde_json::Map<String, serde_json::Value>],
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    to_text_batch(&keyed_columns(objects), objects)
}

fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!(
            "expected a JSON object, found {}",
            json_kind(&other)
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// A JSON value's kind in words (`a number`), for messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Cells are written as JSON texts (`"3214"`, `12`, `null`) so that JSON types survive to
/// validation; a key the record lacks is a null cell.
fn to_text_batch(
    columns: &[(String, String)],
    objects: &[serde_json::Map<String, serde_json::Value>],
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    let mut builders = TextColumns::new(columns.len());
    // One buffer for every cell's JSON text instead of a string per cell.
    let mut text = Vec::new();
    for object in objects {
        for (i, (_, key)) in columns.iter().enumerate() {
            let builder = &mut builders.builders[i];
            match object.get(key) {
                None => builder.append_null(),
                Some(value) => {
                    text.clear();
                    serde_json::to_writer(&mut text, value)
                        .map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e)))?;
                    builder.append_value(String::from_utf8_lossy(&text));
                }
            }
        }
    }
    let encoding = HashMap::from([(RAW_ENCODING_KEY.to_string(), RAW_ENCODING_JSON.to_string())]);
    let fields = columns
        .iter()
        .map(|(name, _)| Field::new(name, DataType::Utf8, true).with_metadata(encoding.clone()))
        .collect();
    builders.finish(fields)
}

impl<R: Read + Send> Iterator for JsonReader<R> {
    type Item = Result<RawBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_batch() {
            Ok(batch) if batch.records_read() == 0 => None,
            other => Some(other),
        }
    }
}

impl<R: Read + Send> RawBatchReader for JsonReader<R> {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn progress(&self) -> ReadProgress {
        self.progress.clone()
    }

    fn omits_null_columns(&self) -> bool {
        true
    }
}

/// Cuts the elements out of one top-level JSON array without holding the whole array, so a
/// large file streams in constant memory. Each element is parsed separately afterwards.
struct ArraySplitter<R: Read> {
    input: BufReader<R>,
    line: u64,
    finished: bool,
}

impl<R: Read> ArraySplitter<R> {
    fn open(mut input: BufReader<R>) -> Result<Self, String> {
        let mut line = 1;
        loop {
            let byte = read_byte(&mut input).map_err(|e| e.to_string())?;
            match byte {
                Some(b'\n') => line += 1,
                Some(b) if b.is_ascii_whitespace() => {}
                Some(0xEF) => {
                    let mut rest = [0u8; 2];
                    input.read_exact(&mut rest).map_err(|e| e.to_string())?;
                    if rest != [0xBB, 0xBF] {
                        return Err("expected a JSON array of objects".into());
                    }
                }
                Some(b'[') => {
                    return Ok(Self {
                        input,
                        line,
                        finished: false,
                    });
                }
                Some(_) => return Err("expected a JSON array of objects at the top level".into()),
                None => return Err("the file is empty; expected a JSON array".into()),
            }
        }
    }

    fn next_element(&mut self) -> std::io::Result<Option<Element>> {
        if self.finished {
            return Ok(None);
        }
        let mut element = Vec::new();
        let mut start_line = self.line;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let Some(byte) = read_byte(&mut self.input)? else {
                self.finished = true;
                if element.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some((
                    start_line,
                    Err("unexpected end of file inside the array".into()),
                )));
            };
            if byte == b'\n' {
                self.line += 1;
            }
            if in_string {
                element.push(byte);
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b',' | b']' if depth == 0 => {
                    self.finished = byte == b']';
                    if element.iter().all(u8::is_ascii_whitespace) {
                        if self.finished {
                            return Ok(None);
                        }
                        return Ok(Some((start_line, Err("empty element in the array".into()))));
                    }
                    return Ok(Some((start_line, Ok(element))));
                }
                b if b.is_ascii_whitespace() && element.is_empty() => {
                    start_line = self.line;
                }
                b => {
                    match b {
                        b'"' => in_string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    element.push(b);
                }
            }
        }
    }
}

fn read_byte<R: Read>(input: &mut BufReader<R>) -> std::io::Result<Option<u8>> {
    let buf = input.fill_buf()?;
    let Some(&byte) = buf.first() else {
        return Ok(None);
    };
    input.consume(1);
    Ok(Some(byte))
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;

    use super::*;

    fn collect(reader: JsonReader<&[u8]>) -> Vec<RawBatch> {
        reader.collect::<Result<Vec<_>, _>>().unwrap()
    }

    #[test]
    fn reads_ndjson_keeping_json_text_and_line_numbers() {
        let text = b"{\"kode\":\"32.14\",\"jumlah\":12}\n\n{\"kode\":\"32.15\",\"jumlah\":null}\nnot json\n";
        let batches = collect(JsonReader::ndjson(
            "t.ndjson".into(),
            &text[..],
            ReadProgress::default(),
        ));
        let batch = &batches[0];
        assert_eq!(batch.batch.num_rows(), 2);
        assert_eq!(
            batch.batch.column(0).as_string::<i32>().value(0),
            "\"32.14\""
        );
        assert_eq!(batch.batch.column(1).as_string::<i32>().value(0), "12");
        assert_eq!(
            batch.batch.column(1).as_string::<i32>().value(1),
            "null",
            "explicit null"
        );
        assert_eq!(
            batch.batch.schema().field(0).metadata()[RAW_ENCODING_KEY],
            RAW_ENCODING_JSON
        );
        assert_eq!(batch.positions[1].line, 3);
        assert_eq!(batch.malformed[0].position.line, 4);
    }

    #[test]
    fn splits_a_json_array_with_nested_values_and_strings_with_brackets() {
        let text = br#"[
  {"a": "x,]}", "b": {"c": [1, 2]}},
  {"a": "y"},
  5
]"#;
        let reader =
            JsonReader::array("t.json".into(), &text[..], ReadProgress::default()).unwrap();
        let batches = collect(reader);
        let batch = &batches[0];
        assert_eq!(batch.batch.num_rows(), 2);
        assert_eq!(
            batch.batch.column(0).as_string::<i32>().value(0),
            r#""x,]}""#
        );
        assert_eq!(
            batch.batch.column(1).as_string::<i32>().value(0),
            r#"{"c":[1,2]}"#
        );
        assert!(
            batch.batch.column(1).is_null(1),
            "a missing key is a null cell"
        );
        assert_eq!(
            batch.positions.iter().map(|p| p.line).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(batch.malformed[0].position.line, 4);
        assert_eq!(
            batch.malformed[0].errors[0].message,
            "expected a JSON object, found a number"
        );
    }

    #[test]
    fn refuses_a_top_level_object() {
        let result = JsonReader::array(
            "t.json".into(),
            &b"{\"data\": []}"[..],
            ReadProgress::default(),
        );
        assert!(matches!(result, Err(SourceError::Format { .. })));
    }
}
