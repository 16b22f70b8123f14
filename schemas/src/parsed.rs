//! One property's column after parsing, stored by type: text stays in its source array and
//! is borrowed from there, numbers and booleans live in plain vectors. Nothing is allocated
//! per cell unless parsing or a format had to rewrite the cell.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Builder, Float64Array, Int64Array, StringArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::FilterPredicate;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use chrono::{DateTime, NaiveDate};

use crate::compile::{JsonKind, PropertyPlan};

/// The state of one cell after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No value at all (missing JSON key, empty CSV field, NULL in Parquet).
    Absent,
    /// An explicit JSON `null`.
    Null,
    /// A value of the property's type.
    Value,
    /// A value that is not of the property's type (an error is recorded).
    Invalid,
}

/// A parsed value of a property's JSON type: a view of one cell.
#[derive(Debug, Clone)]
pub(crate) enum Parsed<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    /// An array, object or any JSON value, kept as JSON text.
    Json(Cow<'a, str>),
}

/// Text cells borrowed from their source array. Cells of a JSON source lose their quotes
/// when read; cells that parsing rewrote (JSON escapes, WIB local times, typed dates) are
/// kept aside.
pub(crate) struct TextValues {
    array: StringArray,
    unquote: bool,
    rewritten: Option<Vec<Option<String>>>,
}

impl TextValues {
    pub(crate) fn new(array: StringArray, unquote: bool) -> Self {
        Self {
            array,
            unquote,
            rewritten: None,
        }
    }

    /// The text of a row that holds a value.
    pub(crate) fn value(&self, row: usize) -> &str {
        if let Some(Some(text)) = self.rewritten.as_ref().map(|r| &r[row]) {
            return text;
        }
        let cell = self.array.value(row);
        if self.unquote && cell.len() >= 2 {
            &cell[1..cell.len() - 1]
        } else {
            cell
        }
    }

    fn rewrite(&mut self, row: usize, text: String) {
        let rows = self.array.len();
        self.rewritten.get_or_insert_with(|| vec![None; rows])[row] = Some(text);
    }

    /// Whether every value is its source cell unchanged, so the source array can be stored
    /// as it is.
    fn untouched(&self) -> bool {
        !self.unquote && self.rewritten.is_none()
    }
}

/// A column's values, by type. Rows whose state is not [`State::Value`] hold filler.
pub(crate) enum Values {
    /// The column is not in the batch.
    Absent,
    Text(TextValues),
    Json(TextValues),
    Integer(Vec<i64>),
    Number(Vec<f64>),
    Boolean(Vec<bool>),
}

/// The normal forms that formats gave some rows of a column, one after another in one
/// buffer, so that a column of rewritten cells (phone numbers in `08…` form, undotted
/// region codes) costs no allocation per cell.
#[derive(Default)]
pub(crate) struct NormalForms {
    text: String,
    /// Where each row's normal form is in `text`; empty until a row has one.
    spans: Vec<Option<(usize, usize)>>,
}

impl NormalForms {
    /// Where a check appends a normal form.
    pub(crate) fn buffer(&mut self) -> &mut String {
        &mut self.text
    }

    /// Makes the text appended to the buffer since `from` the normal form of `row` (of
    /// `rows`).
    pub(crate) fn set(&mut self, row: usize, from: usize, rows: usize) {
        if self.spans.is_empty() {
            self.spans = vec![None; rows];
        }
        self.spans[row] = Some((from, self.text.len()));
    }

    fn get(&self, row: usize) -> Option<&str> {
        let (from, to) = self.spans.get(row).copied().flatten()?;
        self.text.get(from..to)
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// One property's column after parsing: a state and a value per row, and for formats with a
/// normal form, the normalised text of the rows that have one.
pub(crate) struct ParsedColumn {
    pub(crate) states: Vec<State>,
    pub(crate) values: Values,
    pub(crate) normalized: NormalForms,
}

impl ParsedColumn {
    /// An empty column for `plan`: every row absent, values to be filled from `text` (the
    /// source's text cells, for text and JSON properties).
    pub(crate) fn new(plan: &PropertyPlan, rows: usize, text: Option<(StringArray, bool)>) -> Self {
        let values = match (plan.kind, text) {
            (JsonKind::Integer, _) => Values::Integer(vec![0; rows]),
            (JsonKind::Number, _) => Values::Number(vec![0.0; rows]),
            (JsonKind::Boolean, _) => Values::Boolean(vec![false; rows]),
            (_, None) => Values::Absent,
            (JsonKind::String, Some((array, unquote))) => {
                Values::Text(TextValues::new(array, unquote))
            }
            (_, Some((array, _))) => Values::Json(TextValues::new(array, false)),
        };
        Self {
            states: vec![State::Absent; rows],
            values,
            normalized: NormalForms::default(),
        }
    }

    /// Records a parsed value. A borrowed text is the cell as [`TextValues::value`] reads it.
    pub(crate) fn put(&mut self, row: usize, value: Parsed) {
        self.states[row] = State::Value;
        match (&mut self.values, value) {
            (Values::Text(text), Parsed::Text(Cow::Owned(owned)))
            | (Values::Json(text), Parsed::Json(Cow::Owned(owned))) => text.rewrite(row, owned),
            (Values::Integer(values), Parsed::Integer(i)) => values[row] = i,
            (Values::Number(values), Parsed::Number(f)) => values[row] = f,
            (Values::Boolean(values), Parsed::Boolean(b)) => values[row] = b,
            _ => {}
        }
    }

    /// The value of a row, if it has one.
    pub(crate) fn value(&self, row: usize) -> Option<Parsed<'_>> {
        if self.states[row] != State::Value {
            return None;
        }
        Some(match &self.values {
            Values::Absent => return None,
            Values::Text(text) => Parsed::Text(Cow::Borrowed(text.value(row))),
            Values::Json(text) => Parsed::Json(Cow::Borrowed(text.value(row))),
            Values::Integer(values) => Parsed::Integer(values[row]),
            Values::Number(values) => Parsed::Number(values[row]),
            Values::Boolean(values) => Parsed::Boolean(values[row]),
        })
    }

    /// The text of a row as stored: its normal form if a format gave one.
    pub(crate) fn stored_text(&self, row: usize) -> Option<&str> {
        if let Some(normal) = self.normalized.get(row) {
            return Some(normal);
        }
        match &self.values {
            Values::Text(text) | Values::Json(text) if self.states[row] == State::Value => {
                Some(text.value(row))
            }
            _ => None,
        }
    }

    /// The rows that hold a value, as a validity mask.
    fn present(&self) -> NullBuffer {
        NullBuffer::new(BooleanBuffer::from_iter(
            self.states.iter().map(|&s| s == State::Value),
        ))
    }

    /// The storage array of the kept rows: values, normalised where a format says so.
    /// Cells without a value are null (the value is missing). `refused` marks the rows to
    /// leave out, with the same selection as a filter for the arrays that are built whole
    /// and then filtered; `None` keeps every row.
    pub(crate) fn into_array(
        self,
        plan: &PropertyPlan,
        refused: Option<(&[bool], &FilterPredicate)>,
    ) -> Result<ArrayRef, ArrowError> {
        let rows = self.states.len();
        // Only the arrays built row by row need the kept rows listed.
        let kept = || -> Vec<usize> {
            (0..rows)
                .filter(|&row| refused.is_none_or(|(refused, _)| !refused[row]))
                .collect()
        };
        let filtered = |array: ArrayRef| match refused {
            Some((_, keep)) => keep.filter(&array),
            None => Ok(array),
        };
        match (plan.storage_type(), &self.values) {
            (_, Values::Integer(_) | Values::Number(_) | Values::Boolean(_)) => {
                let present = self.present();
                let array: ArrayRef = match self.values {
                    Values::Integer(values) => {
                        Arc::new(Int64Array::new(values.into(), Some(present)))
                    }
                    Values::Number(values) => {
                        Arc::new(Float64Array::new(values.into(), Some(present)))
                    }
                    Values::Boolean(values) => Arc::new(BooleanArray::new(
                        BooleanBuffer::from_iter(values),
                        Some(present),
                    )),
                    _ => unreachable!("matched above"),
                };
                filtered(array)
            }
            (DataType::Date32, _) => {
                let kept = kept();
                let mut builder = Date32Builder::with_capacity(kept.len());
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                for &row in &kept {
                    let date = self.stored_text(row).and_then(|s| {
                        crate::formats::parse_full_date(s)
                            .unwrap_or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    });
                    match date {
                        Some(d) => builder.append_value((d - epoch).num_days() as i32),
                        None => builder.append_null(),
                    }
                }
                Ok(Arc::new(builder.finish()))
            }
            (DataType::Timestamp(_, _), _) => {
                let kept = kept();
                let mut builder = TimestampMicrosecondBuilder::with_capacity(kept.len());
                for &row in &kept {
                    match self
                        .stored_text(row)
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    {
                        Some(t) => builder.append_value(t.timestamp_micros()),
                        None => builder.append_null(),
                    }
                }
                Ok(Arc::new(builder.finish().with_timezone("UTC")))
            }
            (_, Values::Text(text) | Values::Json(text))
                if text.untouched()
                    && self.normalized.is_empty()
                    && !self.states.contains(&State::Null) =>
            {
                // Every kept row is a source cell as it is (rows with invalid cells are
                // refused), so the source array is the storage, nulls included.
                filtered(Arc::new(text.array.clone()))
            }
            (_, Values::Text(text) | Values::Json(text)) => {
                let bytes = text.array.values().len() + self.normalized.text.len();
                let kept = kept();
                let mut builder = StringBuilder::with_capacity(kept.len(), bytes);
                for &row in &kept {
                    builder.append_option(self.stored_text(row));
                }
                Ok(Arc::new(builder.finish()))
            }
            (_, Values::Absent) => Ok(arrow::array::new_null_array(
                &plan.storage_type(),
                refused.map_or(rows, |(_, keep)| keep.count()),
            )),
        }
    }
}
