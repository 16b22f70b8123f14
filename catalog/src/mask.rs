//! Masking of personal data (`x-pii` columns) for callers without a PII grant.
//!
//! A masked table is a view over the real one that replaces each personal column by its
//! masked text. Filters and joins then see only the masked values, so a caller cannot test
//! guesses of a NIK against the real column.
//!
//! A rejects table holds personal data in three columns: the raw `record`, and the reasons,
//! which quote the values they refuse (`nik: '3214…' is not a valid NIK`). For a caller
//! without the grant, `record` is redacted, and in `errors` only the messages about columns
//! the schema does not mark personal, and a few record-level messages that quote nothing,
//! are kept; every other message becomes `[disamarkan]`. `reason` is rebuilt from those
//! masked errors, so the two always agree.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility, col,
};

/// How a personal value is masked, chosen from the column's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskKind {
    /// NIK and family-card numbers: the region prefix and the last two digits stay,
    /// `3214**********12`.
    Identifier,
    /// Phone numbers: the operator prefix and the last two digits stay, `0812******89`.
    Phone,
    /// Names: the first letter of each word stays, `B*** S******`.
    Name,
    /// Everything else (addresses, free text, raw records): nothing stays.
    Redacted,
}

impl MaskKind {
    /// The mask for a column called `name`.
    pub fn for_column(name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        if name == "nik" || name.starts_with("nik_") || name.ends_with("_nik") || name == "no_kk" {
            Self::Identifier
        } else if name.contains("telepon") || name.contains("phone") || name.starts_with("hp") {
            Self::Phone
        } else if name.starts_with("nama") || name.ends_with("_nama") || name == "name" {
            Self::Name
        } else {
            Self::Redacted
        }
    }

    fn udf_name(self) -> &'static str {
        match self {
            Self::Identifier => "simpul_mask_identifier",
            Self::Phone => "simpul_mask_phone",
            Self::Name => "simpul_mask_name",
            Self::Redacted => "simpul_mask_redacted",
        }
    }

    /// The masked form of one value.
    pub fn mask(self, value: &str) -> String {
        match self {
            Self::Identifier => keep_ends(value, 4, 2),
            Self::Phone => keep_ends(value, 4, 2),
            Self::Name => value
                .split_whitespace()
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or_else(String::new, |first| {
                        std::iter::once(first)
                            .chain(chars.map(|_| '*'))
                            .collect::<String>()
                    })
                })
                .collect::<Vec<_>>()
                .join(" "),
            Self::Redacted => "[disamarkan]".into(),
        }
    }
}

/// Keeps `head` leading and `tail` trailing characters and stars out the rest. Values too
/// short to keep both ends are starred out whole.
fn keep_ends(value: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    let middle = chars.len() - head - tail;
    chars[..head]
        .iter()
        .chain(std::iter::repeat_n(&'*', middle))
        .chain(&chars[chars.len() - tail..])
        .collect()
}

/// How one column of a view is masked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ColumnMask {
    /// The column's values, masked by kind.
    Value(MaskKind),
    /// A rejects table's `errors`: messages kept only about these (non-personal) columns.
    RejectErrors(Arc<[String]>),
    /// A rejects table's `reason`, rebuilt from `errors` masked as above.
    RejectReason(Arc<[String]>),
}

impl ColumnMask {
    /// The masked form of one value (for the reject masks, of the row's `errors`).
    fn apply(&self, value: &str) -> String {
        match self {
            Self::Value(kind) => kind.mask(value),
            Self::RejectErrors(kept) => {
                serde_json::to_string(&masked_errors(value, kept)).unwrap_or_else(|_| "[]".into())
            }
            Self::RejectReason(kept) => simpul_schemas::reason_of(&masked_errors(value, kept)),
        }
    }

    /// The masks of a rejects table whose dataset's non-personal columns are `kept`.
    pub(crate) fn rejects(kept: Vec<String>) -> Vec<(String, ColumnMask)> {
        let kept: Arc<[String]> = kept.into();
        vec![
            ("record".into(), Self::Value(MaskKind::Redacted)),
            ("errors".into(), Self::RejectErrors(kept.clone())),
            ("reason".into(), Self::RejectReason(kept)),
        ]
    }
}

/// Record-level messages that quote no value: a wrong field count, bad encoding, a missing
/// location. Every other message about the whole record may quote it.
const VALUE_FREE_RECORD_ERRORS: [&str; 3] = ["fields", "encoding", "x-koordinat"];

/// `errors` (the JSON array of a rejects row) with the messages that may quote personal
/// values replaced by `[disamarkan]`: every message but those about a column in `kept` and
/// the value-free record-level ones. Text that is not such an array is redacted whole.
fn masked_errors(errors: &str, kept: &[String]) -> Vec<simpul_schemas::FieldError> {
    let Ok(mut errors) = serde_json::from_str::<Vec<simpul_schemas::FieldError>>(errors) else {
        return vec![simpul_schemas::FieldError::record(
            "masked",
            MaskKind::Redacted.mask(""),
        )];
    };
    for error in &mut errors {
        let column = error.pointer.strip_prefix('/').map(|p| {
            p.split('/')
                .next()
                .unwrap_or_default()
                .replace("~1", "/")
                .replace("~0", "~")
        });
        let value_free = match &column {
            Some(column) => kept.contains(column),
            None => VALUE_FREE_RECORD_ERRORS.contains(&error.keyword.as_str()),
        };
        if !value_free {
            error.message = MaskKind::Redacted.mask(&error.message);
        }
    }
    errors
}

/// The first argument of a scalar function call as text.
fn text_argument(args: ScalarFunctionArgs) -> DfResult<StringArray> {
    let rows = args.number_rows;
    let array = match args.args.into_iter().next() {
        Some(value) => value.into_array(rows)?,
        None => return Ok(StringArray::new_null(rows)),
    };
    let text = cast(&array, &DataType::Utf8)?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("masking needs text".into()))
}

/// The scalar function that masks a column.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskUdf {
    mask: ColumnMask,
    signature: Signature,
}

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        match &self.mask {
            ColumnMask::Value(kind) => kind.udf_name(),
            ColumnMask::RejectErrors(_) => "simpul_mask_reject_errors",
            ColumnMask::RejectReason(_) => "simpul_mask_reject_reason",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let text = text_argument(args)?;
        let masked: StringArray = text
            .iter()
            .map(|value| value.map(|v| self.mask.apply(v)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(masked) as ArrayRef))
    }
}

fn mask_expr(mask: &ColumnMask, column: &str) -> Expr {
    // A rejects table's reasons are both masked from its `errors`.
    let input = match mask {
        ColumnMask::Value(_) => column,
        ColumnMask::RejectErrors(_) | ColumnMask::RejectReason(_) => "errors",
    };
    let udf = ScalarUDF::new_from_impl(MaskUdf {
        mask: mask.clone(),
        signature: Signature::any(1, Volatility::Immutable),
    });
    udf.call(vec![col(format!("\"{input}\""))]).alias(column)
}

/// A view of `provider` in which the `personal` columns are masked. Columns the table does
/// not have are ignored, so a schema change never breaks the view.
pub fn masked_provider(
    table_name: &str,
    provider: Arc<dyn TableProvider>,
    personal: &[(String, ColumnMask)],
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = provider.schema();
    let projection: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            match personal.iter().find(|(column, _)| column == name) {
                Some((_, mask)) => mask_expr(mask, name),
                None => col(format!("\"{name}\"")),
            }
        })
        .collect();
    let plan = LogicalPlanBuilder::scan(table_name, provider_as_source(provider), None)?
        .project(projection)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_each_kind_of_personal_value() {
        assert_eq!(
            MaskKind::Identifier.mask("3214010101900012"),
            "3214**********12"
        );
        assert_eq!(MaskKind::Phone.mask("081234567889"), "0812******89");
        assert_eq!(MaskKind::Name.mask("Budi  Santoso"), "B*** S******");
        assert_eq!(MaskKind::Redacted.mask("Jl. Veteran 1"), "[disamarkan]");
        assert_eq!(MaskKind::Identifier.mask("12345"), "*****");
    }

    #[test]
    fn reject_messages_are_kept_only_about_columns_that_are_not_personal() {
        let errors = r#"[
            {"pointer": "/nik", "keyword": "format", "message": "'3214010101900012' is not a valid NIK"},
            {"pointer": "/tahun", "keyword": "type", "message": "'dua ribu' is not a whole number"},
            {"pointer": "/nama_ibu", "keyword": "additionalProperties", "message": "'Siti' is not in the schema"},
            {"pointer": "", "keyword": "x-primary-key", "message": "duplicate primary key (nik = 3214010101900012)"},
            {"pointer": "", "keyword": "fields", "message": "expected 8 fields, found 9"}
        ]"#;
        let kept: Vec<String> = vec!["tahun".into()];
        let masked = masked_errors(errors, &kept);
        let messages: Vec<&str> = masked.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "[disamarkan]",
                "'dua ribu' is not a whole number",
                "[disamarkan]",
                "[disamarkan]",
                "expected 8 fields, found 9"
            ]
        );
        assert_eq!(masked[0].pointer, "/nik", "pointers and keywords stay");
        let reason = simpul_schemas::reason_of(&masked);
        assert!(!reason.contains("3214"), "{reason}");
        assert!(
            reason.starts_with("nik: [disamarkan]; tahun: 'dua ribu'"),
            "{reason}"
        );
        assert_eq!(
            masked_errors("not json 3214010101900012", &kept)[0].message,
            "[disamarkan]"
        );
    }

    #[test]
    fn picks_the_mask_from_the_column_name() {
        assert_eq!(MaskKind::for_column("nik"), MaskKind::Identifier);
        assert_eq!(MaskKind::for_column("no_kk"), MaskKind::Identifier);
        assert_eq!(MaskKind::for_column("nik_pelapor"), MaskKind::Identifier);
        assert_eq!(MaskKind::for_column("telepon"), MaskKind::Phone);
        assert_eq!(MaskKind::for_column("nama"), MaskKind::Name);
        assert_eq!(MaskKind::for_column("nama_pasien"), MaskKind::Name);
        assert_eq!(MaskKind::for_column("alamat"), MaskKind::Redacted);
    }
}
