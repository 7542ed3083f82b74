//! Content digests (SHA-256) of normalized source text.

use sha2::{Digest, Sha256};

/// The SHA-256 of a normalized text (a body, an item, a dependency list).
pub fn digest_of(normalized: &str) -> [u8; 32] {
    Sha256::digest(normalized.as_bytes()).into()
}
