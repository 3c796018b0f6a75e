//! Reading user files safely: only regular files (a FIFO or a device would block or never
//! end), hashed while they are read, and handed out only if they are the bytes whose hash
//! a cache key was built from ([`pinned`]). Used by the checker (sources, data files), by
//! the operations that read user files, and by the cache. Resumable state in a node's work
//! dir is checked the same way before a run resumes from it ([`workdir`]).

pub mod pinned;
pub mod workdir;

pub use pinned::{
    copy_pinned, hash_dir, hash_file, hash_path, read_pinned, read_regular, PinError,
};
