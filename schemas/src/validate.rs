//! The vectorized validator: raw batches in, typed valid rows and rejected rows out.
//!
//! Each property is parsed and checked column by column. The rows that pass and still need
//! keywords the engine does not implement are handed to `jsonschema`, one by one, with only
//! the fields the residual schema can see.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Date32Builder, Float64Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Number, Value};

use crate::compile::{Check, CompiledSchema, Condition, JsonKind, PropertyPlan};
use crate::formats::Format;
use crate::keywords::MISSING_LOCATION;
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

/// The state of one cell after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No value at all (missing JSON key, empty CSV field, NULL in Parquet).
    Absent,
    /// An explicit JSON `null`.
    Null,
    /// A value of the property's type.
    Value,
    /// A value that is not of the property's type (an error is recorded).
    Invalid,
}

/// A parsed value of a property's JSON type.
#[derive(Debug, Clone)]
enum Parsed<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    /// An array, object or any JSON value, kept as JSON text.
    Json(Cow<'a, str>),
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

/// One property's column after parsing: a state and a value per row, and for formats with a
/// normal form, the normalised text.
struct ParsedColumn<'a> {
    states: Vec<State>,
    values: Vec<Option<Parsed<'a>>>,
    normalized: Vec<Option<String>>,
}

/// Errors found so far, by row.
struct RowErrors {
    by_row: Vec<Vec<FieldError>>,
}

impl RowErrors {
    fn new(rows: usize) -> Self {
        Self {
            by_row: vec![Vec::new(); rows],
        }
    }

    fn add(&mut self, row: usize, error: FieldError) {
        self.by_row[row].push(error);
    }

    fn has(&self, row: usize) -> bool {
        !self.by_row[row].is_empty()
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
        let mut columns = Vec::with_capacity(self.properties.len());
        for plan in &self.properties {
            let source = raw_schema.index_of(&plan.name).ok().map(|i| {
                let json = raw_schema
                    .field(i)
                    .metadata()
                    .get(RAW_ENCODING_KEY)
                    .map(String::as_str)
                    == Some(RAW_ENCODING_JSON);
                (raw.column(i), json)
            });
            let mut column = parse_column(plan, source, rows, &mut errors)?;
            check_column(plan, &mut column, &mut errors);
            columns.push(column);
        }
        self.check_unknown_columns(raw, &mut errors);
        self.check_coordinates(&columns, &mut errors);
        self.check_conditionals(&columns, &mut errors);
        self.run_fallback(&columns, &mut errors);
        // Last, so that only rows valid in every other way claim their key.
        self.check_primary_key(&columns, positions, &mut errors);
        self.assemble(raw, positions, &columns, errors)
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
        for row in 0..errors.by_row.len() {
            let zero = |column: &ParsedColumn| {
                column.states[row] == State::Value
                    && column.values[row].as_ref().and_then(Parsed::as_f64) == Some(0.0)
            };
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
            for row in 0..errors.by_row.len() {
                let holds = condition_errors(
                    &conditional.condition,
                    &self.properties,
                    columns,
                    row,
                    today,
                )
                .is_empty();
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
        let names: Vec<&str> = self
            .primary_key
            .iter()
            .map(|&i| self.properties[i].name.as_str())
            .collect();
        let parts = |row: usize| -> Option<Vec<Cow<str>>> {
            self.primary_key
                .iter()
                .map(|&i| key_part(&columns[i], row))
                .collect()
        };
        // Rows by the hash of their key; the parts are compared on a hit, and keys whose
        // hashes collide without being equal go to an exact map.
        let hasher = foldhash::fast::FixedState::with_seed(3214);
        let mut first_by_hash: HashMap<u64, usize> = HashMap::new();
        let mut exact: HashMap<Vec<String>, usize> = HashMap::new();
        for row in 0..errors.by_row.len() {
            if errors.has(row) {
                continue;
            }
            let Some(key) = parts(row) else { continue };
            let hash = hasher.hash_one(&key);
            let first = match first_by_hash.entry(hash) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(row);
                    continue;
                }
                std::collections::hash_map::Entry::Occupied(seen) => *seen.get(),
            };
            let duplicate_of = if parts(first).as_ref() == Some(&key) {
                Some(first)
            } else {
                let owned: Vec<String> = key.iter().map(|p| p.to_string()).collect();
                match exact.get(&owned) {
                    Some(&earlier) => Some(earlier),
                    None => {
                        exact.insert(owned, row);
                        None
                    }
                }
            };
            if let Some(first) = duplicate_of {
                let line = positions.get(first).map_or(first as u64 + 1, |p| p.line);
                errors.add(
                    row,
                    FieldError::record(
                        "x-primary-key",
                        format!(
                            "duplicate primary key ({} = {}) in this batch; it first appears at line {line}",
                            names.join(", "),
                            key.iter().map(|p| shorten(p)).collect::<Vec<_>>().join(", ")
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
        for row in 0..errors.by_row.len() {
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
                        if let Some(value) = &columns[i].values[row] {
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
        columns: &[ParsedColumn],
        errors: RowErrors,
    ) -> Result<Validation, ArrowError> {
        let rows = raw.num_rows();
        let arrays: Vec<ArrayRef> = self
            .properties
            .iter()
            .zip(columns)
            .map(|(plan, column)| storage_array(plan, column))
            .collect::<Result<_, _>>()?;
        let rejected_mask = BooleanArray::from_iter((0..rows).map(|r| Some(errors.has(r))));
        if rejected_mask.true_count() == 0 {
            return Ok(Validation {
                valid: RecordBatch::try_new(self.arrow.clone(), arrays)?,
                rejected: Vec::new(),
            });
        }
        // Refused rows may hold nulls in required columns: filter under an all-nullable
        // schema, then apply the real one.
        let relaxed = Arc::new(Schema::new(
            self.arrow
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let typed = RecordBatch::try_new(relaxed, arrays)?;
        let kept = filter_record_batch(&typed, &not(&rejected_mask)?)?;
        let valid = RecordBatch::try_new(self.arrow.clone(), kept.columns().to_vec())?;
        let records = original_records(raw)?;
        let rejected = errors
            .by_row
            .into_iter()
            .enumerate()
            .filter(|(_, e)| !e.is_empty())
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
fn key_part<'c>(column: &'c ParsedColumn, row: usize) -> Option<Cow<'c, str>> {
    if column.states[row] != State::Value {
        return None;
    }
    Some(match (&column.normalized[row], &column.values[row]) {
        (Some(normal), _) => Cow::Borrowed(normal.as_str()),
        (None, Some(Parsed::Text(text) | Parsed::Json(text))) => Cow::Borrowed(text.as_ref()),
        (None, Some(other)) => Cow::Owned(other.to_json().to_string()),
        (None, None) => Cow::Borrowed(""),
    })
}

fn type_error(plan: &PropertyPlan, message: impl Into<String>) -> FieldError {
    FieldError::field(&plan.name, "type", message)
}

/// Parses a raw column into values of the property's type, recording type and required
/// errors.
fn parse_column<'a>(
    plan: &PropertyPlan,
    source: Option<(&'a ArrayRef, bool)>,
    rows: usize,
    errors: &mut RowErrors,
) -> Result<ParsedColumn<'a>, ArrowError> {
    let mut column = ParsedColumn {
        states: vec![State::Absent; rows],
        values: vec![None; rows],
        normalized: vec![None; rows],
    };
    match source {
        None => {}
        Some((array, json)) if matches!(array.data_type(), DataType::Utf8) => {
            let text = array.as_string::<i32>();
            for row in (0..rows).filter(|&r| text.is_valid(r)) {
                let cell = text.value(row);
                let parsed = if json {
                    parse_json_cell(plan, cell)
                } else {
                    parse_text_cell(plan, cell)
                };
                match parsed {
                    Ok(Some(value)) => {
                        column.states[row] = State::Value;
                        column.values[row] = Some(value);
                    }
                    Ok(None) => column.states[row] = State::Null,
                    Err(message) => {
                        column.states[row] = State::Invalid;
                        errors.add(row, type_error(plan, message));
                    }
                }
            }
        }
        Some((array, _)) => parse_typed_column(plan, array, &mut column, errors)?,
    }
    for row in 0..rows {
        match column.states[row] {
            State::Absent if plan.required => errors.add(
                row,
                FieldError::field(&plan.name, "required", "is required"),
            ),
            State::Null if !plan.nullable => errors.add(row, type_error(plan, "must not be null")),
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
fn parse_typed_column<'a>(
    plan: &PropertyPlan,
    array: &'a ArrayRef,
    column: &mut ParsedColumn<'a>,
    errors: &mut RowErrors,
) -> Result<(), ArrowError> {
    let target = match plan.kind {
        JsonKind::Integer => DataType::Int64,
        JsonKind::Number => DataType::Float64,
        JsonKind::Boolean => DataType::Boolean,
        _ => DataType::Utf8,
    };
    let strict = matches!(plan.kind, JsonKind::String)
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
    for row in (0..array.len()).filter(|&r| array.is_valid(r)) {
        let changed = lossy
            .as_ref()
            .is_some_and(|same| same.is_valid(row) && !same.value(row));
        if strict || cast.is_null(row) || changed {
            column.states[row] = State::Invalid;
            errors.add(
                row,
                type_error(
                    plan,
                    format!(
                        "'{}' is not a {}",
                        shorten(&formatter.value(row).to_string()),
                        plan.kind.describe()
                    ),
                ),
            );
            continue;
        }
        column.states[row] = State::Value;
        column.values[row] = Some(match plan.kind {
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
                _ => Parsed::Text(Cow::Owned(cast.as_string::<i32>().value(row).to_string())),
            },
        });
    }
    Ok(())
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

/// Runs a property's vectorized checks on its present values.
fn check_column(plan: &PropertyPlan, column: &mut ParsedColumn, errors: &mut RowErrors) {
    let today = crate::formats::today_wib();
    for check in &plan.checks {
        for row in 0..column.states.len() {
            if column.states[row] == State::Null {
                // enum and const apply to null too; the other keywords ignore it.
                if let Some(message) = null_refused(check) {
                    errors.add(row, FieldError::field(&plan.name, message.0, message.1));
                }
                continue;
            }
            if column.states[row] != State::Value {
                continue;
            }
            let Some(value) = &column.values[row] else {
                continue;
            };
            match run_check(check, value, today) {
                Ok(None) => {}
                Ok(Some(normal)) => column.normalized[row] = Some(normal),
                Err((keyword, message)) => {
                    errors.add(row, FieldError::field(&plan.name, keyword, message))
                }
            }
        }
    }
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
                let Some(value) = &column.values[row] else {
                    continue;
                };
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
                    if let Err((keyword, message)) = run_check(check, value, today) {
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
fn run_check(
    check: &Check,
    value: &Parsed,
    today: NaiveDate,
) -> Result<Option<String>, (&'static str, String)> {
    let fail = |keyword: &'static str, message: String| Err((keyword, message));
    match check {
        Check::Enum(allowed) => {
            if allowed.iter().any(|a| same_value(a, value)) {
                Ok(None)
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
                Ok(None)
            } else {
                fail("const", format!("must be {expected}"))
            }
        }
        Check::Pattern(regex, pattern) => match value.as_str() {
            Some(text) if !regex.is_match(text).unwrap_or(false) => fail(
                "pattern",
                format!("'{}' does not match the pattern {pattern}", shorten(text)),
            ),
            _ => Ok(None),
        },
        // A string has at most as many characters as bytes, and at least one if not empty.
        Check::MinLength(min) => match value.as_str() {
            Some(text) if *min <= 1 && (*min == 0 || !text.is_empty()) => Ok(None),
            Some(text) if (text.chars().count() as u64) < *min => {
                fail("minLength", format!("is shorter than {min} characters"))
            }
            _ => Ok(None),
        },
        Check::MaxLength(max) => match value.as_str() {
            Some(text) if text.len() as u64 <= *max => Ok(None),
            Some(text) if (text.chars().count() as u64) > *max => {
                fail("maxLength", format!("is longer than {max} characters"))
            }
            _ => Ok(None),
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
            _ => Ok(None),
        },
        Check::Format(format) => match value.as_str() {
            Some(text) => format
                .check_as_of(text, today)
                .map_err(|message| ("format", format!("'{}' {message}", shorten(text)))),
            None => Ok(None),
        },
    }
}

fn bound(
    value: &Parsed,
    holds: impl Fn(f64) -> bool,
    keyword: &'static str,
    message: impl Fn() -> String,
) -> Result<Option<String>, (&'static str, String)> {
    match value.as_f64() {
        Some(v) if !holds(v) => Err((keyword, format!("{} {}", value.shown(), message()))),
        _ => Ok(None),
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

/// The storage array of a property: parsed values, normalised where a format says so.
/// Invalid and absent cells are null (their rows are refused or the value is missing).
fn storage_array(plan: &PropertyPlan, column: &ParsedColumn) -> Result<ArrayRef, ArrowError> {
    let rows = column.states.len();
    let present = |row: usize| column.states[row] == State::Value;
    Ok(match plan.storage_type() {
        DataType::Int64 => {
            let mut builder = Int64Builder::with_capacity(rows);
            for row in 0..rows {
                match (&column.values[row], present(row)) {
                    (Some(Parsed::Integer(i)), true) => builder.append_value(*i),
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Float64 => {
            let mut builder = Float64Builder::with_capacity(rows);
            for row in 0..rows {
                match (
                    column.values[row].as_ref().and_then(Parsed::as_f64),
                    present(row),
                ) {
                    (Some(f), true) => builder.append_value(f),
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(rows);
            for row in 0..rows {
                match (&column.values[row], present(row)) {
                    (Some(Parsed::Boolean(b)), true) => builder.append_value(*b),
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Date32 => {
            let mut builder = Date32Builder::with_capacity(rows);
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            for row in 0..rows {
                let date = column.values[row]
                    .as_ref()
                    .and_then(Parsed::as_str)
                    .filter(|_| present(row))
                    .and_then(|s| {
                        crate::formats::parse_full_date(s)
                            .unwrap_or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    });
                match date {
                    Some(d) => builder.append_value((d - epoch).num_days() as i32),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Timestamp(_, _) => {
            let mut builder = TimestampMicrosecondBuilder::with_capacity(rows);
            for row in 0..rows {
                let instant = column.values[row]
                    .as_ref()
                    .and_then(Parsed::as_str)
                    .filter(|_| present(row))
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
                match instant {
                    Some(t) => builder.append_value(t.timestamp_micros()),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish().with_timezone("UTC"))
        }
        _ => {
            let mut builder = StringBuilder::with_capacity(rows, rows * 16);
            for row in 0..rows {
                if !present(row) {
                    builder.append_null();
                    continue;
                }
                match (&column.normalized[row], &column.values[row]) {
                    (Some(normal), _) => builder.append_value(normal),
                    (None, Some(Parsed::Text(s) | Parsed::Json(s))) => builder.append_value(s),
                    (None, Some(other)) => builder.append_value(other.to_json().to_string()),
                    (None, None) => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
    })
}
