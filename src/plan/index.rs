//! The name index: for one experiment, each node name's key components at its last
//! completed run. Names never enter keys; the index exists only so that `plan` and
//! `explain` can say *why* a node is not cached ("argument `lr` changed"). One file per
//! experiment, so parallel runs of different experiments never share it; updates are a
//! read-merge-write under that experiment's own lock and land by atomic rename.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::KeyParts;
use crate::cache::{fsutil, Cache, CacheError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRecord {
    pub key: String,
    pub parts: KeyParts,
    /// Display names of the inputs, in slot order, at that run.
    pub input_names: Vec<String>,
    /// Content hash of the result.
    pub content: String,
}

pub type Index = BTreeMap<String, IndexRecord>;

fn file_stem(experiment: &str) -> String {
    let safe: String = experiment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // The hash keeps two names that sanitise alike apart.
    let h = blake3::hash(experiment.as_bytes()).to_hex();
    format!("{safe}-{}", &h[..8])
}

/// An index file's bytes; empty if they are not an index (see [`Cache::read_index`]).
pub fn parse_index(bytes: &[u8]) -> Index {
    serde_json::from_slice(bytes).unwrap_or_default()
}

impl Cache {
    fn index_path(&self, experiment: &str) -> PathBuf {
        self.root()
            .join("index")
            .join(format!("{}.json", file_stem(experiment)))
    }

    /// The index of `experiment`; empty if absent or unreadable (it only explains, it is
    /// never trusted for results).
    pub fn read_index(&self, experiment: &str) -> Index {
        std::fs::read(self.index_path(experiment))
            .map(|b| parse_index(&b))
            .unwrap_or_default()
    }

    /// Merges `records` into the index of `experiment`.
    pub fn update_index(&self, experiment: &str, records: Index) -> Result<(), CacheError> {
        // A no-op rerun changes nothing: skip the lock and the write.
        let current = self.read_index(experiment);
        if records.iter().all(|(k, v)| current.get(k) == Some(v)) {
            return Ok(());
        }
        let lock = self.lock(&format!("index-{}", file_stem(experiment)))?;
        let mut index = self.read_index(experiment);
        index.extend(records);
        let json = serde_json::to_vec_pretty(&index)
            .map_err(|e| CacheError::Corrupt(format!("serialising the index: {e}")))?;
        let result = fsutil::write_atomic(&self.index_path(experiment), &json);
        drop(lock);
        result
    }
}
