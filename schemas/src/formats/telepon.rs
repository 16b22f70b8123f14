/// Checks an Indonesian phone number and returns it in E.164 (`+62…`). Accepts `+62…`,
/// `62…` and `0…` (mobile `08…` and landlines such as `0264…`), with spaces, dashes, dots and
/// parentheses ignored. The national number must be 8 to 12 digits, starting with 2-9.
pub fn normalize_telepon(raw: &str) -> Result<String, String> {
    Ok(check_telepon(raw)?.unwrap_or_else(|| raw.to_string()))
}

/// Checks a phone number; `Ok(None)` means the input is already in E.164.
pub(super) fn check_telepon(raw: &str) -> Result<Option<String>, String> {
    let mut normal = String::new();
    Ok(check_telepon_into(raw, &mut normal)?.then_some(normal))
}

/// Checks a phone number and, when the input is not already in E.164, appends its E.164
/// form to `out` and answers `true`. `out` is left as it was otherwise.
pub(super) fn check_telepon_into(raw: &str, out: &mut String) -> Result<bool, String> {
    if let Some(national) = raw.strip_prefix("+62")
        && valid_national(national)
    {
        return Ok(false);
    }
    // The common national form, 0 and digits only: no copy but the normal form.
    if let Some(national) = raw.strip_prefix('0')
        && valid_national(national)
    {
        out.push_str("+62");
        out.push_str(national);
        return Ok(true);
    }
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let national = compact
        .strip_prefix("+62")
        .or_else(|| compact.strip_prefix("62"))
        .or_else(|| compact.strip_prefix('0'))
        .ok_or_else(|| "must start with +62, 62 or 0".to_string())?;
    if valid_national(national) {
        out.push_str("+62");
        out.push_str(national);
        Ok(true)
    } else {
        Err(
            "is not an Indonesian phone number: after +62 or 0 come 8 to 12 digits, the first 2-9"
                .into(),
        )
    }
}

/// 8 to 12 digits, the first 2-9.
fn valid_national(national: &str) -> bool {
    (8..=12).contains(&national.len())
        && national.bytes().all(|b| b.is_ascii_digit())
        && national.starts_with(|c: char| ('2'..='9').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_and_landline_numbers_normalise_to_e164() {
        assert_eq!(
            normalize_telepon("0812-3456-7890").unwrap(),
            "+6281234567890"
        );
        assert_eq!(
            normalize_telepon("+62 812 3456 7890").unwrap(),
            "+6281234567890"
        );
        assert_eq!(
            normalize_telepon("6281234567890").unwrap(),
            "+6281234567890"
        );
        assert_eq!(normalize_telepon("(0264) 200123").unwrap(), "+62264200123");
    }

    #[test]
    fn refuses_foreign_short_and_malformed_numbers() {
        for bad in [
            "+1 202 555 0100",
            "0812",
            "08123456789012345",
            "0012345678",
            "08a2345678",
            "812345678",
        ] {
            assert!(normalize_telepon(bad).is_err(), "{bad}");
        }
    }
}
