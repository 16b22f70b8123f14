use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{NaiveDate, Utc};

const KABUPATEN_KOTA_CSV: &str = include_str!("../../reference/kabupaten_kota.csv");

/// Every kabupaten/kota code that has existed (current and renumbered), indexed by its four
/// digits: one lookup per value, with no hashing.
static KNOWN_REGENCIES: LazyLock<Vec<bool>> = LazyLock::new(|| {
    let mut known = vec![false; 10_000];
    for kode in KABUPATEN_KOTA_CSV
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
    {
        if let Some(index) = four_digits(kode.replace('.', "").as_bytes()) {
            known[index] = true;
        }
    }
    known
});

fn four_digits(code: &[u8]) -> Option<usize> {
    (code.len() == 4 && code.iter().all(u8::is_ascii_digit)).then(|| {
        code.iter()
            .fold(0usize, |n, digit| n * 10 + usize::from(digit - b'0'))
    })
}

/// Whether a 4-digit province+regency code is known.
pub fn known_regency(code: &str) -> bool {
    four_digits(code.as_bytes()).is_some_and(|index| KNOWN_REGENCIES[index])
}

/// Today in WIB (UTC+07:00), the day against which birth dates are checked.
pub fn today_wib() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(7)).date_naive()
}

/// Checks an NIK as of today (WIB) and returns its 16 digits.
pub fn normalize_nik(raw: &str) -> Result<String, String> {
    normalize_nik_at(raw, today_wib())
}

/// Checks an NIK as of `today` and, when the input had separators, appends its 16 digits
/// to `out` and answers `true`. `out` is left as it was otherwise.
pub(super) fn check_nik_into(
    raw: &str,
    today: NaiveDate,
    out: &mut String,
) -> Result<bool, String> {
    let digits = nik_digits(raw)?;
    check_digits(&digits, today)?;
    match digits {
        Cow::Borrowed(_) => Ok(false),
        Cow::Owned(digits) => {
            out.push_str(&digits);
            Ok(true)
        }
    }
}

/// Checks an NIK `PPRRSSDDMMYYXXXX` as of `today`:
/// - spaces, dots and dashes are removed first; 16 digits must remain;
/// - PPRR must be a known province and regency (where the NIK was issued, not necessarily
///   Purwakarta);
/// - DD is 01-31, or 41-71 for women (40 is added); MM is 01-12;
/// - DDMMYY must be a real date that is not in the future, trying 20YY, then 19YY.
pub fn normalize_nik_at(raw: &str, today: NaiveDate) -> Result<String, String> {
    let digits = nik_digits(raw)?;
    check_digits(&digits, today)?;
    Ok(digits.into_owned())
}

/// The 16 digits of an NIK, borrowed when the input has no separators.
fn nik_digits(raw: &str) -> Result<Cow<'_, str>, String> {
    let sixteen_digits = |text: &str| text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit());
    if sixteen_digits(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-'))
        .collect();
    if sixteen_digits(&digits) {
        Ok(Cow::Owned(digits))
    } else {
        Err(format!(
            "must be 16 digits after removing spaces, dots and dashes; found '{digits}'"
        ))
    }
}

/// The rules on 16 ASCII digits.
fn check_digits(digits: &str, today: NaiveDate) -> Result<(), String> {
    let regency = &digits[0..4];
    if !known_regency(regency) {
        return Err(format!(
            "starts with {regency}, which is not a known province and regency code"
        ));
    }
    let bytes = digits.as_bytes();
    let number = |at: usize| u32::from(bytes[at] - b'0') * 10 + u32::from(bytes[at + 1] - b'0');
    let (day, month, year) = (number(6), number(8), number(10));
    let birth_day = match day {
        1..=31 => day,
        41..=71 => day - 40,
        _ => {
            return Err(format!(
                "birth day {:02} is impossible: it must be 01-31, or 41-71 for women",
                day
            ));
        }
    };
    if !(1..=12).contains(&month) {
        return Err(format!(
            "birth month {month:02} is impossible: it must be 01-12"
        ));
    }
    let century_2000 = 2000 + year as i32;
    let real_past_date =
        |y: i32| NaiveDate::from_ymd_opt(y, month, birth_day).filter(|date| *date <= today);
    match real_past_date(century_2000).or_else(|| real_past_date(century_2000 - 100)) {
        Some(_) => Ok(()),
        None => Err(format!(
            "birth date {birth_day:02}-{month:02}-{year:02} is not a real date in the past"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    fn check(nik: &str) -> Result<String, String> {
        normalize_nik_at(nik, today())
    }

    #[test]
    fn accepts_a_purwakarta_nik_and_strips_separators() {
        assert_eq!(check("3214011505900001").unwrap(), "3214011505900001");
        assert_eq!(check("3214 0115 0590 0001").unwrap(), "3214011505900001");
        assert_eq!(check("32.14.01-150590-0001").unwrap(), "3214011505900001");
    }

    #[test]
    fn accepts_nik_issued_elsewhere_including_renumbered_papua_codes() {
        assert!(check("3273012003850002").is_ok(), "Kota Bandung");
        assert!(
            check("9101011203800001").is_ok(),
            "Merauke before 2022 (now 93.01)"
        );
        assert!(check("9301011203800001").is_ok(), "Merauke today");
    }

    #[test]
    fn rejects_unknown_regency() {
        let err = check("3299011505900001").unwrap_err();
        assert!(err.contains("3299"), "{err}");
    }

    #[test]
    fn women_have_forty_added_to_the_day() {
        assert!(check("3214015505900002").is_ok(), "15 May 1990, woman");
        assert!(check("3214017112900002").is_ok(), "31 Dec 1990, woman");
        let err = check("3214017212900002").unwrap_err();
        assert!(err.contains("birth day 72"), "{err}");
        let err = check("3214013512900002").unwrap_err();
        assert!(err.contains("birth day 35"), "{err}");
        let err = check("3214010012900002").unwrap_err();
        assert!(err.contains("birth day 00"), "{err}");
    }

    #[test]
    fn rejects_impossible_month_and_dates() {
        assert!(
            check("3214011513900001")
                .unwrap_err()
                .contains("birth month 13")
        );
        assert!(
            check("3214013102900001").unwrap_err().contains("31-02-90"),
            "31 February"
        );
        assert!(
            check("3214012902010001").unwrap_err().contains("29-02-01"),
            "2001 and 1901 are not leap years"
        );
        assert!(check("3214012902000001").is_ok(), "29 Feb 2000 is real");
    }

    #[test]
    fn tries_20yy_then_19yy_and_refuses_the_future() {
        assert!(check("3214011505250001").is_ok(), "2025");
        assert!(
            check("3214011505990001").is_ok(),
            "1999 (2099 is in the future)"
        );
        assert!(
            check("3214012811260001").is_ok(),
            "28 Nov 1926: 2026 would be tomorrow"
        );
        assert!(check("3214012711260001").is_ok(), "27 Nov 2026 is today");
    }

    #[test]
    fn rejects_wrong_length_and_letters() {
        assert!(check("321401150590000").unwrap_err().contains("16 digits"));
        assert!(
            check("32140115059000011")
                .unwrap_err()
                .contains("16 digits")
        );
        assert!(check("32140115O5900001").unwrap_err().contains("16 digits"));
        assert!(check("").unwrap_err().contains("16 digits"));
    }
}
