//! The NIK, region-code and phone formats on any text: never a panic, and a normal form is
//! itself valid and already normal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simpul_schemas::formats::Format;

fuzz_target!(|text: &str| {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date");
    for format in Format::DOMAIN {
        let mut normal = String::from("prefix");
        match format.check_into(text, today, &mut normal) {
            Ok(true) => {
                let normal = &normal["prefix".len()..];
                let mut again = String::new();
                assert_eq!(
                    format.check_into(normal, today, &mut again),
                    Ok(false),
                    "{format:?}: the normal form {normal:?} of {text:?} is not normal"
                );
            }
            Ok(false) | Err(_) => assert_eq!(normal, "prefix", "{format:?} wrote on a refusal"),
        }
    }
});
