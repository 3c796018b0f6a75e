//! Seeds derived from content: the first eight bytes of a blake3 hash, little-endian. One
//! definition, so that a node seed and a report's bootstrap seed are read from their
//! hashes the same way on every machine.

/// The `u64` seed that `hash` stands for.
pub fn from_hash(hash: &blake3::Hash) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_eight_bytes_little_endian() {
        let h = blake3::hash(b"seed");
        let b = h.as_bytes();
        let want = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        assert_eq!(super::from_hash(&h), want);
    }
}
