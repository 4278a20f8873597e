//! Line numbers for messages. serde_yaml_ng gives a location only for syntax errors, and the
//! loader works on parsed values, so the lines of documents and keys are found in the text itself:
//! a line starting with `---` always starts a document and one starting with `...` ends it (YAML
//! forbids both inside any scalar), and content outside a document starts one.

/// The line (1-based) each document of `text` starts on, in the order the YAML parser yields them:
/// its first line of content, or its `---` line when it has none. `None` when the count disagrees
/// with the parser's (`parsed`), so that a message never points at a wrong line.
pub(super) fn document_starts(text: &str, parsed: usize) -> Option<Vec<Span>> {
    let mut docs: Vec<Span> = Vec::new();
    let mut in_doc = false;
    let mut content_seen = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if is_marker(line, "---") {
            docs.push(Span { line: n, end: usize::MAX });
            in_doc = true;
            content_seen = !is_blank(&line[3..]);
            continue;
        }
        if is_marker(line, "...") {
            in_doc = false;
            continue;
        }
        if is_blank(line) || (!in_doc && line.starts_with('%')) {
            continue;
        }
        if !in_doc {
            docs.push(Span { line: n, end: usize::MAX });
            in_doc = true;
        } else if !content_seen {
            if let Some(d) = docs.last_mut() {
                d.line = n;
            }
        }
        content_seen = true;
    }
    for i in 1..docs.len() {
        docs[i - 1].end = docs[i].line;
    }
    (docs.len() == parsed).then_some(docs)
}

/// Where one document sits in its file: from `line` up to (not including) `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub line: usize,
    pub end: usize,
}

impl Span {
    /// The line of `key` written as a mapping key inside this document, when it is written there
    /// exactly once (a key used by several entries could point at the wrong one).
    pub(super) fn key_line(&self, text: &str, key: &str) -> Option<usize> {
        let mut found = None;
        let lines = text.lines().enumerate().skip(self.line.saturating_sub(1));
        for (i, line) in lines.take_while(|(i, _)| i + 1 < self.end) {
            if has_key(line, key) {
                if found.is_some() {
                    return None;
                }
                found = Some(i + 1);
            }
        }
        found
    }
}

impl Span {
    /// This document's lines in `text`, from its first line.
    pub(super) fn text<'t>(&self, text: &'t str) -> &'t str {
        let mut start = None;
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let n = i + 1;
            if n == self.line {
                start = Some(offset);
            }
            if n == self.end {
                return start.map_or("", |s| &text[s..offset]);
            }
            offset += line.len();
        }
        start.map_or("", |s| &text[s..])
    }
}

/// The 0-based line of `text` that holds `value` as a scalar (`- value`, `key: value`, quoted, or
/// in a flow list), when exactly one line does.
pub(crate) fn value_line(text: &str, value: &str) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    let before = |c: Option<char>| c.is_none_or(|c| matches!(c, ' ' | '\t' | '[' | '{' | ',' | '"' | '\'' | ':' | '-'));
    let after = |c: Option<char>| c.is_none_or(|c| matches!(c, ' ' | '\t' | ']' | '}' | ',' | '"' | '\'' | '\r' | '#'));
    let holds = |line: &str| {
        line.match_indices(value)
            .any(|(at, _)| before(line[..at].chars().next_back()) && after(line[at + value.len()..].chars().next()))
    };
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        if holds(line) {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Whether `line` holds `key:` (bare or quoted) as a key, in block or flow style.
fn has_key(line: &str, key: &str) -> bool {
    [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':"), format!("\"{key}\" :")].iter().any(|k| {
        line.match_indices(k.as_str()).any(|(at, _)| {
            let before = line[..at].trim_end();
            before.is_empty() || before.ends_with(['-', '{', ',', '[']) || before.ends_with("- ")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Documents as the loader reads them (each one must be consumed for the next to come).
    fn parsed(text: &str) -> usize {
        use serde::Deserialize;
        serde_yaml_ng::Deserializer::from_str(text).map_while(|d| serde_yaml_ng::Value::deserialize(d).ok()).count()
    }

    fn lines(text: &str) -> Option<Vec<usize>> {
        document_starts(text, parsed(text)).map(|d| d.iter().map(|s| s.line).collect())
    }

    #[test]
    fn documents_start_at_their_first_content_line() {
        assert_eq!(lines("a: 1\n"), Some(vec![1]));
        assert_eq!(lines("# c\n\na: 1\n---\n# c\nb: 2\n"), Some(vec![3, 6]));
        assert_eq!(lines("---\na: 1\n---\nb: 2\n"), Some(vec![2, 4]));
        assert_eq!(lines("--- {a: 1}\n--- {b: 2}\n"), Some(vec![1, 2]));
        assert_eq!(lines("a: 1\n...\n---\nb: 2\n"), Some(vec![1, 4]));
        // libyaml wants `---` after `...`: the counts disagree, and no line is better than a wrong one.
        assert_eq!(lines("a: 1\n...\nb: 2\n"), None);
        assert_eq!(lines("%YAML 1.1\n---\na: |\n  x\n  ---\n"), Some(vec![3]));
        assert_eq!(lines("{\"a\": 1}"), Some(vec![1]));
    }

    #[test]
    fn counts_agree_with_the_parser_or_no_lines_are_given() {
        for text in ["", "# only\n", "---\n", "---\n---\n", "a: 1\n---\n", "---\n...\n", "...\n", "a\n---\n---\nb\n"] {
            if let Some(l) = lines(text) {
                assert_eq!(l.len(), parsed(text), "{text:?}");
            }
        }
    }

    #[test]
    fn a_value_written_once_has_its_line() {
        let text = "spec:\n  items:\n  - source: q.io/ns\n    mirrors: [\"m.io/a:v1\", m.io/b]\n  - source: q.io\n    mirrors:\n    - m.io/b\n";
        assert_eq!(value_line(text, "q.io/ns"), Some(2));
        assert_eq!(value_line(text, "m.io/a:v1"), Some(3));
        assert_eq!(value_line(text, "q.io"), Some(4), "not inside q.io/ns");
        assert_eq!(value_line(text, "m.io/b"), None, "twice: no line rather than a wrong one");
        assert_eq!(value_line(text, ""), None);
        let span = Span { line: 2, end: 4 };
        assert_eq!(span.text("a\nb\nc\nd\n"), "b\nc\n");
        assert_eq!(Span { line: 3, end: usize::MAX }.text("a\nb\nc\nd"), "c\nd");
    }

    #[test]
    fn a_key_written_once_has_its_line() {
        let text = "kind: X\nspec:\n  items:\n  - mirrorSourcePolicies: Never\n    mirrors: [a]\n  - mirrors: [b]\n";
        let span = Span { line: 1, end: usize::MAX };
        assert_eq!(span.key_line(text, "mirrorSourcePolicies"), Some(4));
        assert_eq!(span.key_line(text, "mirrors"), None, "twice: no line rather than a wrong one");
        assert_eq!(span.key_line(text, "spec"), Some(2));
        assert_eq!(Span { line: 1, end: 3 }.key_line(text, "items"), None, "outside the document");
        assert_eq!(span.key_line("{\"kind\": \"X\", \"spec\": {}}", "spec"), Some(1));
    }
}
