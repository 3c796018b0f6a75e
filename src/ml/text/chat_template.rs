//! A model's own conversation format: the Hugging Face Jinja `chat_template` from
//! `tokenizer_config.json` (or a GGUF's `tokenizer.chat_template`), rendered with
//! minijinja the way `transformers`' `apply_chat_template` renders it: `trim_blocks` and
//! `lstrip_blocks` on, loop controls, Python string methods, `raise_exception`, and the
//! tokenizer's `bos_token`/`eos_token` in the context.
//!
//! `strftime_now` is deliberately left undefined: templates that use it (Llama 3.1) fall
//! back to their fixed default date, so a render never depends on the day it runs.

use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;

use crate::ml::error::{MlError, Result};

/// Instructions a template may execute per render: a hostile template cannot hang a run.
const FUEL: u64 = 5_000_000;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    /// The `{role, content}` mapping templates index as `message['role']`.
    fn to_value(&self) -> Value {
        let map: std::collections::BTreeMap<&str, Value> = [
            ("role", Value::from(self.role.as_str())),
            ("content", Value::from(self.content.as_str())),
        ]
        .into_iter()
        .collect();
        Value::from(map)
    }

    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A compiled chat template with the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl Clone for ChatTemplate {
    fn clone(&self) -> Self {
        // Compiled once already, so this cannot fail.
        ChatTemplate::new(&self.source, &self.bos_token, &self.eos_token)
            .unwrap_or_else(|_| unreachable!("a template that compiled compiles again"))
    }
}

fn template_err(e: Error) -> MlError {
    let mut msg = format!("chat template: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    MlError::Tokenizer(msg)
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error is an error naming its line.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_err)?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat_template", source.to_string())
            .map_err(template_err)?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The conversation as the model sees it; with `add_generation_prompt`, followed by
    /// the header of the assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat_template")
            .map_err(template_err)?;
        tmpl.render(minijinja::context! {
            messages => messages.iter().map(Message::to_value).collect::<Vec<_>>(),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        })
        .map_err(template_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_default_system_prompt() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let s = t
            .render(
                &[Message::new("user", "What is the capital of France?")],
                true,
            )
            .unwrap();
        assert_eq!(
            s,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("no system role"), "{e}");
        let t = ChatTemplate::new("{% for i in range(100000000) %}x{% endfor %}", "", "").unwrap();
        assert!(t.render(&[], false).is_err());
    }
}
