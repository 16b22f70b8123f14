//! Domain formats: values that have a shape in Indonesian administration. Each format both
//! checks a value and gives its normal form, which is what Simpul stores.

use std::sync::LazyLock;

mod kode_wilayah;
mod nik;
mod telepon;

pub use kode_wilayah::{normalize_kode_desa, normalize_kode_wilayah};
pub use nik::{known_regency, normalize_nik, normalize_nik_at};
pub use telepon::normalize_telepon;

/// A `format` keyword value that Simpul checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `nik`: Indonesian national identity number.
    Nik,
    /// `kode-wilayah`: Kemendagri region code at any level.
    KodeWilayah,
    /// `kode-wilayah-desa`: Kemendagri code of a desa or kelurahan.
    KodeWilayahDesa,
    /// `telepon-id`: Indonesian phone number.
    TeleponId,
    /// `date`: RFC 3339 full-date.
    Date,
    /// `date-time`: RFC 3339 date-time with an offset.
    DateTime,
    /// `email`.
    Email,
    /// `uri`: an absolute URI.
    Uri,
}

impl Format {
    /// The format named by a schema's `format` keyword, if Simpul checks it.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "nik" => Self::Nik,
            "kode-wilayah" => Self::KodeWilayah,
            "kode-wilayah-desa" => Self::KodeWilayahDesa,
            "telepon-id" => Self::TeleponId,
            "date" => Self::Date,
            "date-time" => Self::DateTime,
            "email" => Self::Email,
            "uri" => Self::Uri,
            _ => return None,
        })
    }

    /// The keyword value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nik => "nik",
            Self::KodeWilayah => "kode-wilayah",
            Self::KodeWilayahDesa => "kode-wilayah-desa",
            Self::TeleponId => "telepon-id",
            Self::Date => "date",
            Self::DateTime => "date-time",
            Self::Email => "email",
            Self::Uri => "uri",
        }
    }

    /// Checks a value; `Ok` holds the normal form when it differs from the input.
    pub fn check(self, value: &str) -> Result<Option<String>, String> {
        let keep = |valid: bool, what: &str| {
            if valid {
                Ok(None)
            } else {
                Err(format!("is not a valid {what}"))
            }
        };
        match self {
            Self::Nik => normalize_nik(value).map(Some),
            Self::KodeWilayah => normalize_kode_wilayah(value).map(Some),
            Self::KodeWilayahDesa => normalize_kode_desa(value).map(Some),
            Self::TeleponId => normalize_telepon(value).map(Some),
            // The standard formats use jsonschema's own checks, so that Simpul's verdict is
            // jsonschema's verdict.
            Self::Date => keep(standard_format(&DATE, value), "date (YYYY-MM-DD)"),
            Self::DateTime => keep(
                standard_format(&DATE_TIME, value),
                "date-time (RFC 3339, e.g. 2025-03-31T08:00:00+07:00)",
            ),
            Self::Email => keep(standard_format(&EMAIL, value), "email address"),
            Self::Uri => keep(standard_format(&URI, value), "URI"),
        }
    }

    /// The domain formats, to register with a `jsonschema` validator.
    pub const DOMAIN: [Format; 4] = [
        Self::Nik,
        Self::KodeWilayah,
        Self::KodeWilayahDesa,
        Self::TeleponId,
    ];
}

/// A `jsonschema` validator of one standard format, asserted.
fn format_validator(name: &str) -> Option<jsonschema::Validator> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&serde_json::json!({ "format": name }))
        .ok()
}

static DATE: LazyLock<Option<jsonschema::Validator>> = LazyLock::new(|| format_validator("date"));
static DATE_TIME: LazyLock<Option<jsonschema::Validator>> =
    LazyLock::new(|| format_validator("date-time"));
static EMAIL: LazyLock<Option<jsonschema::Validator>> = LazyLock::new(|| format_validator("email"));
static URI: LazyLock<Option<jsonschema::Validator>> = LazyLock::new(|| format_validator("uri"));

fn standard_format(validator: &LazyLock<Option<jsonschema::Validator>>, value: &str) -> bool {
    validator
        .as_ref()
        .is_some_and(|v| v.is_valid(&serde_json::Value::String(value.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_formats_follow_rfc_3339_and_friends() {
        assert!(Format::Date.check("2025-03-31").is_ok());
        assert!(Format::Date.check("2025-02-30").is_err());
        assert!(Format::DateTime.check("2025-03-31T08:00:00+07:00").is_ok());
        assert!(
            Format::DateTime.check("2025-03-31 08:00:00").is_err(),
            "an offset is required"
        );
        assert!(Format::Email.check("ppid@purwakartakab.go.id").is_ok());
        assert!(Format::Email.check("ppid.purwakartakab.go.id").is_err());
        assert!(
            Format::Uri
                .check("https://jdih.purwakartakab.go.id/perda/2024/1")
                .is_ok()
        );
        assert!(Format::Uri.check("jdih purwakarta").is_err());
    }

    #[test]
    fn domain_formats_return_the_normal_form() {
        assert_eq!(
            Format::KodeWilayah.check("3214").unwrap().as_deref(),
            Some("32.14")
        );
        assert_eq!(
            Format::TeleponId
                .check("0812 3456 7890")
                .unwrap()
                .as_deref(),
            Some("+6281234567890")
        );
    }
}
