//! Loose matching of a person's name against the population register: case, punctuation,
//! titles, initials and one typo per word do not matter; a different person's name does.

/// Honorifics and degrees that registers and apps write inconsistently.
const TITLES: [&str; 16] = [
    "h", "hj", "dr", "drs", "ir", "st", "se", "sh", "spd", "skm", "amd", "ssi", "mm", "bin",
    "binti", "kh",
];

fn words(name: &str) -> Vec<String> {
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .filter(|w| !TITLES.contains(w))
        .map(str::to_string)
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn word_matches(short: &str, long: &str) -> bool {
    if short == long {
        return true;
    }
    // An initial: "M" for "Muhammad".
    if short.chars().count() == 1 {
        return long.starts_with(short);
    }
    // One typo in a word of four letters or more.
    short.chars().count() >= 4 && long.chars().count() >= 4 && edit_distance(short, long) <= 1
}

/// Whether `given` names the same person as `registered`: every word of the shorter name
/// matches a different word of the longer one, and at least one full word matches.
pub fn loosely_equal(given: &str, registered: &str) -> bool {
    let (a, b) = (words(given), words(registered));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut used = vec![false; long.len()];
    let mut full_word = false;
    for word in &short {
        let Some(index) = long
            .iter()
            .enumerate()
            .position(|(i, candidate)| !used[i] && word_matches(word, candidate))
        else {
            return false;
        };
        used[index] = true;
        full_word |= word.chars().count() > 1;
    }
    full_word
}

#[cfg(test)]
mod tests {
    use super::loosely_equal;

    #[test]
    fn spelling_variants_of_one_person_match() {
        assert!(loosely_equal("SITI AMINAH", "Siti Aminah"));
        assert!(loosely_equal("Hj. Siti Aminah", "SITI AMINAH"));
        assert!(loosely_equal(
            "M. Rizki Ramadhan",
            "Muhammad Rizki Ramadhan"
        ));
        assert!(loosely_equal("Asep Saepulloh", "Asep Saepuloh"));
        assert!(loosely_equal("Dadang", "Dadang Suherman"));
    }

    #[test]
    fn other_people_do_not_match() {
        assert!(!loosely_equal("Siti Aminah", "Siti Nurhaliza"));
        assert!(!loosely_equal("Asep", "Ujang"));
        assert!(!loosely_equal("M.", "Muhammad Rizki"));
        assert!(!loosely_equal("", "Dadang"));
        assert!(!loosely_equal("Budi Budi", "Budi Santoso"));
    }
}
