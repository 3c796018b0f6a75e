//! A defensive GGUF container parser (header, metadata, tensor directory) and tensor-by-tensor
//! dequantisation to f32.
//!
//! candle's `gguf_file::Content::read` is not used for the header because hostile input can
//! make it panic (`general.alignment = 0` divides by zero; dimension products are not
//! checked), it materialises every metadata array as `Vec<Value>` (32 bytes per element),
//! and it reports unknown tensor types without the tensor's name. Here every count, length,
//! dimension and offset is checked against the file length with checked arithmetic before
//! anything is allocated, and arrays are stored typed. candle's block types still do the
//! dequantising, so the values are exactly candle's (and ggml's) dequantisation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, Device, Tensor};

use crate::ml::error::{MlError, Result};

/// GGUF's magic, "GGUF" read as a little-endian u32.
pub(crate) const GGUF_MAGIC: u32 = 0x4655_4747;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// Nested metadata arrays deeper than this are refused (llama.cpp writes none).
const MAX_DEPTH: usize = 4;
/// Bytes read per dequantisation chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// A metadata value; arrays are stored typed (an array of u8 costs 8 bytes an element at
/// most, never a 32-byte enum).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Meta {
    Int(i128),
    Float(f64),
    /// The value as the file wrote it, for f32 values: `1e-5` stays `1e-5`, not
    /// `9.999999747378752e-6`.
    F32(f32),
    Bool(bool),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    Strs(Vec<String>),
    /// Arrays of arrays (and u64 values over i64::MAX inside arrays): kept as a count only.
    Other(u64),
}

impl Meta {
    fn type_name(&self) -> &'static str {
        match self {
            Meta::Int(_) => "an integer",
            Meta::Float(_) | Meta::F32(_) => "a float",
            Meta::Bool(_) => "a bool",
            Meta::Str(_) => "a string",
            Meta::Ints(_) => "an integer array",
            Meta::Floats(_) => "a float array",
            Meta::Bools(_) => "a bool array",
            Meta::Strs(_) => "a string array",
            Meta::Other(_) => "a nested array",
        }
    }
}

/// The ggml tensor types by id (ggml.h), with their names for error messages.
pub(crate) fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_2",
        5 => "Q4_3",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        31 => "Q4_0_4_4",
        32 => "Q4_0_4_8",
        33 => "Q4_0_8_8",
        34 => "TQ1_0",
        35 => "TQ2_0",
        36 => "IQ4_NL_4_4",
        37 => "IQ4_NL_4_8",
        38 => "IQ4_NL_8_8",
        39 => "MXFP4",
        _ => return None,
    })
}

/// The types this reader dequantises, by ggml id.
pub(crate) fn supported_dtype(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        30 => GgmlDType::BF16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        _ => return None,
    })
}

pub(crate) const SUPPORTED_TYPES: &str =
    "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K";

/// One entry of the tensor directory, validated: its data lies inside the file.
#[derive(Debug, Clone)]
pub(crate) struct TensorInfo {
    pub name: String,
    /// Row-major (PyTorch) order: ggml's `ne` reversed, so `[rows, cols]` for a matrix.
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
    /// Absolute byte offset of the data in the file.
    pub start: u64,
    pub n_bytes: usize,
}

/// A parsed GGUF header.
#[derive(Debug)]
pub(crate) struct Gguf {
    pub metadata: HashMap<String, Meta>,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Meta> {
        self.metadata.get(key)
    }
}

/// Reads from a buffered file, tracking the position and the bytes left.
struct Cursor<R> {
    r: R,
    pos: u64,
    len: u64,
    /// 4 in GGUF v1 (u32 lengths and counts), 8 after.
    len_size: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        let mut b = [0u8; N];
        if self.remaining() < N as u64 {
            return Err(format!("file ends inside {what} at byte {}", self.pos));
        }
        self.r
            .read_exact(&mut b)
            .map_err(|e| format!("reading {what} at byte {}: {e}", self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u8(&mut self, what: &str) -> std::result::Result<u8, String> {
        Ok(self.bytes::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.bytes(what)?))
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }
    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A length or count (u32 in v1, u64 after).
    fn len_field(&mut self, what: &str) -> std::result::Result<u64, String> {
        if self.len_size == 4 {
            Ok(self.u32(what)? as u64)
        } else {
            self.u64(what)
        }
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let n = self.len_field(what)?;
        if n > self.remaining() {
            return Err(format!(
                "{what} at byte {} claims {n} bytes, but only {} remain",
                self.pos,
                self.remaining()
            ));
        }
        let mut v = vec![0u8; n as usize];
        self.r
            .read_exact(&mut v)
            .map_err(|e| format!("reading {what} at byte {}: {e}", self.pos))?;
        self.pos += n;
        // Some writers NUL-terminate; GGUF strings are not.
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

/// Minimum bytes one value of metadata type `t` takes on disk.
fn min_size(t: u32, len_size: u64) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => len_size,
        9 => 4 + len_size,
        _ => return None,
    })
}

fn read_scalar<R: Read + Seek>(
    c: &mut Cursor<R>,
    t: u32,
    what: &str,
) -> std::result::Result<Meta, String> {
    Ok(match t {
        0 => Meta::Int(c.u8(what)? as i128),
        1 => Meta::Int(c.u8(what)? as i8 as i128),
        2 => Meta::Int(c.u16(what)? as i128),
        3 => Meta::Int(c.u16(what)? as i16 as i128),
        4 => Meta::Int(c.u32(what)? as i128),
        5 => Meta::Int(c.u32(what)? as i32 as i128),
        10 => Meta::Int(c.u64(what)? as i128),
        11 => Meta::Int(c.u64(what)? as i64 as i128),
        6 => Meta::F32(f32::from_bits(c.u32(what)?)),
        12 => Meta::Float(f64::from_bits(c.u64(what)?)),
        7 => match c.u8(what)? {
            0 => Meta::Bool(false),
            1 => Meta::Bool(true),
            b => return Err(format!("{what}: invalid bool byte {b}")),
        },
        8 => Meta::Str(c.string(what)?),
        _ => return Err(format!("{what}: unknown metadata type {t}")),
    })
}

fn read_value<R: Read + Seek>(
    c: &mut Cursor<R>,
    t: u32,
    what: &str,
    depth: usize,
) -> std::result::Result<Meta, String> {
    if t != 9 {
        return read_scalar(c, t, what);
    }
    if depth >= MAX_DEPTH {
        return Err(format!("{what}: arrays nested deeper than {MAX_DEPTH}"));
    }
    let et = c.u32(what)?;
    let n = c.len_field(what)?;
    let min = min_size(et, c.len_size)
        .ok_or_else(|| format!("{what}: unknown array element type {et}"))?;
    let needed = n.saturating_mul(min);
    if needed > c.remaining() {
        return Err(format!(
            "{what}: array of {n} elements needs at least {needed} bytes, only {} remain",
            c.remaining()
        ));
    }
    // `n` is now bounded by the file length: the vectors below are at most a few times it.
    let n = n as usize;
    Ok(match et {
        0..=5 | 10 | 11 => {
            let mut v = Vec::with_capacity(n);
            let mut in_range = true;
            for _ in 0..n {
                if let Meta::Int(x) = read_scalar(c, et, what)? {
                    match i64::try_from(x) {
                        Ok(x) => v.push(x),
                        Err(_) => in_range = false,
                    }
                }
            }
            if in_range {
                Meta::Ints(v)
            } else {
                Meta::Other(n as u64)
            }
        }
        6 | 12 => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                match read_scalar(c, et, what)? {
                    Meta::F32(x) => v.push(x as f64),
                    Meta::Float(x) => v.push(x),
                    _ => {}
                }
            }
            Meta::Floats(v)
        }
        7 => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(matches!(read_scalar(c, et, what)?, Meta::Bool(true)));
            }
            Meta::Bools(v)
        }
        8 => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.string(what)?);
            }
            Meta::Strs(v)
        }
        _ => {
            for _ in 0..n {
                read_value(c, et, what, depth + 1)?;
            }
            Meta::Other(n as u64)
        }
    })
}

/// Parses the header of the GGUF file at `path` and validates the tensor directory against
/// the file length. Reads no tensor data.
pub(crate) fn read_header(path: &Path) -> Result<Gguf> {
    let bad = |m: String| MlError::bad_file(path, m);
    let file = File::open(path).map_err(|e| MlError::io(path, e))?;
    let len = file.metadata().map_err(|e| MlError::io(path, e))?.len();
    let mut c = Cursor {
        r: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len,
        len_size: 8,
    };
    let magic = c
        .u32("the magic number")
        .map_err(|_| bad(format!("not a GGUF file: only {len} bytes")))?;
    if magic != GGUF_MAGIC {
        let shown = String::from_utf8_lossy(&magic.to_le_bytes()).into_owned();
        return Err(bad(format!(
            "not a GGUF file: magic {shown:?} (0x{magic:08x}), expected \"GGUF\" (big-endian GGUF files are not supported)"
        )));
    }
    let version = c.u32("the version").map_err(bad)?;
    if !(1..=3).contains(&version) {
        return Err(bad(format!(
            "unsupported GGUF version {version} (1 to 3 are)"
        )));
    }
    if version == 1 {
        c.len_size = 4;
    }
    let n_tensors = c.len_field("the tensor count").map_err(bad)?;
    let n_kv = c.len_field("the metadata count").map_err(bad)?;
    let min_kv = c.len_size + 4 + 1;
    let min_tensor = c.len_size + 4 + 4 + 8;
    let needed = n_kv.checked_mul(min_kv).and_then(|a| {
        n_tensors
            .checked_mul(min_tensor)
            .and_then(|b| a.checked_add(b))
    });
    if needed.is_none_or(|n| n > c.remaining()) {
        return Err(bad(format!(
            "header declares {n_tensors} tensors and {n_kv} metadata entries, more than a file of {len} bytes can hold"
        )));
    }

    let mut metadata = HashMap::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}")).map_err(bad)?;
        let t = c.u32(&format!("the type of `{key}`")).map_err(bad)?;
        let value = read_value(&mut c, t, &format!("metadata `{key}`"), 0).map_err(bad)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(bad(format!("duplicate metadata key `{key}`")));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(Meta::Int(a)) if *a > 0 && *a <= 1 << 30 && (*a as u64).is_power_of_two() => *a as u64,
        Some(v) => {
            return Err(bad(format!(
                "general.alignment must be a power of two, got {v:?}"
            )))
        }
    };

    struct Raw {
        name: String,
        shape: Vec<usize>,
        type_id: u32,
        offset: u64,
    }
    let mut raws = Vec::with_capacity(n_tensors as usize);
    let mut seen = std::collections::HashSet::new();
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor name #{i}")).map_err(bad)?;
        let what = format!("tensor `{name}`");
        let n_dims = c.u32(&what).map_err(bad)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "{what} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = if c.len_size == 4 {
                c.u32(&what).map_err(bad)? as u64
            } else {
                c.u64(&what).map_err(bad)?
            };
            ne.push(d);
        }
        let type_id = c.u32(&what).map_err(bad)?;
        let offset = c.u64(&what).map_err(bad)?;
        // Dimensions must be positive and their product must fit the file (checked below).
        let mut elems: u64 = 1;
        for &d in &ne {
            if d == 0 {
                return Err(bad(format!("{what} has a zero dimension: {ne:?}")));
            }
            elems = elems
                .checked_mul(d)
                .ok_or_else(|| bad(format!("{what} has absurd dimensions {ne:?}")))?;
        }
        if elems > usize::MAX as u64 / 8 {
            return Err(bad(format!("{what} has absurd dimensions {ne:?}")));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(format!("duplicate tensor `{name}`")));
        }
        let shape = ne.iter().rev().map(|&d| d as usize).collect();
        raws.push(Raw {
            name,
            shape,
            type_id,
            offset,
        });
    }

    let data_start = c
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| bad("header too long".into()))?;
    let mut tensors = Vec::with_capacity(raws.len());
    for r in raws {
        let type_name = ggml_type_name(r.type_id);
        let dtype = match supported_dtype(r.type_id) {
            Some(d) => d,
            None => {
                let t = match type_name {
                    Some(n) => n.to_string(),
                    None => format!("unknown ({})", r.type_id),
                };
                return Err(bad(format!(
                    "tensor `{}` has GGML type {t}, which is not supported (supported: {SUPPORTED_TYPES})",
                    r.name
                )));
            }
        };
        let elems: usize = r.shape.iter().product();
        let block = dtype.block_size();
        let cols = *r.shape.last().unwrap_or(&1);
        if cols % block != 0 {
            return Err(bad(format!(
                "tensor `{}` of type {} has rows of {cols} values, not a multiple of its block size {block}",
                r.name,
                type_name.unwrap_or("?")
            )));
        }
        let n_bytes = (elems / block)
            .checked_mul(dtype.type_size())
            .ok_or_else(|| bad(format!("tensor `{}` is absurdly large", r.name)))?;
        if r.offset % alignment != 0 {
            return Err(bad(format!(
                "tensor `{}` has offset {} that is not a multiple of the alignment {alignment}",
                r.name, r.offset
            )));
        }
        let start = data_start.checked_add(r.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes as u64));
        match (start, end) {
            (Some(start), Some(end)) if end <= len => tensors.push(TensorInfo {
                name: r.name,
                shape: r.shape,
                dtype,
                start,
                n_bytes,
            }),
            _ => {
                return Err(bad(format!(
                    "tensor `{}` ({:?}, {}) needs {n_bytes} bytes at offset {} past the data start {data_start}, beyond the end of the file ({len} bytes); is the file truncated?",
                    r.name,
                    r.shape,
                    type_name.unwrap_or("?"),
                    r.offset
                )))
            }
        }
    }
    // Data ranges must not overlap (llama.cpp requires them consecutive): otherwise many
    // entries aliasing one region would dequantise to far more memory than the file holds.
    let mut ranges: Vec<(u64, u64, &str)> = tensors
        .iter()
        .map(|t| (t.start, t.start + t.n_bytes as u64, t.name.as_str()))
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(format!(
                "the data of tensors `{}` and `{}` overlap",
                w[0].2, w[1].2
            )));
        }
    }
    Ok(Gguf { metadata, tensors })
}

/// Reads tensor `info` from `file` and dequantises it to an f32 tensor of `info.shape`,
/// a chunk of blocks at a time (peak memory: the f32 result plus one chunk).
pub(crate) fn read_tensor_f32(file: &mut File, info: &TensorInfo) -> Result<Tensor> {
    let dt = info.dtype;
    let (block, type_size) = (dt.block_size(), dt.type_size());
    let elems = info.n_bytes / type_size * block;
    let blocks_per_chunk = (CHUNK_BYTES / type_size).max(1);
    // u64 storage keeps the bytes 8-aligned, as candle's block types require.
    let mut buf = vec![0u64; (blocks_per_chunk * type_size).div_ceil(8)];
    let mut out: Vec<f32> = Vec::with_capacity(elems);
    file.seek(SeekFrom::Start(info.start))
        .map_err(|e| MlError::io("gguf tensor data", e))?;
    let mut left = info.n_bytes / type_size;
    while left > 0 {
        let nb = left.min(blocks_per_chunk);
        let bytes = &mut as_bytes_mut(&mut buf)[..nb * type_size];
        file.read_exact(bytes)
            .map_err(|e| MlError::Invalid(format!("reading tensor `{}`: {e}", info.name)))?;
        // candle's block code (`GgmlType::to_float`), straight into an f32 vector.
        match dt.from_data(Cow::Borrowed(bytes)).dequantize(nb * block)? {
            CpuStorage::F32(v) => out.extend_from_slice(&v),
            _ => {
                return Err(MlError::Invalid(format!(
                    "tensor `{}`: dequantisation did not give f32",
                    info.name
                )))
            }
        }
        left -= nb;
    }
    Ok(Tensor::from_vec(out, info.shape.as_slice(), &Device::Cpu)?)
}

fn as_bytes_mut(v: &mut [u64]) -> &mut [u8] {
    let n = std::mem::size_of_val(v);
    // SAFETY: u8 has no alignment or validity requirements and the length is the slice's
    // size in bytes; the borrow of `v` covers the returned slice's lifetime.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), n) }
}

/// Accessors with clear errors for the metadata a Llama GGUF carries.
pub(crate) struct MetaView<'a> {
    pub path: &'a Path,
    pub gguf: &'a Gguf,
}

impl MetaView<'_> {
    fn err(&self, m: String) -> MlError {
        MlError::bad_file(self.path, m)
    }

    fn wrong(&self, key: &str, v: &Meta, want: &str) -> MlError {
        self.err(format!(
            "metadata `{key}` is {}, expected {want}",
            v.type_name()
        ))
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i128>> {
        match self.gguf.get(key) {
            None => Ok(None),
            Some(Meta::Int(v)) => Ok(Some(*v)),
            Some(v) => Err(self.wrong(key, v, "an integer")),
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn opt_usize(&self, key: &str, max: usize) -> Result<Option<usize>> {
        match self.opt_int(key)? {
            None => Ok(None),
            Some(v) if v >= 0 && v <= max as i128 => Ok(Some(v as usize)),
            Some(v) => Err(self.err(format!(
                "metadata `{key}` = {v} is out of range (0 to {max})"
            ))),
        }
    }

    pub fn usize(&self, key: &str, max: usize) -> Result<usize> {
        self.opt_usize(key, max)?
            .ok_or_else(|| self.err(format!("metadata `{key}` is missing")))
    }

    /// A float as JSON: f32 values by their shortest decimal form (`1e-5`, not
    /// `9.999999747378752e-6`), as `config.json` writes them.
    pub fn opt_float(&self, key: &str) -> Result<Option<f64>> {
        match self.gguf.get(key) {
            None => Ok(None),
            Some(Meta::F32(v)) => Ok(Some(f32_to_f64_shortest(*v))),
            Some(Meta::Float(v)) => Ok(Some(*v)),
            Some(Meta::Int(v)) => Ok(Some(*v as f64)),
            Some(v) => Err(self.wrong(key, v, "a float")),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.gguf.get(key) {
            None => Ok(None),
            Some(Meta::Str(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(key, v, "a string")),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.gguf.get(key) {
            None => Ok(None),
            Some(Meta::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, v, "a bool")),
        }
    }

    pub fn opt_strs(&self, key: &str) -> Result<Option<&[String]>> {
        match self.gguf.get(key) {
            None => Ok(None),
            Some(Meta::Strs(s)) => Ok(Some(s)),
            // An empty array's element type says nothing (candle writes u32).
            Some(v) if is_empty_array(v) => Ok(Some(&[])),
            Some(v) => Err(self.wrong(key, v, "a string array")),
        }
    }

    pub fn opt_ints(&self, key: &str) -> Result<Option<&[i64]>> {
        match self.gguf.get(key) {
            None => Ok(None),
            Some(Meta::Ints(s)) => Ok(Some(s)),
            Some(v) if is_empty_array(v) => Ok(Some(&[])),
            Some(v) => Err(self.wrong(key, v, "an integer array")),
        }
    }
}

fn is_empty_array(v: &Meta) -> bool {
    match v {
        Meta::Ints(a) => a.is_empty(),
        Meta::Floats(a) => a.is_empty(),
        Meta::Bools(a) => a.is_empty(),
        Meta::Strs(a) => a.is_empty(),
        Meta::Other(n) => *n == 0,
        _ => false,
    }
}

/// The f64 nearest the shortest decimal that round-trips `v` as an f32.
pub(crate) fn f32_to_f64_shortest(v: f32) -> f64 {
    if !v.is_finite() {
        return v as f64;
    }
    format!("{v:e}").parse().unwrap_or(v as f64)
}
