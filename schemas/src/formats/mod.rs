//! Domain formats: values that have a shape in Indonesian administration. Each format both
//! checks a value and gives its normal form, which is what Simpul stores.

use std::sync::LazyLock;

use chrono::NaiveDate;

mod kode_wilayah;
mod nik;
mod telepon;

pub use kode_wilayah::{normalize_kode_desa, normalize_kode_wilayah};

pub use nik::{known_regency, normalize_nik, normalize_nik_at, today_wib};
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
        self.check_as_of(value, today_wib())
    }

    /// Like [`Format::check`], with the day against which NIK birth dates are checked given,
    /// so that a column of values asks the clock once.
    pub fn check_as_of(self, value: &str, today: NaiveDate) -> Result<Option<String>, String> {
        let mut normal = String::new();
        Ok(self
            .check_into(value, today, &mut normal)?
            .then_some(normal))
    }

    /// Like [`Format::check_as_of`], for a column of values: when the value is valid and
    /// its normal form differs from it, the normal form is appended to `out` and the answer
    /// is `true`. Otherwise `out` is left as it was. Nothing is allocated for a value
    /// already in its normal form.
    pub fn check_into(
        self,
        value: &str,
        today: NaiveDate,
        out: &mut String,
    ) -> Result<bool, String> {
        let keep = |valid: bool, what: &str| {
            if valid {
                Ok(false)
            } else {
                Err(format!("is not a valid {what}"))
            }
        };
        match self {
            Self::Nik => nik::check_nik_into(value, today, out),
            Self::KodeWilayah => kode_wilayah::check_kode_wilayah_into(value, out),
            Self::KodeWilayahDesa => kode_wilayah::check_kode_desa_into(value, out),
            Self::TeleponId => telepon::check_telepon_into(value, out),
            // The standard formats use jsonschema's own checks, so that Simpul's verdict is
            // jsonschema's verdict; a plain `YYYY-MM-DD` is decided here without allocating.
            Self::Date => keep(
                full_date(value).unwrap_or_else(|| standard_format(&DATE, value)),
                "date (YYYY-MM-DD)",
            ),
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

/// The verdict on a value shaped exactly `DDDD-DD-DD` (RFC 3339 full-date): whether it is a
/// real day of the proleptic Gregorian calendar. `None` for any other shape.
fn full_date(value: &str) -> Option<bool> {
    parse_full_date(value).map(|date| date.is_some())
}

/// `YYYY-MM-DD` as a date: `None` when the shape differs, `Some(None)` when the shape is
/// right but the day does not exist.
pub(crate) fn parse_full_date(value: &str) -> Option<Option<NaiveDate>> {
    let b = value.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |n, digit| n * 10 + u32::from(digit - b'0'))
    };
    Some(NaiveDate::from_ymd_opt(
        number(0..4) as i32,
        number(5..7),
        number(8..10),
    ))
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
    fn the_full_date_fast_path_agrees_with_jsonschema() {
        for value in [
            "0000-01-01",
            "2024-02-29",
            "2023-02-29",
            "1900-02-29",
            "2000-02-29",
            "9999-12-31",
            "2025-00-10",
            "2025-13-01",
            "2025-12-00",
            "2025-12-32",
            "2025-04-31",
            "1990-02-30",
        ] {
            assert_eq!(
                full_date(value),
                Some(standard_format(&DATE, value)),
                "{value}"
            );
        }
        assert_eq!(
            full_date("2025-3-31"),
            None,
            "other shapes go to jsonschema"
        );
    }

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
    fn check_into_appends_only_a_differing_normal_form() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let cases = [
            (
                Format::KodeWilayahDesa,
                "3214012001",
                Ok(Some("32.14.01.2001")),
            ),
            (
                Format::KodeWilayahDesa,
                " 32.14.01.2001 ",
                Ok(Some("32.14.01.2001")),
            ),
            (Format::KodeWilayahDesa, "32.14.01.2001", Ok(None)),
            // Normalised to 32.14 first, then refused for its level: nothing stays behind.
            (Format::KodeWilayahDesa, "3214", Err(())),
            (Format::KodeWilayahDesa, "9914012001", Err(())),
            (Format::KodeWilayah, "321401", Ok(Some("32.14.01"))),
            (Format::KodeWilayah, "32", Ok(None)),
            (Format::KodeWilayah, "32.1401", Err(())),
            (
                Format::TeleponId,
                "081234567890",
                Ok(Some("+6281234567890")),
            ),
            (
                Format::TeleponId,
                "62 812-3456-7890",
                Ok(Some("+6281234567890")),
            ),
            (Format::TeleponId, "+6281234567890", Ok(None)),
            (Format::TeleponId, "0812", Err(())),
            (
                Format::Nik,
                "3214.0145.0290.0001",
                Ok(Some("3214014502900001")),
            ),
            (Format::Nik, "3214014502900001", Ok(None)),
            (Format::Nik, "3214013502900001", Err(())),
            (Format::Date, "2025-03-31", Ok(None)),
            (Format::Date, "2025-02-30", Err(())),
        ];
        for (format, value, expected) in cases {
            let mut out = String::from("earlier|");
            let answer = format.check_into(value, today, &mut out);
            // Only a differing normal form is appended; nothing else touches the buffer.
            let appended = match expected {
                Ok(Some(normal)) => {
                    assert_eq!(answer, Ok(true), "{format:?} {value:?}");
                    normal
                }
                Ok(None) => {
                    assert_eq!(answer, Ok(false), "{format:?} {value:?}");
                    ""
                }
                Err(()) => {
                    assert!(answer.is_err(), "{format:?} {value:?}: {answer:?}");
                    ""
                }
            };
            assert_eq!(out, format!("earlier|{appended}"), "{format:?} {value:?}");
        }
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
