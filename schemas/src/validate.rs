//! The vectorized validator: raw batches in, typed valid rows and rejected rows out.
//!
//! Each property is parsed and checked column by column. The rows that pass and still need
//! keywords the engine does not implement are handed to `jsonschema`, one by one, with only
//! the fields the residual schema can see.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, new_null_array};
use arrow::compute::FilterBuilder;
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Map, Number, Value};

use crate::compile::{Check, CompiledSchema, Condition, JsonKind, PropertyPlan};
use crate::formats::Format;
use crate::keywords::MISSING_LOCATION;
use crate::parsed::{Parsed, ParsedColumn, State, Values};
use crate::raw::{RAW_ENCODING_JSON, RAW_ENCODING_KEY};
use crate::reject::{FieldError, RejectedRow, SourcePosition};

/// The outcome of validating one raw batch.
#[derive(Debug)]
pub struct Validation {
    /// The rows that passed, typed and normalised as the schema's Arrow schema.
    pub valid: RecordBatch,
    /// The rows that did not pass, with their original values and every reason.
    pub rejected: Vec<RejectedRow>,
}

impl Parsed<'_> {
    fn to_json(&self) -> Value {
        match self {
            Parsed::Text(s) => Value::String(s.to_string()),
            Parsed::Integer(i) => Value::Number((*i).into()),
            Parsed::Number(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Parsed::Boolean(b) => Value::Bool(*b),
            Parsed::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }

    /// Whether the value has this JSON Schema type (`number` includes integers, `integer`
    /// includes floats without a fractional part).
    fn has_json_type(&self, name: &str) -> bool {
        match (self, name) {
            (Parsed::Text(_), "string") => true,
            (Parsed::Integer(_), "integer" | "number") => true,
            (Parsed::Number(f), "number") => f.is_finite(),
            (Parsed::Number(f), "integer") => f.fract() == 0.0,
            (Parsed::Boolean(_), "boolean") => true,
            (Parsed::Json(text), kind) => match text.trim_start().as_bytes().first() {
                Some(b'[') => kind == "array",
                Some(b'{') => kind == "object",
                Some(b'"') => kind == "string",
                Some(b't' | b'f') => kind == "boolean",
                Some(b'n') => kind == "null",
                Some(_) => serde_json::from_str::<Number>(text).is_ok_and(|n| {
                    kind == "number" || (kind == "integer" && json_integer(&n).is_some())
                }),
                None => false,
            },
            _ => false,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Parsed::Integer(i) => Some(*i as f64),
            Parsed::Number(f) => Some(*f),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Parsed::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A short rendering for messages.
    fn shown(&self) -> String {
        let text = match self {
            Parsed::Text(s) | Parsed::Json(s) => s.to_string(),
            Parsed::Integer(i) => i.to_string(),
            Parsed::Number(f) => f.to_string(),
            Parsed::Boolean(b) => b.to_string(),
        };
        shorten(&text)
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Errors found so far, in the order found, and which rows they refuse. Most rows have
/// none, so nothing is kept per row but a flag.
struct RowErrors {
    found: Vec<(usize, FieldError)>,
    refused: Vec<bool>,
}

impl RowErrors {
    fn new(rows: usize) -> Self {
        Self {
            found: Vec::new(),
            refused: vec![false; rows],
        }
    }

    fn rows(&self) -> usize {
        self.refused.len()
    }

    fn add(&mut self, row: usize, error: FieldError) {
        self.refused[row] = true;
        self.found.push((row, error));
    }

    fn has(&self, row: usize) -> bool {
        self.refused[row]
    }

    /// Each refused row with its errors, in row order; a row's errors keep the order found.
    fn by_row(mut self) -> Vec<(usize, Vec<FieldError>)> {
        self.found.sort_by_key(|(row, _)| *row);
        let mut grouped: Vec<(usize, Vec<FieldError>)> = Vec::new();
        for (row, error) in self.found {
            match grouped.last_mut() {
                Some((last, errors)) if *last == row => errors.push(error),
                _ => grouped.push((row, vec![error])),
            }
        }
        grouped
    }
}

impl CompiledSchema {
    /// Validates a raw batch: text columns (CSV), JSON-text columns (JSON sources, marked
    /// with `simpul.encoding = json`) or typed columns (Parquet). `positions[i]` locates row
    /// `i` in its source.
    pub fn validate(
        &self,
        raw: &RecordBatch,
        positions: &[SourcePosition],
    ) -> Result<Validation, ArrowError> {
        let rows = raw.num_rows();
        let mut errors = RowErrors::new(rows);
        let raw_schema = raw.schema();
        let today = crate::formats::today_wib();
        let sources: Vec<Option<(&ArrayRef, bool)>> = self
            .properties
            .iter()
            .map(|plan| {
                raw_schema.index_of(&plan.name).ok().map(|i| {
                    let json = raw_schema
                        .field(i)
                        .metadata()
                        .get(RAW_ENCODING_KEY)
                        .map(String::as_str)
                        == Some(RAW_ENCODING_JSON);
                    (raw.column(i), json)
                })
            })
            .collect();
        let mut columns = Vec::with_capacity(self.properties.len());
        let parsed = per_column(self.properties.len(), rows, |i| {
            parse_and_check(&self.properties[i], sources[i], rows, today)
        });
        for result in parsed {
            let (column, found) = result?;
            for (row, error) in found {
                errors.add(row, error);
            }
            columns.push(column);
        }
        self.check_unknown_columns(raw, &mut errors);
        self.check_coordinates(&columns, &mut errors);
        self.check_conditionals(&columns, &mut errors);
        self.run_fallback(&columns, &mut errors);
        // Last, so that only rows valid in every other way claim their key.
        self.check_primary_key(&columns, positions, &mut errors);
        self.assemble(raw, positions, columns, errors)
    }

    fn check_unknown_columns(&self, raw: &RecordBatch, errors: &mut RowErrors) {
        if self.additional_properties {
            return;
        }
        for (field, column) in raw.schema().fields().iter().zip(raw.columns()) {
            if self.properties.iter().any(|p| &p.name == field.name()) {
                continue;
            }
            for row in (0..raw.num_rows()).filter(|&r| column.is_valid(r)) {
                errors.add(
                    row,
                    FieldError::field(
                        field.name(),
                        "additionalProperties",
                        format!("column '{}' is not in schema {}", field.name(), self.name),
                    ),
                );
            }
        }
    }

    fn check_coordinates(&self, columns: &[ParsedColumn], errors: &mut RowErrors) {
        let Some((lat, lng)) = self.coordinates else {
            return;
        };
        for row in 0..errors.rows() {
            let zero =
                |column: &ParsedColumn| column.value(row).and_then(|v| v.as_f64()) == Some(0.0);
            if zero(&columns[lat]) && zero(&columns[lng]) {
                errors.add(row, FieldError::record("x-koordinat", MISSING_LOCATION));
            }
        }
    }

    /// Schema-level `if`/`then`/`else`, vectorized: the condition is evaluated per row on the
    /// parsed columns, and the matching branch's checks run on the rows it selects.
    fn check_conditionals(&self, columns: &[ParsedColumn], errors: &mut RowErrors) {
        let today = crate::formats::today_wib();
        for conditional in &self.conditionals {
            for row in 0..errors.rows() {
                let holds = condition_holds(&conditional.condition, columns, row, today);
                let branch = if holds {
                    &conditional.then
                } else {
                    &conditional.otherwise
                };
                if let Some(branch) = branch {
                    for error in condition_errors(branch, &self.properties, columns, row, today) {
                        errors.add(row, error);
                    }
                }
            }
        }
    }

    fn check_primary_key(
        &self,
        columns: &[ParsedColumn],
        positions: &[SourcePosition],
        errors: &mut RowErrors,
    ) {
        if self.primary_key.is_empty() {
            return;
        }
        let key_columns: Vec<&ParsedColumn> =
            self.primary_key.iter().map(|&i| &columns[i]).collect();
        let hasher = foldhash::fast::FixedState::with_seed(3214);
        // The hash of a row's key, without gathering its parts; `None` when a part is missing.
        let key_hash = |row: usize| -> Option<u64> {
            let mut state = hasher.build_hasher();
            for column in &key_columns {
                key_part(column, row)?.hash(&mut state);
            }
            Some(state.finish())
        };
        let same_key = |a: usize, b: usize| {
            key_columns
                .iter()
                .all(|column| key_part(column, a) == key_part(column, b))
        };
        // Rows by the hash of their key; the keys are compared on a hit, and keys whose
        // hashes collide without being equal go to an exact map.
        let mut first_by_hash: HashMap<u64, usize, foldhash::fast::FixedState> =
            HashMap::with_capacity_and_hasher(errors.rows(), hasher.clone());
        let mut exact: HashMap<Vec<String>, usize> = HashMap::new();
        for row in 0..errors.rows() {
            if errors.has(row) {
                continue;
            }
            let Some(hash) = key_hash(row) else { continue };
            let first = match first_by_hash.entry(hash) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(row);
                    continue;
                }
                std::collections::hash_map::Entry::Occupied(seen) => *seen.get(),
            };
            let parts = |row: usize| -> Vec<String> {
                key_columns
                    .iter()
                    .map(|column| key_part(column, row).unwrap_or_default().into_owned())
                    .collect()
            };
            let duplicate_of = if same_key(first, row) {
                Some(first)
            } else {
                match exact.entry(parts(row)) {
                    std::collections::hash_map::Entry::Occupied(earlier) => Some(*earlier.get()),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(row);
                        None
                    }
                }
            };
            if let Some(first) = duplicate_of {
                let names: Vec<&str> = self
                    .primary_key
                    .iter()
                    .map(|&i| self.properties[i].name.as_str())
                    .collect();
                let line = positions.get(first).map_or(first as u64 + 1, |p| p.line);
                errors.add(
                    row,
                    FieldError::record(
                        "x-primary-key",
                        format!(
                            "duplicate primary key ({} = {}) in this batch; it first appears at line {line}",
                            names.join(", "),
                            parts(row).iter().map(|p| shorten(p)).collect::<Vec<_>>().join(", ")
                        ),
                    ),
                );
            }
        }
    }

    fn run_fallback(&self, columns: &[ParsedColumn], errors: &mut RowErrors) {
        let Some(fallback) = &self.fallback else {
            return;
        };
        let everything: Vec<usize> = (0..self.properties.len()).collect();
        let visible = fallback.mentioned.as_deref().unwrap_or(&everything);
        for row in 0..errors.rows() {
            if errors.has(row) {
                continue;
            }
            let needed = fallback.all_rows
                || fallback
                    .columns
                    .iter()
                    .any(|&i| matches!(columns[i].states[row], State::Value | State::Null));
            if !needed {
                continue;
            }
            let mut record = Map::with_capacity(visible.len());
            for &i in visible {
                match columns[i].states[row] {
                    State::Value => {
                        if let Some(value) = columns[i].value(row) {
                            record.insert(self.properties[i].name.clone(), value.to_json());
                        }
                    }
                    State::Null => {
                        record.insert(self.properties[i].name.clone(), Value::Null);
                    }
                    State::Absent | State::Invalid => {}
                }
            }
            let record = Value::Object(record);
            for error in fallback.validator.iter_errors(&record) {
                errors.add(
                    row,
                    FieldError {
                        pointer: error.instance_path().as_str().to_string(),
                        keyword: error.kind().keyword().to_string(),
                        message: error.to_string(),
                    },
                );
            }
        }
    }

    fn assemble(
        &self,
        raw: &RecordBatch,
        positions: &[SourcePosition],
        columns: Vec<ParsedColumn>,
        errors: RowErrors,
    ) -> Result<Validation, ArrowError> {
        let rows = raw.num_rows();
        // The refused rows are dropped from each column as it is built.
        let keep = (!errors.found.is_empty()).then(|| {
            let kept_mask = BooleanArray::from_iter(errors.refused.iter().map(|&r| Some(!r)));
            FilterBuilder::new(&kept_mask).optimize().build()
        });
        let slots: Vec<std::sync::Mutex<Option<ParsedColumn>>> = columns
            .into_iter()
            .map(|c| std::sync::Mutex::new(Some(c)))
            .collect();
        let refused = keep
            .as_ref()
            .map(|predicate| (errors.refused.as_slice(), predicate));
        let arrays = per_column(slots.len(), rows, |i| {
            let column = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
            match column {
                Some(column) => column.into_array(&self.properties[i], refused),
                None => Ok(new_null_array(
                    &self.properties[i].storage_type(),
                    keep.as_ref().map_or(rows, |k| k.count()),
                )),
            }
        })
        .into_iter()
        .collect::<Result<Vec<ArrayRef>, ArrowError>>()?;
        let valid = RecordBatch::try_new(self.arrow.clone(), arrays)?;
        if errors.found.is_empty() {
            return Ok(Validation {
                valid,
                rejected: Vec::new(),
            });
        }
        let records = original_records(raw)?;
        let rejected = errors
            .by_row()
            .into_iter()
            .map(|(row, errors)| RejectedRow {
                position: positions.get(row).cloned().unwrap_or(SourcePosition {
                    source: "".into(),
                    line: row as u64 + 1,
                }),
                record: records(row),
                errors,
            })
            .collect();
        Ok(Validation { valid, rejected })
    }
}

/// The original values of each row as a JSON object, for the rejects table.
fn original_records(raw: &RecordBatch) -> Result<impl Fn(usize) -> Value + '_, ArrowError> {
    let options = FormatOptions::default();
    let formatters = raw
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = raw.schema();
    let json_columns: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.metadata().get(RAW_ENCODING_KEY).map(String::as_str) == Some(RAW_ENCODING_JSON))
        .collect();
    Ok(move |row: usize| {
        let mut object = Map::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let column = raw.column(i);
            let value = if column.is_null(row) {
                Value::Null
            } else if json_columns[i] {
                serde_json::from_str(column.as_string::<i32>().value(row)).unwrap_or(Value::Null)
            } else if let Some(text) = column.as_string_opt::<i32>() {
                Value::String(text.value(row).to_string())
            } else {
                Value::String(formatters[i].value(row).to_string())
            };
            object.insert(field.name().clone(), value);
        }
        Value::Object(object)
    })
}

/// A cell's part of a primary key: its normal form, or its value; `None` when it has no value.
fn key_part(column: &ParsedColumn, row: usize) -> Option<Cow<'_, str>> {
    if let Some(text) = column.stored_text(row) {
        return Some(Cow::Borrowed(text));
    }
    column
        .value(row)
        .map(|value| Cow::Owned(value.to_json().to_string()))
}

fn type_error(plan: &PropertyPlan, message: impl Into<String>) -> FieldError {
    FieldError::field(&plan.name, "type", message)
}

/// The errors one column's parsing and checks found, in the order they were found.
type ColumnErrors = Vec<(usize, FieldError)>;

/// Parses a raw column into values of the property's type and runs the property's checks,
/// returning the column and the type, required and check errors found.
fn parse_and_check(
    plan: &PropertyPlan,
    source: Option<(&ArrayRef, bool)>,
    rows: usize,
    today: NaiveDate,
) -> Result<(ParsedColumn, ColumnErrors), ArrowError> {
    let mut errors = ColumnErrors::new();
    let mut column = parse_column(plan, source, rows, &mut errors)?;
    check_column(plan, &mut column, today, &mut errors);
    Ok((column, errors))
}

/// Below this many rows a batch is validated on the calling thread alone.
const PARALLEL_ROWS: usize = 4096;

/// `work(0..count)`, in order. Columns are independent, so for large batches they are
/// spread over the machine's cores; the result is the same either way.
fn per_column<R: Send>(count: usize, rows: usize, work: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let workers = if rows >= PARALLEL_ROWS {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(count)
    } else {
        1
    };
    if workers <= 1 {
        return (0..count).map(work).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::Mutex<Option<R>>> =
        (0..count).map(|_| std::sync::Mutex::new(None)).collect();
    let worker = || {
        loop {
            let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if index >= count {
                break;
            }
            let result = work(index);
            *done[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(worker);
        }
        worker();
    });
    // Every index below `count` was taken by exactly one worker, and the scope waited
    // for all of them.
    done.into_iter()
        .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// Parses a raw column into values of the property's type, recording type and required
/// errors.
fn parse_column(
    plan: &PropertyPlan,
    source: Option<(&ArrayRef, bool)>,
    rows: usize,
    errors: &mut ColumnErrors,
) -> Result<ParsedColumn, ArrowError> {
    let column = match source {
        None => ParsedColumn::new(plan, rows, None),
        Some((array, json)) if matches!(array.data_type(), DataType::Utf8) => {
            let text = array.as_string::<i32>();
            let mut column = ParsedColumn::new(plan, rows, Some((text.clone(), json)));
            let plain_text =
                !json && plan.kind == JsonKind::String && plan.format() != Some(Format::DateTime);
            for row in (0..rows).filter(|&r| text.is_valid(r)) {
                if plain_text {
                    // The cell is the value.
                    column.states[row] = State::Value;
                    continue;
                }
                let cell = text.value(row);
                let parsed = if json {
                    parse_json_cell(plan, cell)
                } else {
                    parse_text_cell(plan, cell)
                };
                match parsed {
                    Ok(Some(value)) => column.put(row, value),
                    Ok(None) => column.states[row] = State::Null,
                    Err(message) => {
                        column.states[row] = State::Invalid;
                        errors.push((row, type_error(plan, message)));
                    }
                }
            }
            column
        }
        Some((array, _)) => parse_typed_column(plan, array, errors)?,
    };
    for (row, state) in column.states.iter().enumerate() {
        match state {
            State::Absent if plan.required => errors.push((
                row,
                FieldError::field(&plan.name, "required", "is required"),
            )),
            State::Null if !plan.nullable => {
                errors.push((row, type_error(plan, "must not be null")))
            }
            _ => {}
        }
    }
    Ok(column)
}

/// A cell from a JSON source, written as JSON text: strict JSON types.
fn parse_json_cell<'a>(plan: &PropertyPlan, cell: &'a str) -> Result<Option<Parsed<'a>>, String> {
    let found = |what: &str| {
        format!(
            "must be a {} but is {what} ({})",
            plan.kind.describe(),
            shorten(cell)
        )
    };
    let first = cell.as_bytes().first().copied().unwrap_or(b' ');
    match first {
        b'n' if cell == "null" => Ok(None),
        b'"' => match plan.kind {
            JsonKind::String => {
                let text = if cell.contains('\\') {
                    Cow::Owned(
                        serde_json::from_str::<String>(cell)
                            .map_err(|e| format!("is not valid JSON text: {e}"))?,
                    )
                } else {
                    Cow::Borrowed(&cell[1..cell.len().saturating_sub(1)])
                };
                Ok(Some(Parsed::Text(text)))
            }
            JsonKind::Any => Ok(Some(Parsed::Json(Cow::Borrowed(cell)))),
            _ => Err(found("text")),
        },
        b't' | b'f' => match (plan.kind, cell) {
            (JsonKind::Boolean, "true") => Ok(Some(Parsed::Boolean(true))),
            (JsonKind::Boolean, "false") => Ok(Some(Parsed::Boolean(false))),
            (JsonKind::Any, _) => Ok(Some(Parsed::Json(Cow::Borrowed(cell)))),
            (JsonKind::String, "true" | "false") if plan.text_from_scalars => {
                Ok(Some(Parsed::Text(Cow::Owned(cell.to_string()))))
            }
            _ => Err(found("a boolean")),
        },
        b'[' | b'{' => {
            let expected = if first == b'[' {
                JsonKind::Array
            } else {
                JsonKind::Object
            };
            if plan.kind == expected || plan.kind == JsonKind::Any {
                Ok(Some(Parsed::Json(Cow::Borrowed(cell))))
            } else {
                Err(found(if first == b'[' {
                    "an array"
                } else {
                    "an object"
                }))
            }
        }
        _ => {
            let number: Number = serde_json::from_str(cell)
                .map_err(|_| format!("is not valid JSON ({})", shorten(cell)))?;
            match plan.kind {
                JsonKind::Integer => json_integer(&number)
                    .map(|i| Some(Parsed::Integer(i)))
                    .ok_or_else(|| {
                        format!("must be a whole number that fits in 64 bits, not {number}")
                    }),
                JsonKind::Number => number
                    .as_f64()
                    .map(|f| Some(Parsed::Number(f)))
                    .ok_or_else(|| format!("{number} is out of range")),
                JsonKind::Any => Ok(Some(Parsed::Json(Cow::Borrowed(cell)))),
                JsonKind::String if plan.text_from_scalars => {
                    Ok(Some(Parsed::Text(Cow::Owned(cell.to_string()))))
                }
                _ => Err(found("a number")),
            }
        }
    }
}

/// A JSON number as a whole number: integers, and floats with no fractional part (JSON
/// Schema 2020-12 counts `1.0` as an integer).
fn json_integer(number: &Number) -> Option<i64> {
    if let Some(i) = number.as_i64() {
        return Some(i);
    }
    let f = number.as_f64()?;
    (f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f))
        .then_some(f as i64)
}

/// A cell from a text source (CSV): read as the property's type, with Indonesian number
/// writing and WIB local times understood.
fn parse_text_cell<'a>(plan: &PropertyPlan, cell: &'a str) -> Result<Option<Parsed<'a>>, String> {
    let not_a = || format!("'{}' is not a {}", shorten(cell), plan.kind.describe());
    Ok(Some(match plan.kind {
        JsonKind::String => match plan.format() {
            Some(Format::DateTime) => Parsed::Text(wib_date_time(cell)),
            _ => Parsed::Text(Cow::Borrowed(cell)),
        },
        JsonKind::Integer => {
            // In a whole-number column, 1.000 is one thousand (Indonesian thousands dots).
            let unsigned = cell.strip_prefix(['-', '+']).unwrap_or(cell);
            let cell_digits: Cow<str> = if thousands(unsigned) {
                Cow::Owned(cell.replace('.', ""))
            } else {
                Cow::Borrowed(cell)
            };
            let cell = cell_digits.as_ref();
            let number = text_number(cell).ok_or_else(not_a)?;
            if number.fract() != 0.0 || !number.is_finite() || number.abs() >= 9.2e18 {
                return Err(not_a());
            }
            match cell.parse::<i64>() {
                Ok(exact) => Parsed::Integer(exact),
                Err(_) => Parsed::Integer(number as i64),
            }
        }
        JsonKind::Number => Parsed::Number(text_number(cell).ok_or_else(not_a)?),
        JsonKind::Boolean => Parsed::Boolean(match cell.to_ascii_lowercase().as_str() {
            "true" | "ya" | "1" => true,
            "false" | "tidak" | "0" => false,
            _ => return Err(not_a()),
        }),
        JsonKind::Array | JsonKind::Object => {
            let expected = if plan.kind == JsonKind::Array {
                '['
            } else {
                '{'
            };
            let parsed: Value = serde_json::from_str(cell).map_err(|_| not_a())?;
            if !cell.starts_with(expected) || !(parsed.is_array() || parsed.is_object()) {
                return Err(not_a());
            }
            Parsed::Json(Cow::Borrowed(cell))
        }
        JsonKind::Any => match serde_json::from_str::<Value>(cell) {
            Ok(_) => Parsed::Json(Cow::Borrowed(cell)),
            Err(_) => Parsed::Json(Cow::Owned(Value::String(cell.to_string()).to_string())),
        },
    }))
}

/// A number as Indonesian files write it: `1234.5`, `1234,5` (decimal comma),
/// `1.063.932` (thousands dots) and `1.063.932,5`. `NaN` and infinities are not numbers.
pub fn text_number(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let normalized: Cow<str> = if let Some((whole, fraction)) = body.split_once(',') {
        if !digits_only(fraction) || !(digits_only(whole) || thousands(whole)) {
            return None;
        }
        Cow::Owned(format!("{}.{fraction}", whole.replace('.', "")))
    } else if body.matches('.').count() > 1 && thousands(body) {
        Cow::Owned(body.replace('.', ""))
    } else {
        Cow::Borrowed(body)
    };
    let valid_chars = normalized
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !valid_chars || !normalized.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = normalized.parse().ok()?;
    let value = if text.starts_with('-') { -value } else { value };
    value.is_finite().then_some(value)
}

/// `1.063.932`: groups of three digits after the first group of one to three.
fn thousands(text: &str) -> bool {
    let mut groups = text.split('.');
    let first = groups.next().unwrap_or_default();
    let mut rest = groups.peekable();
    rest.peek().is_some()
        && (1..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_digit())
        && rest.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// A local date-time without an offset, as CSV exports write it, read as WIB (UTC+07:00).
fn wib_date_time(cell: &str) -> Cow<'_, str> {
    for pattern in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(cell, pattern) {
            return Cow::Owned(format!("{}+07:00", naive.format("%Y-%m-%dT%H:%M:%S%.f")));
        }
    }
    Cow::Borrowed(cell)
}

/// Typed columns (Parquet): cast to the storage type; values the cast cannot carry are type
/// errors, and casts that would change a value (`1.5` into a whole number) too.
fn parse_typed_column(
    plan: &PropertyPlan,
    array: &ArrayRef,
    errors: &mut ColumnErrors,
) -> Result<ParsedColumn, ArrowError> {
    let target = match plan.kind {
        JsonKind::Integer => DataType::Int64,
        JsonKind::Number => DataType::Float64,
        JsonKind::Boolean => DataType::Boolean,
        _ => DataType::Utf8,
    };
    let strict = matches!(plan.kind, JsonKind::String)
        && !plan.text_from_scalars
        && (array.data_type().is_numeric() || array.data_type() == &DataType::Boolean);
    let cast = cast_with_options(
        array,
        &target,
        &CastOptions {
            safe: true,
            ..Default::default()
        },
    )?;
    let lossy =
        if array.data_type().is_numeric() && target.is_numeric() && array.data_type() != &target {
            let back = cast_with_options(&cast, array.data_type(), &CastOptions::default())?;
            Some(arrow::compute::kernels::cmp::eq(array, &back)?)
        } else {
            None
        };
    let formatter_options = FormatOptions::default()
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%dT%H:%M:%S%.f%:z"));
    let formatter = ArrayFormatter::try_new(array.as_ref(), &formatter_options)?;
    let text = (target == DataType::Utf8).then(|| (cast.as_string::<i32>().clone(), false));
    let mut column = ParsedColumn::new(plan, array.len(), text);
    for row in (0..array.len()).filter(|&r| array.is_valid(r)) {
        let changed = lossy
            .as_ref()
            .is_some_and(|same| same.is_valid(row) && !same.value(row));
        if strict || cast.is_null(row) || changed {
            column.states[row] = State::Invalid;
            errors.push((
                row,
                type_error(
                    plan,
                    format!(
                        "'{}' is not a {}",
                        shorten(&formatter.value(row).to_string()),
                        plan.kind.describe()
                    ),
                ),
            ));
            continue;
        }
        let value = match plan.kind {
            JsonKind::Integer => Parsed::Integer(
                cast.as_primitive::<arrow::datatypes::Int64Type>()
                    .value(row),
            ),
            JsonKind::Number => Parsed::Number(
                cast.as_primitive::<arrow::datatypes::Float64Type>()
                    .value(row),
            ),
            JsonKind::Boolean => Parsed::Boolean(cast.as_boolean().value(row)),
            _ => match array.data_type() {
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
                    Parsed::Text(Cow::Owned(typed_time_text(array, row, &formatter)))
                }
                // Text properties read the cast's own text; other properties keep it as a
                // JSON string.
                _ if plan.kind == JsonKind::String => Parsed::Text(Cow::Borrowed("")),
                _ => Parsed::Json(Cow::Owned(
                    Value::String(cast.as_string::<i32>().value(row).to_string()).to_string(),
                )),
            },
        };
        column.put(row, value);
    }
    Ok(column)
}

/// Dates and times from typed sources, written the way the `date` and `date-time` formats
/// expect (`2025-03-31`, `2025-03-31T01:00:00Z`).
fn typed_time_text(array: &ArrayRef, row: usize, formatter: &ArrayFormatter) -> String {
    match array.data_type() {
        DataType::Timestamp(_, None) => format!("{}Z", formatter.value(row)),
        DataType::Date64 => formatter.value(row).to_string().chars().take(10).collect(),
        _ => formatter.value(row).to_string(),
    }
}

/// Runs a property's vectorized checks on its present values. Each check first asks a
/// cheap predicate on the stored value; only values it cannot pass at once go through
/// [`run_check`], which gives the verdict and the message.
fn check_column(
    plan: &PropertyPlan,
    column: &mut ParsedColumn,
    today: NaiveDate,
    errors: &mut ColumnErrors,
) {
    let rows = column.states.len();
    let mut normal_forms = std::mem::take(&mut column.normalized);
    for check in &plan.checks {
        for row in 0..rows {
            match column.states[row] {
                State::Value => {}
                State::Null => {
                    // enum and const apply to null too; the other keywords ignore it.
                    if let Some((keyword, message)) = null_refused(check) {
                        errors.push((row, FieldError::field(&plan.name, keyword, message)));
                    }
                    continue;
                }
                State::Absent | State::Invalid => continue,
            }
            let from = normal_forms.buffer().len();
            let verdict = if passes_at_once(check, &column.values, row) {
                Ok(false)
            } else {
                match column.value(row) {
                    Some(value) => run_check(check, &value, today, normal_forms.buffer()),
                    None => Ok(false),
                }
            };
            match verdict {
                Ok(false) => {}
                Ok(true) => normal_forms.set(row, from, rows),
                Err((keyword, message)) => {
                    errors.push((row, FieldError::field(&plan.name, keyword, message)))
                }
            }
        }
    }
    column.normalized = normal_forms;
}

/// Whether a row's value certainly passes a check that gives no normal form, decided
/// without building a message. `false` means "ask [`run_check`]", not "fails".
fn passes_at_once(check: &Check, values: &Values, row: usize) -> bool {
    match (check, values) {
        (Check::MaxLength(max), Values::Text(text)) => text.value(row).len() as u64 <= *max,
        (Check::MinLength(min), Values::Text(text)) => {
            let text = text.value(row);
            let bytes = text.len() as u64;
            // A character is one to four bytes.
            bytes >= min.saturating_mul(4) || (bytes >= *min && text.chars().count() as u64 >= *min)
        }
        (Check::Pattern(pattern, _), Values::Text(text)) => pattern.is_match(text.value(row)),
        (Check::Enum(allowed), Values::Text(text)) => {
            let text = text.value(row);
            allowed.iter().any(|a| a.as_str() == Some(text))
        }
        (Check::Const(Value::String(expected)), Values::Text(text)) => expected == text.value(row),
        (Check::Minimum(min), Values::Number(v)) => v[row] >= *min,
        (Check::Maximum(max), Values::Number(v)) => v[row] <= *max,
        (Check::ExclusiveMinimum(min), Values::Number(v)) => v[row] > *min,
        (Check::ExclusiveMaximum(max), Values::Number(v)) => v[row] < *max,
        (Check::Minimum(min), Values::Integer(v)) => v[row] as f64 >= *min,
        (Check::Maximum(max), Values::Integer(v)) => v[row] as f64 <= *max,
        (Check::ExclusiveMinimum(min), Values::Integer(v)) => v[row] as f64 > *min,
        (Check::ExclusiveMaximum(max), Values::Integer(v)) => (v[row] as f64) < *max,
        (Check::MultipleOf(divisor), Values::Integer(v)) => v[row] % divisor == 0,
        _ => false,
    }
}

/// Whether a row meets a condition: [`condition_errors`] is empty, decided without
/// building messages.
fn condition_holds(
    condition: &Condition,
    columns: &[ParsedColumn],
    row: usize,
    today: NaiveDate,
) -> bool {
    let missing =
        |index: &usize| matches!(columns[*index].states[row], State::Absent | State::Invalid);
    if condition.required.iter().any(missing) {
        return false;
    }
    condition.properties.iter().all(|(index, types, checks)| {
        let column = &columns[*index];
        match column.states[row] {
            State::Absent | State::Invalid => true,
            State::Null => {
                types.as_ref().is_none_or(|t| t.iter().any(|t| t == "null"))
                    && checks.iter().all(|c| null_refused(c).is_none())
            }
            State::Value => {
                let Some(value) = column.value(row) else {
                    return true;
                };
                types
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| value.has_json_type(t)))
                    && checks.iter().all(|check| {
                        passes_at_once(check, &column.values, row)
                            || run_check(check, &value, today, &mut String::new()).is_ok()
                    })
            }
        }
    })
}

/// The ways a row fails a condition; empty when it meets it. Keywords apply only to present
/// properties, as in JSON Schema.
fn condition_errors(
    condition: &Condition,
    plans: &[PropertyPlan],
    columns: &[ParsedColumn],
    row: usize,
    today: NaiveDate,
) -> Vec<FieldError> {
    let mut found = Vec::new();
    for &index in &condition.required {
        if matches!(columns[index].states[row], State::Absent | State::Invalid) {
            found.push(FieldError::field(
                &plans[index].name,
                "required",
                "is required by the schema's if/then rule",
            ));
        }
    }
    for (index, types, checks) in &condition.properties {
        let (name, column) = (&plans[*index].name, &columns[*index]);
        match column.states[row] {
            State::Absent | State::Invalid => {}
            State::Null => {
                if types
                    .as_ref()
                    .is_some_and(|t| !t.iter().any(|t| t == "null"))
                {
                    found.push(FieldError::field(
                        name,
                        "type",
                        "must not be null here (if/then rule)",
                    ));
                }
                found.extend(
                    checks
                        .iter()
                        .filter_map(null_refused)
                        .map(|(k, m)| FieldError::field(name, k, m)),
                );
            }
            State::Value => {
                let Some(value) = column.value(row) else {
                    continue;
                };
                let value = &value;
                if let Some(types) = types
                    && !types.iter().any(|t| value.has_json_type(t))
                {
                    found.push(FieldError::field(
                        name,
                        "type",
                        format!("must be of type {} here (if/then rule)", types.join(" or ")),
                    ));
                }
                for check in checks {
                    if let Err((keyword, message)) =
                        run_check(check, value, today, &mut String::new())
                    {
                        found.push(FieldError::field(name, keyword, message));
                    }
                }
            }
        }
    }
    found
}

/// Whether `enum` or `const` refuses a `null`.
fn null_refused(check: &Check) -> Option<(&'static str, String)> {
    match check {
        Check::Enum(allowed) if !allowed.contains(&Value::Null) => {
            let listed: Vec<String> = allowed.iter().take(12).map(|a| a.to_string()).collect();
            Some(("enum", format!("null is not one of: {}", listed.join(", "))))
        }
        Check::Const(expected) if !expected.is_null() => {
            Some(("const", format!("must be {expected}")))
        }
        _ => None,
    }
}

/// One check on one value: `Ok(Some)` carries the value's normal form (formats).
/// Checks one value. When the check is a format that gives the value a different normal
/// form, the form is appended to `normal` and the answer is `Ok(true)`; otherwise `normal`
/// is left as it was.
fn run_check(
    check: &Check,
    value: &Parsed,
    today: NaiveDate,
    normal: &mut String,
) -> Result<bool, (&'static str, String)> {
    let fail = |keyword: &'static str, message: String| Err((keyword, message));
    match check {
        Check::Enum(allowed) => {
            if allowed.iter().any(|a| same_value(a, value)) {
                Ok(false)
            } else {
                let listed: Vec<String> = allowed.iter().take(12).map(|a| a.to_string()).collect();
                fail(
                    "enum",
                    format!("'{}' is not one of: {}", value.shown(), listed.join(", ")),
                )
            }
        }
        Check::Const(expected) => {
            if same_value(expected, value) {
                Ok(false)
            } else {
                fail("const", format!("must be {expected}"))
            }
        }
        Check::Pattern(regex, pattern) => match value.as_str() {
            Some(text) if !regex.is_match(text) => fail(
                "pattern",
                format!("'{}' does not match the pattern {pattern}", shorten(text)),
            ),
            _ => Ok(false),
        },
        // A string has at most as many characters as bytes, and at least one if not empty.
        Check::MinLength(min) => match value.as_str() {
            Some(text) if *min <= 1 && (*min == 0 || !text.is_empty()) => Ok(false),
            Some(text) if (text.chars().count() as u64) < *min => {
                fail("minLength", format!("is shorter than {min} characters"))
            }
            _ => Ok(false),
        },
        Check::MaxLength(max) => match value.as_str() {
            Some(text) if text.len() as u64 <= *max => Ok(false),
            Some(text) if (text.chars().count() as u64) > *max => {
                fail("maxLength", format!("is longer than {max} characters"))
            }
            _ => Ok(false),
        },
        Check::Minimum(min) => bound(
            value,
            |v| v >= *min,
            "minimum",
            || format!("is less than the minimum {min}"),
        ),
        Check::Maximum(max) => bound(
            value,
            |v| v <= *max,
            "maximum",
            || format!("is more than the maximum {max}"),
        ),
        Check::ExclusiveMinimum(min) => bound(
            value,
            |v| v > *min,
            "exclusiveMinimum",
            || format!("must be more than {min}"),
        ),
        Check::ExclusiveMaximum(max) => bound(
            value,
            |v| v < *max,
            "exclusiveMaximum",
            || format!("must be less than {max}"),
        ),
        Check::MultipleOf(divisor) => match value {
            Parsed::Integer(i) if i % divisor != 0 => {
                fail("multipleOf", format!("{i} is not a multiple of {divisor}"))
            }
            _ => Ok(false),
        },
        Check::Format(format) => match value.as_str() {
            Some(text) => format
                .check_into(text, today, normal)
                .map_err(|message| ("format", format!("'{}' {message}", shorten(text)))),
            None => Ok(false),
        },
    }
}

fn bound(
    value: &Parsed,
    holds: impl Fn(f64) -> bool,
    keyword: &'static str,
    message: impl Fn() -> String,
) -> Result<bool, (&'static str, String)> {
    match value.as_f64() {
        Some(v) if !holds(v) => Err((keyword, format!("{} {}", value.shown(), message()))),
        _ => Ok(false),
    }
}

/// JSON Schema equality between a schema value and a parsed value: numbers compare by
/// value (`1` equals `1.0`).
fn same_value(expected: &Value, value: &Parsed) -> bool {
    match (expected, value) {
        (Value::String(e), Parsed::Text(v)) => e == v.as_ref(),
        (Value::Number(e), v) => match (e.as_f64(), v.as_f64()) {
            (Some(e), Some(v)) => e == v,
            _ => false,
        },
        (Value::Bool(e), Parsed::Boolean(v)) => e == v,
        (_, Parsed::Json(text)) => {
            serde_json::from_str::<Value>(text).is_ok_and(|v| &v == expected)
        }
        _ => false,
    }
}
