//! `pattern`: a JSON Schema regular expression, matched the way `jsonschema` matches it.
//!
//! The ECMA-262 pattern is translated as `jsonschema` translates it and compiled with
//! `fancy_regex`, which is what `jsonschema` runs. Patterns without look-around or
//! back-references, which is nearly all of them, are also compiled into a fully built DFA
//! from the same syntax: one table lookup per byte and no per-call set-up, which matters
//! when a column of short codes is matched cell by cell. Both engines read the same
//! pattern with the same Unicode rules, so they give the same answers; the tests below
//! check that on the canonical schemas' patterns.

use regex_automata::Anchored;
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;

/// Above this, a pattern's DFA is not worth its memory and `fancy_regex` matches alone.
const DFA_SIZE_LIMIT: usize = 2 << 20;

/// A compiled `pattern`.
pub struct Pattern {
    fancy: fancy_regex::Regex,
    /// For `^[0-9]{n}$`, `^\d{n,m}$` and the like (fixed-width codes: RT, RW, family card
    /// numbers), the allowed lengths: the text matches when it is that many ASCII digits.
    digits: Option<(usize, usize)>,
    /// The DFA and its start state for a search from the start of a text, which is every
    /// search here.
    dfa: Option<(dense::DFA<Vec<u32>>, StateID)>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pattern")
            .field("regex", &self.fancy.as_str())
            .field("dfa", &self.dfa.is_some())
            .finish()
    }
}

impl Pattern {
    /// Compiles an ECMA-262 pattern; the error names the pattern.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let translated = jsonschema_regex::to_rust_regex(pattern).map_err(|_| {
            format!("pattern '{pattern}' is not a valid ECMA-262 regular expression")
        })?;
        let fancy = fancy_regex::Regex::new(&translated)
            .map_err(|e| format!("pattern '{pattern}' does not compile: {e}"))?;
        let dfa = dense::Builder::new()
            .configure(
                dense::DFA::config()
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(2 * DFA_SIZE_LIMIT)),
            )
            .build(&translated)
            .ok()
            .and_then(|dfa| {
                let at_start = start::Config::new().anchored(Anchored::No);
                let state = dfa.start_state(&at_start).ok()?;
                Some((dfa, state))
            });
        Ok(Self {
            fancy,
            digits: digit_run(pattern),
            dfa,
        })
    }

    /// Whether the text contains a match (JSON Schema patterns are not anchored).
    pub fn is_match(&self, text: &str) -> bool {
        if let Some((min, max)) = self.digits {
            return (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        }
        if let Some(found) = self
            .dfa
            .as_ref()
            .and_then(|(dfa, start)| dfa_is_match(dfa, *start, text))
        {
            return found;
        }
        self.fancy.is_match(text).unwrap_or(false)
    }

    /// Whether the fast engine is in use (for tests).
    #[cfg(test)]
    fn has_dfa(&self) -> bool {
        self.dfa.is_some()
    }
}

/// The lengths of `^[0-9]{n}$`, `^[0-9]{n,m}$`, `^\d{n}$` or `^\d{n,m}$` exactly. In
/// ECMA-262 without the `u` flag `\d` is `[0-9]`, and `$` (not multiline) matches only at
/// the end of the text.
fn digit_run(pattern: &str) -> Option<(usize, usize)> {
    let body = pattern.strip_prefix('^')?;
    let body = body
        .strip_prefix("[0-9]")
        .or_else(|| body.strip_prefix("\\d"))?;
    let counts = body.strip_prefix('{')?.strip_suffix("}$")?;
    // `parse` alone would also take a leading `+`; it refuses the empty text.
    let number = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse::<usize>().ok())
            .flatten()
    };
    let (min, max) = match counts.split_once(',') {
        Some((min, max)) => (number(min)?, number(max)?),
        None => (number(counts)?, number(counts)?),
    };
    (min <= max).then_some((min, max))
}

/// Runs the DFA over the text a byte at a time, stopping at the first match or when no
/// match can follow. `None` when the DFA cannot decide (a quit byte), so the caller asks
/// `fancy_regex`.
fn dfa_is_match(dfa: &dense::DFA<Vec<u32>>, start: StateID, text: &str) -> Option<bool> {
    let mut state = start;
    for &byte in text.as_bytes() {
        state = dfa.next_state(state, byte);
        if dfa.is_special_state(state) {
            if dfa.is_match_state(state) {
                return Some(true);
            }
            if dfa.is_dead_state(state) {
                return Some(false);
            }
            if dfa.is_quit_state(state) {
                return None;
            }
        }
    }
    Some(dfa.is_match_state(dfa.next_eoi_state(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `pattern` in the shipped schemas, and a few that use what DFAs cannot do.
    fn patterns() -> Vec<String> {
        let mut found = Vec::new();
        fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, inner) in map {
                        match (key.as_str(), inner) {
                            ("pattern", serde_json::Value::String(p)) => found.push(p.clone()),
                            _ => walk(inner, found),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, found)),
                _ => {}
            }
        }
        for (_, text) in crate::SHIPPED_SCHEMAS {
            let document: serde_json::Value = serde_json::from_str(text).expect("schema");
            walk(&document, &mut found);
        }
        assert!(found.len() >= 5, "the schemas have patterns: {found:?}");
        found.extend(
            [
                r"^\d{3}$",
                r"^\d{2,4}$",
                r"^[0-9]{0}$",
                r"^[0-9]{3,}$",
                r"^[0-9]{16}$x",
                r"\w+@",
                r"(a)\1",
                r"^(?!x)",
                r"^\p{L}+$",
                r"[\s\S]",
                r"^.{2}$",
                "",
            ]
            .map(String::from),
        );
        found
    }

    #[test]
    fn the_dfa_agrees_with_fancy_regex_on_every_pattern() {
        let haystacks = [
            "",
            "0",
            "001",
            "0010",
            "3214",
            "32.14",
            "3214010203040506",
            "3214014502900001",
            "321401450290000",
            "2025",
            "2025-01",
            "2025-13",
            "2025-Q4",
            "2025-S2",
            "2025-Q5",
            "jumlah_penduduk",
            "Jumlah Penduduk",
            "abc",
            "aa",
            "xa",
            "ñandú",
            "é9",
            "Jl. Raya Purwakarta No. 1",
            "ppid@purwakartakab.go.id",
            " 3214",
            "3214\n",
            "١٢٣",
        ];
        let mut with_dfa = 0;
        for pattern in patterns() {
            let compiled = Pattern::new(&pattern).expect("compiles");
            with_dfa += usize::from(compiled.has_dfa());
            for haystack in haystacks {
                assert_eq!(
                    compiled.is_match(haystack),
                    compiled.fancy.is_match(haystack).unwrap(),
                    "pattern {pattern:?} on {haystack:?}"
                );
            }
        }
        assert!(with_dfa >= 5, "the schemas' patterns run on the DFA");
    }

    #[test]
    fn fixed_width_digit_patterns_are_decided_by_length_and_digits() {
        assert_eq!(digit_run("^[0-9]{16}$"), Some((16, 16)));
        assert_eq!(digit_run(r"^\d{2,4}$"), Some((2, 4)));
        assert_eq!(digit_run("^[0-9]{3,}$"), None);
        assert_eq!(digit_run("^[0-9]{4,2}$"), None);
        assert_eq!(digit_run("[0-9]{3}$"), None);
        assert_eq!(digit_run("^[0-9]{3}"), None);
        let rt = Pattern::new("^[0-9]{3}$").unwrap();
        assert!(rt.is_match("004"));
        for refused in ["04", "0041", "00a", " 004", "004\n", "١٢٣", ""] {
            assert!(!rt.is_match(refused), "{refused:?}");
        }
    }

    #[test]
    fn look_around_and_back_references_stay_with_fancy_regex() {
        assert!(!Pattern::new(r"(a)\1").unwrap().has_dfa());
        assert!(!Pattern::new(r"^(?!x)").unwrap().has_dfa());
        assert!(Pattern::new(r"^[0-9]{16}$").unwrap().has_dfa());
    }

    #[test]
    fn an_invalid_pattern_is_named_in_the_error() {
        let error = Pattern::new("([a-z]").unwrap_err();
        assert!(error.contains("([a-z]"), "{error}");
    }
}
