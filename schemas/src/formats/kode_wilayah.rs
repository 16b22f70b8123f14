use super::nik::known_regency;

/// Checks a Kemendagri region code and returns its dotted form. Accepts the dotted form
/// (`32`, `32.14`, `32.14.01`, `32.14.01.2001`) and the undotted one (`3214`, `3214012001`).
/// A code below the province level must start with a known province and regency.
pub fn normalize_kode_wilayah(raw: &str) -> Result<String, String> {
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
    if digits.len() >= 4 && !known_regency(&digits[..4]) {
        return Err(format!(
            "starts with {}, which is not a known province and regency",
            &digits[..4]
        ));
    }
    Ok(dotted(&digits))
}

/// Like [`normalize_kode_wilayah`], but only a desa or kelurahan code (four levels) passes.
pub fn normalize_kode_desa(raw: &str) -> Result<String, String> {
    let normal = normalize_kode_wilayah(raw)?;
    if normal.len() == 13 {
        Ok(normal)
    } else {
        Err("is not a desa or kelurahan code: it must have four levels, PP.KK.CC.DDDD".into())
    }
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
