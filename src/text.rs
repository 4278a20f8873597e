//! Small text helpers shared by the core and the edges.

/// Cuts `s` to at most `max` bytes without splitting a character (`String::truncate` panics
/// there, and cluster text is any UTF-8).
pub fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Lowercase hex of `bytes` (digests in state files, annotations and messages).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256 of `bytes`: what the owned-files state records per file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_character_boundary() {
        for text in ["é".repeat(600), "a".repeat(999) + "€€", "x".repeat(10)] {
            let mut cut = text.clone();
            truncate_at_char(&mut cut, 1000);
            assert!(cut.len() <= 1000 && text.starts_with(&cut));
            assert!(cut.len() > 996 || cut == text, "{}", cut.len());
        }
    }
}
