use super::nik::known_regency;

/// Checks a Kemendagri region code and returns its dotted form. Accepts the dotted form
/// (`32`, `32.14`, `32.14.01`, `32.14.01.2001`) and the undotted one (`3214`, `3214012001`).
/// A code below the province level must start with a known province and regency.
pub fn normalize_kode_wilayah(raw: &str) -> Result<String, String> {
    Ok(check_kode_wilayah(raw)?.unwrap_or_else(|| raw.to_string()))
}

/// Like [`normalize_kode_wilayah`], but only a desa or kelurahan code (four levels) passes.
pub fn normalize_kode_desa(raw: &str) -> Result<String, String> {
    Ok(check_kode_desa(raw)?.unwrap_or_else(|| raw.to_string()))
}

/// Checks a region code; `Ok(None)` means the input is already the dotted form.
pub(super) fn check_kode_wilayah(raw: &str) -> Result<Option<String>, String> {
    let mut normal = String::new();
    Ok(check_kode_wilayah_into(raw, &mut normal)?.then_some(normal))
}

/// Checks a region code and, when the input is not already its dotted form, appends the
/// dotted form to `out` and answers `true`. `out` is left as it was otherwise.
pub(super) fn check_kode_wilayah_into(raw: &str, out: &mut String) -> Result<bool, String> {
    if is_dotted(raw.as_bytes()) {
        // PP.KK…: the regency's four digits are on both sides of the first dot.
        if raw.len() >= 5 {
            let b = raw.as_bytes();
            check_regency(&[b[0], b[1], b[3], b[4]])?;
        }
        return Ok(false);
    }
    let value = raw.trim().as_bytes();
    let undotted = matches!(value.len(), 2 | 4 | 6 | 10) && value.iter().all(u8::is_ascii_digit);
    if !undotted && !is_dotted(value) {
        return Err(
            "is not a Kemendagri region code: PP, PP.KK, PP.KK.CC or PP.KK.CC.DDDD (dots optional)"
                .into(),
        );
    }
    let mut digits = [0u8; 10];
    let mut count = 0;
    for &b in value.iter().filter(|&&b| b != b'.') {
        digits[count] = b;
        count += 1;
    }
    let digits = &digits[..count];
    check_regency(digits)?;
    for (i, &digit) in digits.iter().enumerate() {
        if matches!(i, 2 | 4 | 6) {
            out.push('.');
        }
        out.push(char::from(digit));
    }
    Ok(true)
}

/// Checks a desa or kelurahan code; `Ok(None)` means the input is already the dotted form.
pub(super) fn check_kode_desa(raw: &str) -> Result<Option<String>, String> {
    let mut normal = String::new();
    Ok(check_kode_desa_into(raw, &mut normal)?.then_some(normal))
}

/// Like [`check_kode_wilayah_into`], but only a desa or kelurahan code (four levels)
/// passes.
pub(super) fn check_kode_desa_into(raw: &str, out: &mut String) -> Result<bool, String> {
    let from = out.len();
    let normalized = check_kode_wilayah_into(raw, out)?;
    let length = if normalized {
        out.len() - from
    } else {
        raw.len()
    };
    if length == 13 {
        Ok(normalized)
    } else {
        out.truncate(from);
        Err("is not a desa or kelurahan code: it must have four levels, PP.KK.CC.DDDD".into())
    }
}

/// `PP`, `PP.KK`, `PP.KK.CC` or `PP.KK.CC.DDDD` exactly: digits, with dots at 2, 5 and 8.
fn is_dotted(code: &[u8]) -> bool {
    matches!(code.len(), 2 | 5 | 8 | 13)
        && code.iter().enumerate().all(|(i, b)| {
            if matches!(i, 2 | 5 | 8) {
                *b == b'.'
            } else {
                b.is_ascii_digit()
            }
        })
}

fn check_regency(digits: &[u8]) -> Result<(), String> {
    let Some(regency) = digits.get(..4) else {
        return Ok(());
    };
    let regency = std::str::from_utf8(regency).unwrap_or_default();
    if !known_regency(regency) {
        return Err(format!(
            "starts with {regency}, which is not a known province and regency"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_undotted_codes_normalise_to_dotted() {
        assert_eq!(normalize_kode_wilayah("32.14").unwrap(), "32.14");
        assert_eq!(normalize_kode_wilayah("3214").unwrap(), "32.14");
        assert_eq!(normalize_kode_wilayah("321401").unwrap(), "32.14.01");
        assert_eq!(
            normalize_kode_wilayah("3214012001").unwrap(),
            "32.14.01.2001"
        );
        assert_eq!(
            normalize_kode_wilayah(" 32.14.01.1001 ").unwrap(),
            "32.14.01.1001"
        );
        assert_eq!(normalize_kode_wilayah("32").unwrap(), "32");
    }

    #[test]
    fn refuses_malformed_codes_and_unknown_regencies() {
        for bad in [
            "321",
            "32.1",
            "32.14.1",
            "3214.01",
            "32-14",
            "32.14.01.20011",
            "abcd",
            "",
        ] {
            assert!(normalize_kode_wilayah(bad).is_err(), "{bad}");
        }
        assert!(
            normalize_kode_wilayah("32.99")
                .unwrap_err()
                .contains("3299")
        );
    }

    #[test]
    fn desa_codes_need_four_levels() {
        assert_eq!(normalize_kode_desa("3214012001").unwrap(), "32.14.01.2001");
        assert!(
            normalize_kode_desa("32.14.01")
                .unwrap_err()
                .contains("four levels")
        );
    }
}
