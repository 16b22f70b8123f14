//! The working-day calendar every Indonesian deadline uses (complaints, information
//! requests, licences): weekends, the national holidays and cuti bersama shipped in
//! `hub/reference/holidays_id_2025_2026.csv`, and the deployment's own dates from
//! `calendar.extra_holidays` (regional holidays, a Regent's decree). Dates are WIB calendar
//! days. SEMAR counts minutes and does not use it.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};

const SHIPPED: &str = include_str!("../reference/holidays_id_2025_2026.csv");

/// Weekends plus holidays.
#[derive(Debug, Clone)]
pub struct Calendar {
    holidays: BTreeMap<NaiveDate, String>,
}

/// The WIB (UTC+07:00, no daylight saving) calendar date of a moment.
pub fn wib_date(at: DateTime<Utc>) -> NaiveDate {
    (at + chrono::Duration::hours(7)).date_naive()
}

impl Calendar {
    /// The shipped holidays plus `extra` (`"2026-10-20"` or `"2026-10-20 Hari Jadi
    /// Purwakarta"`). A malformed extra date is an error that names it.
    pub fn new(extra: &[String]) -> Result<Self, String> {
        let mut holidays = BTreeMap::new();
        for line in SHIPPED.lines().skip(1) {
            let mut fields = line.splitn(3, ',');
            let (Some(date), Some(name)) = (fields.next(), fields.next()) else {
                continue;
            };
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|e| format!("the shipped holiday list has a bad date '{date}': {e}"))?;
            holidays.insert(date, name.to_string());
        }
        for entry in extra {
            let (date, name) = entry
                .trim()
                .split_once(' ')
                .unwrap_or((entry.trim(), "hari libur daerah"));
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                format!("calendar.extra_holidays: '{entry}' must start with a date, 2026-10-20")
            })?;
            holidays.insert(date, name.trim().to_string());
        }
        Ok(Self { holidays })
    }

    /// The holiday's name on `date`, if it is one.
    pub fn holiday(&self, date: NaiveDate) -> Option<&str> {
        self.holidays.get(&date).map(String::as_str)
    }

    /// Not a Saturday, Sunday or holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains_key(&date)
    }

    /// The `n`th working day after `start` (the day of receipt is not counted, and a start on
    /// a day off counts from the next working day). `n = 0` is `start`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut date = start;
        let mut counted = 0;
        while counted < n {
            date = date.succ_opt().unwrap_or(date);
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        date
    }

    /// Working days in `(from, to]`; negative when `to` is before `from`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        from.iter_days()
            .skip(1)
            .take_while(|d| *d <= to)
            .filter(|d| self.is_working_day(*d))
            .count() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ten_working_days_across_nyepi_idul_fitri_and_good_friday() {
        let calendar = Calendar::new(&[]).unwrap();
        // Filed on Tuesday 17 March 2026. By hand: 18–19 Nyepi and its cuti bersama, 20 cuti
        // bersama, 21–22 the weekend (Idul Fitri), 23–24 cuti bersama; then 25, 26, 27, 30,
        // 31 March, 1, 2 April; 3 April is Good Friday; 6, 7, 8 April. The tenth is 8 April.
        assert_eq!(
            calendar.add_working_days(day("2026-03-17"), 10),
            day("2026-04-08")
        );
        // Extended once by seven: 9, 10, 13, 14, 15, 16, 17 April.
        assert_eq!(
            calendar.add_working_days(day("2026-04-08"), 7),
            day("2026-04-17")
        );
        assert_eq!(
            calendar.working_days_between(day("2026-03-17"), day("2026-04-08")),
            10
        );
        assert_eq!(
            calendar.working_days_between(day("2026-04-08"), day("2026-03-17")),
            -10
        );
        assert!(!calendar.is_working_day(day("2026-03-23")));
        assert_eq!(calendar.holiday(day("2026-12-25")), Some("Hari Raya Natal"));
        assert!(calendar.is_working_day(day("2026-03-25")));
        // Filed on a Saturday: counting starts on Monday.
        assert_eq!(
            calendar.add_working_days(day("2026-11-28"), 1),
            day("2026-11-30")
        );
        assert_eq!(
            calendar.add_working_days(day("2026-11-28"), 0),
            day("2026-11-28")
        );
    }

    #[test]
    fn extra_holidays_count_and_bad_ones_are_named() {
        let calendar = Calendar::new(&["2026-11-30 Libur daerah".into()]).unwrap();
        assert_eq!(
            calendar.add_working_days(day("2026-11-28"), 1),
            day("2026-12-01")
        );
        assert_eq!(calendar.holiday(day("2026-11-30")), Some("Libur daerah"));
        let error = Calendar::new(&["30-11-2026".into()]).unwrap_err();
        assert!(error.contains("30-11-2026"), "{error}");
    }
}
