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

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls and DEL (ESC starts the
/// sequences that clear a screen, retitle a window or move the cursor over a line already
/// printed), and the invisible format characters that reorder or hide text (bidi embeddings,
/// overrides and isolates, zero-width characters, line and paragraph separators, the BOM).
pub fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// `s` with every character [`is_unsafe_for_terminal`] shown as a JSON escape (`\u001b`; a pair
/// of them past U+FFFF), and every other character as it is. A JSON escape so that JSON output
/// passed through it still parses to the same strings; a newline is kept only when `keep_newlines`.
pub fn for_terminal(s: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe_for_terminal(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Where and why TOML text does not parse: `line L, column C: message`, with toml_edit's own
/// message only. Its `Display` quotes the offending line, and a hosts.toml line can hold an
/// `authorization` header (a broken one even more likely than a good one), so it is never shown.
pub fn toml_error(text: &str, e: &toml_edit::TomlError) -> (usize, usize, String) {
    let offset = e.span().map_or(0, |s| s.start.min(text.len()));
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column, e.message().trim().to_string())
}

/// [`toml_error`] as one phrase.
pub fn toml_error_text(text: &str, e: &toml_edit::TomlError) -> String {
    let (line, column, message) = toml_error(text, e);
    format!("line {line}, column {column}: {message}")
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

    #[test]
    fn nothing_that_steers_a_terminal_gets_through() {
        // The examples: clear the screen, retitle the window, overwrite the counts line.
        let forged = "sha256:aa\x1b[2J\x1b]0;owned\x07\r\x1b[1Anodes: 9 current, 0 pending\u{9b}31m";
        let shown = for_terminal(forged, false);
        assert_eq!(
            shown,
            "sha256:aa\\u001b[2J\\u001b]0;owned\\u0007\\u000d\\u001b[1Anodes: 9 current, 0 pending\\u009b31m"
        );
        for hidden in ["a\u{202E}b", "a\u{2066}b", "a\u{200B}b", "a\u{200F}b", "\u{FEFF}a", "a\u{2069}", "a\u{E0041}"] {
            let shown = for_terminal(hidden, false);
            assert!(shown.chars().all(|c| c.is_ascii_graphic()), "{hidden:?} shown as {shown:?}");
        }
        assert!(matches!(for_terminal("win-1: pending, é 中", false), std::borrow::Cow::Borrowed(_)));
        assert_eq!(for_terminal("a\nb", true), "a\nb");
        assert_eq!(for_terminal("a\nb", false), "a\\u000ab");
        // JSON passed through it still reads back as the same string.
        let json = serde_json::to_string("x\u{9b}\u{202E}\u{1F600}\u{E0041}").unwrap();
        let back: String = serde_json::from_str(&for_terminal(&json, false)).unwrap();
        assert_eq!(back, "x\u{9b}\u{202E}\u{1F600}\u{E0041}");
    }
}
