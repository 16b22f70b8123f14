//! Masking of personal data (`x-pii` columns) for callers without a PII grant.
//!
//! A masked table is a view over the real one that replaces each personal column by its
//! masked text. Filters and joins then see only the masked values, so a caller cannot test
//! guesses of a NIK against the real column.

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

/// The scalar function that masks a text column.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskUdf {
    kind: MaskKind,
    signature: Signature,
}

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        self.kind.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let array = match args.args.into_iter().next() {
            Some(value) => value.into_array(rows)?,
            None => return Ok(ColumnarValue::Array(Arc::new(StringArray::new_null(rows)))),
        };
        let text = cast(&array, &DataType::Utf8)?;
        let text = text.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("masking needs text".into())
        })?;
        let masked: StringArray = text
            .iter()
            .map(|value| value.map(|v| self.kind.mask(v)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(masked) as ArrayRef))
    }
}

fn mask_expr(kind: MaskKind, column: &str) -> Expr {
    let udf = ScalarUDF::new_from_impl(MaskUdf {
        kind,
        signature: Signature::any(1, Volatility::Immutable),
    });
    udf.call(vec![col(format!("\"{column}\""))]).alias(column)
}

/// A view of `provider` in which the `personal` columns are masked. Columns the table does
/// not have are ignored, so a schema change never breaks the view.
pub fn masked_provider(
    table_name: &str,
    provider: Arc<dyn TableProvider>,
    personal: &[(String, MaskKind)],
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = provider.schema();
    let projection: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            match personal.iter().find(|(column, _)| column == name) {
                Some((_, kind)) => mask_expr(*kind, name),
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
