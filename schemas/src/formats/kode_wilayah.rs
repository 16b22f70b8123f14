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
    if is_dotted(raw.as_bytes()) {
        // PP.KK…: the regency's four digits are on both sides of the first dot.
        return match (raw.get(..2), raw.get(3..5)) {
            (Some(province), Some(regency)) => {
                let mut code = [0u8; 4];
                code[..2].copy_from_slice(province.as_bytes());
                code[2..].copy_from_slice(regency.as_bytes());
                check_regency(std::str::from_utf8(&code).unwrap_or_default()).map(|()| None)
            }
            _ => Ok(None),
        };
    }
    let value = raw.trim();
    let digits: String = value.chars().filter(|c| *c != '.').collect();
    let shape_ok = digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(digits.len(), 2 | 4 | 6 | 10)
        && (value == digits || value == dotted(&digits));
    if !shape_ok {
        return Err(
            "is not a Kemendagri region code: PP, PP.KK, PP.KK.CC or PP.KK.CC.DDDD (dots optional)"
                .into(),
        );
    }
    check_regency(&digits)?;
    Ok(Some(dotted(&digits)))
}

/// Checks a desa or kelurahan code; `Ok(None)` means the input is already the dotted form.
pub(super) fn check_kode_desa(raw: &str) -> Result<Option<String>, String> {
    let normal = check_kode_wilayah(raw)?;
    if normal.as_deref().unwrap_or(raw).len() == 13 {
        Ok(normal)
    } else {
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

fn check_regency(digits: &str) -> Result<(), String> {
    if digits.len() >= 4 && !known_regency(&digits[..4]) {
        return Err(format!(
            "starts with {}, which is not a known province and regency",
            &digits[..4]
        ));
    }
    Ok(())
}

fn dotted(digits: &str) -> String {
    let cuts: &[usize] = match digits.len() {
        4 => &[2],
        6 => &[2, 4],
        10 => &[2, 4, 6],
        _ => &[],
    };
    let mut out = String::with_capacity(digits.len() + cuts.len());
    for (i, c) in digits.chars().enumerate() {
        if cuts.contains(&i) {
            out.push('.');
        }
        out.push(c);
    }
    out
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
