//! A filter's predicate that is only comparisons of columns with literals, joined by `AND`,
//! evaluated straight into one bitmask.
//!
//! Analysts filter on years, codes and amounts: `tahun >= 2020 AND nilai > 5000`. DataFusion
//! evaluates each comparison into a boolean array (for floats after copying the column if
//! it holds a `-0.0`), then combines the arrays. [`Comparisons`] compares each row's value
//! with the literal and sets its bit in one pass per comparison, and drops null rows with
//! the validity bitmap; the answer is the rows for which DataFusion's predicate is true.
//!
//! The order is DataFusion's: integers as numbers, floats in IEEE 754 total order after
//! `-0.0` is made `0.0` (so `-0.0 = 0.0`, and a NaN compares above every number unless
//! its sign bit is set), dates and timestamps as their integer values. Any other predicate
//! (a function, a cast, an `OR`, a column compared with a column) is not taken, and the
//! caller evaluates it as DataFusion does.

use std::sync::Arc;

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray};
use arrow::buffer::{BooleanBuffer, Buffer};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

/// The predicate's comparisons; a row passes when every one is true.
#[derive(Debug, Clone)]
pub(crate) struct Comparisons {
    parts: Vec<Comparison>,
}

/// `column op literal`, the literal as the key the column's values are compared by.
#[derive(Debug, Clone)]
struct Comparison {
    column: usize,
    op: Cmp,
    literal: Key,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A literal as an ordered key of the column's type.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// Signed integers, dates, timestamps, and a `Float32` or NaN literal by its
    /// total-order key.
    Signed(i64),
    Unsigned(u64),
    /// A `Float64` literal that is a number (`-0.0` made `0.0`), compared in IEEE 754, which
    /// vectorises, with NaN values placed as total order places them.
    Number(f64),
}

impl Comparisons {
    /// The comparisons `predicate` is made of, or `None` when it holds anything else. Only
    /// a literal of exactly the column's type is taken (DataFusion's planner casts literals
    /// to the column's type), and no null literal.
    pub(crate) fn of(predicate: &Arc<dyn PhysicalExpr>, input: &Schema) -> Option<Self> {
        let mut parts = Vec::new();
        collect(predicate, input, &mut parts)?;
        Some(Self { parts })
    }

    /// The rows of `batch` for which the predicate is true.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> DfResult<BooleanBuffer> {
        let rows = batch.num_rows();
        let mut mask: Option<BooleanBuffer> = None;
        for part in &self.parts {
            let column = batch.columns().get(part.column).ok_or_else(|| {
                DataFusionError::Internal(format!("the filter's column {} is missing", part.column))
            })?;
            let mut bits = part.evaluate(column.as_ref())?;
            if let Some(nulls) = column.logical_nulls() {
                bits &= nulls.inner();
            }
            mask = Some(match mask {
                None => bits,
                Some(mut mask) => {
                    mask &= &bits;
                    mask
                }
            });
        }
        Ok(mask.unwrap_or_else(|| BooleanBuffer::new_set(rows)))
    }
}

fn collect(
    expr: &Arc<dyn PhysicalExpr>,
    input: &Schema,
    parts: &mut Vec<Comparison>,
) -> Option<()> {
    let binary = expr.downcast_ref::<BinaryExpr>()?;
    if *binary.op() == Operator::And {
        collect(binary.left(), input, parts)?;
        return collect(binary.right(), input, parts);
    }
    let (column, op, literal) = match (
        binary.left().downcast_ref::<Column>(),
        binary.right().downcast_ref::<Literal>(),
    ) {
        (Some(column), Some(literal)) => (column, *binary.op(), literal),
        _ => (
            binary.right().downcast_ref::<Column>()?,
            binary.op().swap()?,
            binary.left().downcast_ref::<Literal>()?,
        ),
    };
    let op = match op {
        Operator::Eq => Cmp::Eq,
        Operator::NotEq => Cmp::NotEq,
        Operator::Lt => Cmp::Lt,
        Operator::LtEq => Cmp::LtEq,
        Operator::Gt => Cmp::Gt,
        Operator::GtEq => Cmp::GtEq,
        _ => return None,
    };
    let data_type = input.fields().get(column.index())?.data_type();
    let literal = key_of(data_type, literal.value())?;
    parts.push(Comparison {
        column: column.index(),
        op,
        literal,
    });
    Some(())
}

/// The key a literal of `data_type` is compared by; `None` for a null, another type or a
/// type not taken.
fn key_of(data_type: &DataType, value: &ScalarValue) -> Option<Key> {
    use ScalarValue as S;
    if value.data_type() != *data_type {
        return None;
    }
    Some(match value {
        S::Int8(Some(v)) => Key::Signed(i64::from(*v)),
        S::Int16(Some(v)) => Key::Signed(i64::from(*v)),
        S::Int32(Some(v)) | S::Date32(Some(v)) => Key::Signed(i64::from(*v)),
        S::Int64(Some(v))
        | S::Date64(Some(v))
        | S::TimestampSecond(Some(v), _)
        | S::TimestampMillisecond(Some(v), _)
        | S::TimestampMicrosecond(Some(v), _)
        | S::TimestampNanosecond(Some(v), _) => Key::Signed(*v),
        S::UInt8(Some(v)) => Key::Unsigned(u64::from(*v)),
        S::UInt16(Some(v)) => Key::Unsigned(u64::from(*v)),
        S::UInt32(Some(v)) => Key::Unsigned(u64::from(*v)),
        S::UInt64(Some(v)) => Key::Unsigned(*v),
        S::Float32(Some(v)) => Key::Signed(i64::from(f32_key(*v))),
        S::Float64(Some(v)) if v.is_nan() => Key::Signed(f64_key(*v)),
        S::Float64(Some(v)) => Key::Number(if *v == 0.0 { 0.0 } else { *v }),
        _ => return None,
    })
}

/// `x`'s place in IEEE 754 total order after `-0.0` is made `0.0`, as `f64::total_cmp`
/// and DataFusion's comparisons order floats.
#[inline(always)]
fn f64_key(x: f64) -> i64 {
    let bits = x.to_bits();
    let bits = if bits << 1 == 0 { 0 } else { bits } as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

#[inline(always)]
fn f32_key(x: f32) -> i32 {
    let bits = x.to_bits();
    let bits = if bits << 1 == 0 { 0 } else { bits } as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

impl Comparison {
    fn evaluate(&self, array: &dyn Array) -> DfResult<BooleanBuffer> {
        fn values<T: ArrowPrimitiveType>(array: &dyn Array) -> &[T::Native] {
            let array: &PrimitiveArray<T> = array.as_primitive();
            array.values()
        }
        let op = self.op;
        Ok(match (array.data_type(), self.literal) {
            (DataType::Int8, Key::Signed(l)) => bits(values::<Int8Type>(array), i64::from, op, l),
            (DataType::Int16, Key::Signed(l)) => bits(values::<Int16Type>(array), i64::from, op, l),
            (DataType::Int32, Key::Signed(l)) => bits(values::<Int32Type>(array), i64::from, op, l),
            (DataType::Date32, Key::Signed(l)) => {
                bits(values::<Date32Type>(array), i64::from, op, l)
            }
            (DataType::Int64, Key::Signed(l)) => bits(values::<Int64Type>(array), |v| v, op, l),
            (DataType::Date64, Key::Signed(l)) => bits(values::<Date64Type>(array), |v| v, op, l),
            (DataType::Timestamp(unit, _), Key::Signed(l)) => {
                let values = match unit {
                    TimeUnit::Second => values::<TimestampSecondType>(array),
                    TimeUnit::Millisecond => values::<TimestampMillisecondType>(array),
                    TimeUnit::Microsecond => values::<TimestampMicrosecondType>(array),
                    TimeUnit::Nanosecond => values::<TimestampNanosecondType>(array),
                };
                bits(values, |v| v, op, l)
            }
            (DataType::UInt8, Key::Unsigned(l)) => {
                bits(values::<UInt8Type>(array), u64::from, op, l)
            }
            (DataType::UInt16, Key::Unsigned(l)) => {
                bits(values::<UInt16Type>(array), u64::from, op, l)
            }
            (DataType::UInt32, Key::Unsigned(l)) => {
                bits(values::<UInt32Type>(array), u64::from, op, l)
            }
            (DataType::UInt64, Key::Unsigned(l)) => bits(values::<UInt64Type>(array), |v| v, op, l),
            (DataType::Float32, Key::Signed(l)) => bits(
                values::<Float32Type>(array),
                |v| i64::from(f32_key(v)),
                op,
                l,
            ),
            (DataType::Float64, Key::Signed(l)) => {
                bits(values::<Float64Type>(array), f64_key, op, l)
            }
            (DataType::Float64, Key::Number(l)) => numbers(values::<Float64Type>(array), op, l),
            // `Comparisons::of` takes only the pairs above, and a batch keeps its schema's
            // types.
            (other, _) => {
                return Err(DataFusionError::Internal(format!(
                    "a comparison with a literal on a column of {other} was not planned"
                )));
            }
        })
    }
}

/// Bit `i` set when `key(values[i]) op literal`.
fn bits<N: Copy, K: Ord + Copy>(
    values: &[N],
    key: impl Fn(N) -> K + Copy,
    op: Cmp,
    literal: K,
) -> BooleanBuffer {
    match op {
        Cmp::Eq => pack(values, move |v| key(v) == literal),
        Cmp::NotEq => pack(values, move |v| key(v) != literal),
        Cmp::Lt => pack(values, move |v| key(v) < literal),
        Cmp::LtEq => pack(values, move |v| key(v) <= literal),
        Cmp::Gt => pack(values, move |v| key(v) > literal),
        Cmp::GtEq => pack(values, move |v| key(v) >= literal),
    }
}

/// Bit `i` set when `values[i] op literal` in DataFusion's order, for a literal that is a
/// number: IEEE 754 agrees with total order on numbers (and has `-0.0 = 0.0`); a NaN with
/// its sign bit clear is above every number, one with it set below.
fn numbers(values: &[f64], op: Cmp, literal: f64) -> BooleanBuffer {
    let above = |v: f64| v.is_nan() & v.is_sign_positive();
    let below = |v: f64| v.is_nan() & v.is_sign_negative();
    match op {
        Cmp::Eq => pack(values, move |v| v == literal),
        Cmp::NotEq => pack(values, move |v| v != literal),
        Cmp::Lt => pack(values, move |v| (v < literal) | below(v)),
        Cmp::LtEq => pack(values, move |v| (v <= literal) | below(v)),
        Cmp::Gt => pack(values, move |v| (v > literal) | above(v)),
        Cmp::GtEq => pack(values, move |v| (v >= literal) | above(v)),
    }
}

/// Bit `i` set when `test(values[i])`, with AVX2 where the CPU has it.
#[inline(always)]
fn pack<N: Copy>(values: &[N], test: impl Fn(N) -> bool + Copy) -> BooleanBuffer {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, as checked just above.
        return unsafe { pack_avx2(values, test) };
    }
    pack_words(values, test)
}

/// [`pack_words`] compiled for AVX2, which compares four 64-bit values at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pack_avx2<N: Copy>(values: &[N], test: impl Fn(N) -> bool + Copy) -> BooleanBuffer {
    pack_words(values, test)
}

/// Sixty-four rows to a word. Each row's test goes to a byte first, a loop the compiler
/// vectorises; eight bytes of 0 or 1 then become eight bits with one multiplication.
#[inline(always)]
fn pack_words<N: Copy>(values: &[N], test: impl Fn(N) -> bool + Copy) -> BooleanBuffer {
    let mut words = Vec::with_capacity(values.len().div_ceil(64));
    let mut chunks = values.chunks_exact(64);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 64];
        for (byte, &v) in bytes.iter_mut().zip(chunk) {
            *byte = u8::from(test(v));
        }
        let mut word = 0u64;
        for (i, eight) in bytes.chunks_exact(8).enumerate() {
            let mut octet = [0u8; 8];
            octet.copy_from_slice(eight);
            word |= bits_of_bytes(octet) << (8 * i);
        }
        words.push(word);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        words.push(
            rest.iter()
                .enumerate()
                .fold(0u64, |word, (i, &v)| word | (u64::from(test(v)) << i)),
        );
    }
    BooleanBuffer::new(Buffer::from_vec(words), 0, values.len())
}

/// Byte `i` (0 or 1) of `bytes` as bit `i`: the multiplication adds each byte's bit into
/// the top byte at its own place.
#[inline(always)]
fn bits_of_bytes(bytes: [u8; 8]) -> u64 {
    u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array, Int64Array,
        StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array,
    };
    use arrow::compute::prep_null_mask_filter;
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{binary, cast, col, lit};

    use super::*;

    const OPS: [Operator; 6] = [
        Operator::Eq,
        Operator::NotEq,
        Operator::Lt,
        Operator::LtEq,
        Operator::Gt,
        Operator::GtEq,
    ];

    /// 1,000 rows (not a multiple of 64) of every type taken, with nulls, and for the floats
    /// `-0.0`, `0.0`, both infinities and NaNs of either sign.
    fn batch() -> RecordBatch {
        let n = 1000;
        let null = |i: usize| i.is_multiple_of(13);
        let floats = [
            -0.0,
            0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            5000.0,
            4999.99,
            1e300,
        ];
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "i8",
                Arc::new(Int8Array::from_iter(
                    (0..n).map(|i| (!null(i)).then_some((i % 256) as u8 as i8)),
                )),
            ),
            (
                "i64",
                Arc::new(Int64Array::from_iter((0..n).map(|i| {
                    (!null(i)).then_some(match i % 5 {
                        0 => i64::MIN,
                        1 => i64::MAX,
                        _ => 2015 + (i % 12) as i64,
                    })
                }))),
            ),
            (
                "u32",
                Arc::new(UInt32Array::from_iter((0..n).map(|i| {
                    (!null(i)).then_some((i as u32).wrapping_mul(2_654_435_761))
                }))),
            ),
            (
                "u64",
                Arc::new(UInt64Array::from_iter((0..n).map(|i| {
                    (!null(i)).then_some((i as u64).wrapping_mul(u64::MAX / 7))
                }))),
            ),
            (
                "f64",
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| (!null(i)).then_some(floats[i % floats.len()])),
                )),
            ),
            (
                "f32",
                Arc::new(Float32Array::from_iter(
                    (0..n).map(|i| (!null(i)).then_some(floats[i % floats.len()] as f32)),
                )),
            ),
            (
                "d",
                Arc::new(Date32Array::from_iter(
                    (0..n).map(|i| (!null(i)).then_some(19_000 + (i % 50) as i32)),
                )),
            ),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from_iter(
                        (0..n).map(|i| (!null(i)).then_some(1_700_000_000_000_000 + i as i64)),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            (
                "s",
                Arc::new(StringArray::from_iter_values((0..n).map(|i| i.to_string()))),
            ),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn literals() -> Vec<(&'static str, ScalarValue)> {
        let mut literals = vec![
            ("i8", ScalarValue::Int8(Some(-3))),
            ("i8", ScalarValue::Int8(Some(100))),
            ("i64", ScalarValue::Int64(Some(2020))),
            ("i64", ScalarValue::Int64(Some(i64::MIN))),
            ("i64", ScalarValue::Int64(Some(i64::MAX))),
            ("u32", ScalarValue::UInt32(Some(u32::MAX / 2))),
            ("u64", ScalarValue::UInt64(Some(u64::MAX / 3))),
            ("d", ScalarValue::Date32(Some(19_020))),
            (
                "ts",
                ScalarValue::TimestampMicrosecond(Some(1_700_000_000_000_500), Some("UTC".into())),
            ),
        ];
        for v in [5000.0, 0.0, -0.0, f64::INFINITY, f64::NAN, -f64::NAN, -1.5] {
            literals.push(("f64", ScalarValue::Float64(Some(v))));
            literals.push(("f32", ScalarValue::Float32(Some(v as f32))));
        }
        literals
    }

    /// The rows DataFusion's own evaluation of `predicate` keeps.
    fn datafusion_rows(predicate: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> BooleanArray {
        let mask = predicate
            .evaluate(batch)
            .unwrap()
            .into_array(batch.num_rows())
            .unwrap();
        prep_null_mask_filter(mask.as_boolean())
    }

    #[test]
    fn comparisons_keep_the_rows_datafusion_keeps() {
        let whole = batch();
        let schema = whole.schema();
        let mut checked = 0;
        // The whole batch, and a slice whose arrays start inside a byte of their buffers.
        for batch in [whole.clone(), whole.slice(3, 900)] {
            for (name, literal) in literals() {
                for op in OPS {
                    let column = col(name, &schema).unwrap();
                    for predicate in [
                        binary(column.clone(), op, lit(literal.clone()), &schema).unwrap(),
                        binary(lit(literal.clone()), op, column.clone(), &schema).unwrap(),
                    ] {
                        let comparisons = Comparisons::of(&predicate, &schema)
                            .unwrap_or_else(|| panic!("{predicate} was not taken"));
                        let ours = comparisons.evaluate(&batch).unwrap();
                        assert_eq!(
                            BooleanArray::new(ours, None),
                            datafusion_rows(&predicate, &batch),
                            "{predicate}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 2 * literals().len() * OPS.len() * 2);
    }

    #[test]
    fn a_conjunction_keeps_the_rows_every_part_keeps() {
        let batch = batch();
        let schema = batch.schema();
        let part = |name: &str, op, value| {
            binary(col(name, &schema).unwrap(), op, lit(value), &schema).unwrap()
        };
        let predicate = binary(
            binary(
                part("i64", Operator::GtEq, ScalarValue::Int64(Some(2020))),
                Operator::And,
                part("f64", Operator::Gt, ScalarValue::Float64(Some(1.0))),
                &schema,
            )
            .unwrap(),
            Operator::And,
            part("d", Operator::Lt, ScalarValue::Date32(Some(19_040))),
            &schema,
        )
        .unwrap();
        let comparisons = Comparisons::of(&predicate, &schema).unwrap();
        assert_eq!(comparisons.parts.len(), 3);
        let expected = datafusion_rows(&predicate, &batch);
        assert!(expected.true_count() > 0 && expected.false_count() > 0);
        assert_eq!(
            BooleanArray::new(comparisons.evaluate(&batch).unwrap(), None),
            expected
        );
    }

    #[test]
    fn anything_but_comparisons_with_literals_is_left_to_datafusion() {
        let batch = batch();
        let schema = batch.schema();
        let i64_col = col("i64", &schema).unwrap();
        let year = lit(ScalarValue::Int64(Some(2020)));
        let comparison = binary(i64_col.clone(), Operator::Gt, year.clone(), &schema).unwrap();
        let refused = [
            // an OR
            binary(
                comparison.clone(),
                Operator::Or,
                comparison.clone(),
                &schema,
            )
            .unwrap(),
            // a column against a column
            binary(i64_col.clone(), Operator::Gt, i64_col.clone(), &schema).unwrap(),
            // a cast column
            binary(
                cast(i64_col.clone(), &schema, DataType::Float64).unwrap(),
                Operator::Gt,
                lit(ScalarValue::Float64(Some(1.0))),
                &schema,
            )
            .unwrap(),
            // a null literal
            binary(
                i64_col.clone(),
                Operator::Gt,
                lit(ScalarValue::Int64(None)),
                &schema,
            )
            .unwrap(),
            // a text column
            binary(
                col("s", &schema).unwrap(),
                Operator::Eq,
                lit(ScalarValue::Utf8(Some("7".into()))),
                &schema,
            )
            .unwrap(),
            // arithmetic, and a conjunction with one part not taken
            binary(i64_col.clone(), Operator::Plus, year.clone(), &schema).unwrap(),
            binary(
                comparison.clone(),
                Operator::And,
                binary(i64_col.clone(), Operator::Gt, i64_col, &schema).unwrap(),
                &schema,
            )
            .unwrap(),
        ];
        for predicate in refused {
            assert!(
                Comparisons::of(&predicate, &schema).is_none(),
                "{predicate}"
            );
        }
        assert!(Comparisons::of(&comparison, &schema).is_some());
    }
}
