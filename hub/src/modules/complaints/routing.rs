//! La Pewarta's routing rules (TOML): categories with keywords in Indonesian and Sundanese,
//! the OPD and officials of each, the Regent (copied on every complaint) and the deadlines.

use serde::{Deserialize, Serialize};

use super::workflow::ComplaintDays;

/// The shipped rules, used when `complaints.routing_file` is empty.
pub const SHIPPED: &str = include_str!("routing.toml");

/// Someone who gets complaints by SMS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Official {
    /// Name and office.
    pub nama: String,
    /// Phone, as written (normalized when sent).
    pub telepon: String,
}

/// One category.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// `jalan`: also the Open311 `service_code`.
    pub code: String,
    /// What it covers.
    pub name: String,
    /// The OPD that handles it (a bus member code).
    pub opd: String,
    /// Phrases that put a message here; a phrase matches whole words.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Who gets its complaints by SMS.
    #[serde(default)]
    pub officials: Vec<Official>,
    /// Deadline overrides, in working days.
    #[serde(default)]
    pub verification_days: Option<u32>,
    /// Deadline overrides, in working days.
    #[serde(default)]
    pub follow_up_days: Option<u32>,
    /// Deadline overrides, in working days.
    #[serde(default)]
    pub auto_close_days: Option<u32>,
    /// Deadline overrides, in working days.
    #[serde(default)]
    pub mediation_days: Option<u32>,
    /// Deadline overrides, in working days.
    #[serde(default)]
    pub regent_days: Option<u32>,
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Copied on every complaint.
    pub regent: Official,
    /// Deadlines of categories that do not set their own.
    #[serde(default)]
    pub defaults: ComplaintDays,
    /// The categories, in order: on a tie the first wins.
    #[serde(default, rename = "category")]
    pub categories: Vec<Category>,
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl Routing {
    /// Parses and checks a rules file.
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let routing: Routing =
            toml::from_str(text).map_err(|e| format!("{origin}: {}", e.message()))?;
        let mut seen = std::collections::HashSet::new();
        for category in &routing.categories {
            if !seen.insert(category.code.as_str()) {
                return Err(format!(
                    "{origin}: category '{}' is listed twice",
                    category.code
                ));
            }
            if category.code.is_empty()
                || !category
                    .code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!(
                    "{origin}: category code '{}' must be lowercase letters, digits or '_'",
                    category.code
                ));
            }
        }
        Ok(routing)
    }

    /// The category `code`.
    pub fn category(&self, code: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.code == code)
    }

    /// The deadlines of `code` (the defaults for none or an unknown one).
    pub fn days(&self, code: Option<&str>) -> ComplaintDays {
        let d = self.defaults;
        match code.and_then(|c| self.category(c)) {
            None => d,
            Some(c) => ComplaintDays {
                verification_days: c.verification_days.unwrap_or(d.verification_days),
                follow_up_days: c.follow_up_days.unwrap_or(d.follow_up_days),
                auto_close_days: c.auto_close_days.unwrap_or(d.auto_close_days),
                mediation_days: c.mediation_days.unwrap_or(d.mediation_days),
                regent_days: c.regent_days.unwrap_or(d.regent_days),
            },
        }
    }

    /// The category a message belongs to: the one with the most keyword phrases found as
    /// whole words (longer phrases first, each word used once); `None` goes to triage.
    pub fn classify(&self, text: &str) -> Option<&Category> {
        let message = words(text);
        let mut best: Option<(usize, &Category)> = None;
        for category in &self.categories {
            let mut phrases: Vec<Vec<String>> =
                category.keywords.iter().map(|k| words(k)).collect();
            phrases.sort_by_key(|p| std::cmp::Reverse(p.len()));
            let mut used = vec![false; message.len()];
            let mut hits = 0;
            for phrase in phrases.iter().filter(|p| !p.is_empty()) {
                for start in 0..message.len().saturating_sub(phrase.len() - 1) {
                    let span = start..start + phrase.len();
                    if !used[span.clone()].iter().any(|u| *u) && message[span.clone()] == phrase[..]
                    {
                        used[span].iter_mut().for_each(|u| *u = true);
                        hits += phrase.len();
                    }
                }
            }
            if hits > 0 && best.is_none_or(|(score, _)| hits > score) {
                best = Some((hits, category));
            }
        }
        best.map(|(_, category)| category)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Routing {
        Routing::parse(SHIPPED, "routing.toml").unwrap()
    }

    #[test]
    fn indonesian_and_sundanese_messages_reach_their_opd() {
        let routing = shipped();
        for (text, opd) in [
            (
                "Pak, jalan rusak parah di Jl. Ipik Gandamanah, banyak lubang",
                "PUPR",
            ),
            (
                "Jalan butut di Kampung Cibogo, tos lami teu dibenerkeun",
                "PUPR",
            ),
            ("runtah numpuk di pasar Rebo, bau pisan", "DLH"),
            ("cai pareum ti kamari di Perumahan Bumi Kiansantang", "PDAM"),
            ("lampu PJU pareum, poek pisan peuting", "DISHUB"),
            ("caah di Sukatani, imah kakeueum", "BPBD"),
            ("Pembuatan e-KTP lama sekali", "DISDUKCAPIL"),
        ] {
            let category = routing
                .classify(text)
                .unwrap_or_else(|| panic!("{text}: unmatched"));
            assert_eq!(category.opd, opd, "{text}");
        }
    }

    #[test]
    fn unmatched_messages_go_to_triage_and_whole_words_only_count() {
        let routing = shipped();
        assert!(routing.classify("Terima kasih atas pelayanannya").is_none());
        // "kk" must be a word, not part of "kakak".
        assert!(routing.classify("kakak saya").is_none());
        // Two roads phrases beat one health word.
        let mixed = routing
            .classify("jalan rusak dan jembatan putus menuju puskesmas")
            .unwrap();
        assert_eq!(mixed.code, "jalan");
    }

    #[test]
    fn deadlines_fall_back_to_the_defaults_and_bad_files_are_named() {
        let routing = shipped();
        assert_eq!(routing.days(Some("jalan")).follow_up_days, 10);
        assert_eq!(routing.days(Some("banjir")).follow_up_days, 1);
        assert_eq!(routing.days(Some("sampah")).follow_up_days, 5);
        assert_eq!(routing.days(None).verification_days, 3);
        let twice =
            format!("{SHIPPED}\n[[category]]\ncode = \"jalan\"\nname = \"x\"\nopd = \"X\"\n");
        assert!(
            Routing::parse(&twice, "mine.toml")
                .unwrap_err()
                .contains("listed twice")
        );
        assert!(
            Routing::parse("[regent]\n", "mine.toml")
                .unwrap_err()
                .starts_with("mine.toml")
        );
    }
}
