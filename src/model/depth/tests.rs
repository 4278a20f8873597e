use super::*;
use proptest::prelude::*;
use serde::Deserialize;
use serde_yaml_ng::Value;

fn nest(open: &str, close: &str, n: usize) -> String {
    format!("{}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn a_kubernetes_object_is_shallow() {
    let idms = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: a\n  annotations:\n    x: |\n      {\"a\": [[[[[[\n    y: 'it''s [[['\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns # a [[[ comment\n    mirrors: [m.io/ns, \"n.io/[ns\"]\n";
    // map, spec map, indentless sequence, entry map, flow sequence.
    assert_eq!(max_depth(idms), 5);
    let json = r#"{"apiVersion":"v1","kind":"List","items":[{"metadata":{"name":"a]]]"},"spec":{"x":[1,[2]]}}]}"#;
    assert_eq!(max_depth(json), 6);
    assert!(check(idms, 5, usize::MAX).is_ok() && check(idms, 4, usize::MAX).is_err());
}

#[test]
fn flow_nesting_is_counted_and_refused_past_the_limit() {
    assert_eq!(max_depth(&nest("[", "]", 64)), 64);
    assert!(check(&nest("[", "]", 64), 64, usize::MAX).is_ok());
    assert_eq!(check(&nest("[", "]", 65), 64, usize::MAX), Err(Excess::Depth(Position { line: 1, column: 65 })));
    assert!(check(&"{a: ".repeat(100), 64, usize::MAX).is_err());
    // A pair inside a flow sequence is a mapping of its own: [a: [a: ...]] nests twice per bracket.
    assert_eq!(max_depth(&"[a: ".repeat(10)), 20);
    assert_eq!(max_depth("[a: b, c: d, e]"), 2);
    // The mapping a `:` makes of its key opens before the key: the key is one level deeper.
    assert_eq!(max_depth("[[a]]: b\n"), 3);
    assert_eq!(max_depth("[[[a]]: b]"), 4);
    assert_eq!(max_depth("[[]: ]"), 3);
    // Unclosed brackets still count: the scanner sees them before the parser fails.
    assert!(check(&"[".repeat(100_000), 64, usize::MAX).is_err());
}

#[test]
fn block_nesting_is_counted() {
    assert_eq!(max_depth(&format!("{}x\n", "- ".repeat(70))), 70);
    assert!(check(&format!("{}x\n", "- ".repeat(70)), 64, usize::MAX).is_err());
    let mut indented = String::new();
    for i in 0..70 {
        indented.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
    }
    assert_eq!(max_depth(&indented), 70);
    // An indentless sequence (`key:` then `- item` at the key's column) is one more level.
    assert_eq!(max_depth("a:\n- b\n- c\n"), 2);
    assert_eq!(max_depth("a:\n  - b\n"), 2);
    // Documents start over.
    assert_eq!(max_depth("a:\n b:\n  c: d\n---\ne: f\n"), 3);
}

#[test]
fn brackets_in_scalars_and_comments_are_not_counted() {
    let deep = "[".repeat(200);
    for text in [
        format!("a: '{deep}'\n"),
        format!("a: 'it''s {deep}'\n"),
        format!("a: \"{deep}\"\n"),
        format!("a: \"\\\"{deep}\"\n"),
        format!("a: b{deep}\n"),
        format!("a: |\n  {deep}\n  more\nb: c\n"),
        format!("a: >-\n\n   {deep}\nb: c\n"),
        format!("a: b # {deep}\n"),
        format!("# {deep}\n"),
        format!("a: !<tag:x{deep}> b\n"),
        format!("%TAG !e! tag:x{deep}:\n--- a\n"),
        format!("{{\"a\": \"{deep}\"}}"),
    ] {
        assert!(check(&text, 64, usize::MAX).is_ok(), "{text}");
    }
}

#[test]
fn brackets_that_only_look_hidden_are_counted() {
    let deep = "[".repeat(200);
    for text in [
        // An apostrophe inside a plain scalar opens nothing.
        format!("a: it's\nb: {deep}\n"),
        format!("a: b\n  'c\nd: {deep}\n"),
        format!("[a'b, {deep}"),
        // `#` without a blank before it is not a comment.
        format!("a: b#c\nd: {deep}\n"),
        // A block scalar ends at the first line indented less than its content.
        format!("a: |\n    text\n  {deep}\n"),
        format!("- a: |\n    text\n  b: {deep}\n"),
        // A closing quote ends the scalar, whatever follows on the line.
        format!("a: 'x' {deep}\n"),
        format!("[\"x\", {deep}"),
        // A line-continued double-quoted scalar ends at its quote.
        format!("a: \"x\\\n  y\"\nb: {deep}\n"),
    ] {
        assert!(check(&text, 64, usize::MAX).is_err(), "{text}");
    }
}

#[test]
fn text_after_a_scanner_error_is_not_scanned() {
    // libyaml stops at the first scanner error and reads nothing after it.
    let deep = "[".repeat(200);
    for text in [
        format!("a: !x{deep}\n"),
        format!("a: @{deep}\n"),
        format!("a: \"\\q{deep}\n"),
        format!("a: \"unclosed {deep}"),
        format!("\u{1}{deep}"),
    ] {
        assert!(check(&text, 64, usize::MAX).is_ok(), "{text}");
    }
}

#[test]
fn tokens_are_counted_and_refused_past_the_limit() {
    // a, the mapping's start and a's key (added by libyaml), :, |, b, b's key, :, and the quoted
    // scalar: block and quoted scalars are one token however long.
    assert!(check("a: |\n  [[[[ {{ \n  more\nb: 'x, y, z'\n", 64, 9).is_ok());
    assert!(check("a: |\n  [[[[ {{ \n  more\nb: 'x, y, z'\n", 64, 8).is_err());
    // A block sequence costs a start and an end besides its entries.
    assert!(check("- - x\n- y\n", 64, 8).is_ok());
    assert!(check("- - x\n- y\n", 64, 7).is_err());
    let flat = format!("[{}]", "a,".repeat(1000));
    assert!(check(&flat, 64, 2002).is_ok());
    assert_eq!(check(&flat, 64, 2001), Err(Excess::Tokens(Position { line: 1, column: 2002 })));
}

#[test]
fn the_scan_is_linear() {
    // Far more input than anything quadratic could get through: 4 MiB of short flat entries, then
    // 4 MiB of 60-deep nesting repeated.
    let flat = "- {a: [b, c], d: 'e'}\n".repeat(190_000);
    assert_eq!(max_depth(&flat), 3);
    let deep = format!("[{}],\n", nest("[", "]", 59)).repeat(34_000);
    assert_eq!(max_depth(&format!("[{deep}]")), 61);
}

fn value_depth(v: &Value) -> usize {
    match v {
        Value::Sequence(s) => 1 + s.iter().map(value_depth).max().unwrap_or(0),
        Value::Mapping(m) => 1 + m.iter().map(|(k, v)| value_depth(k).max(value_depth(v))).max().unwrap_or(0),
        Value::Tagged(t) => value_depth(&t.value),
        _ => 0,
    }
}

/// Pieces that exercise every rule the pre-scan follows (no `*` aliases: an alias copies a subtree,
/// so a value can nest deeper than its text).
const PIECES: &[&str] = &[
    "[",
    "[",
    "[",
    "{",
    "{",
    "]",
    "]",
    "}",
    "}",
    ",",
    ", ",
    "'",
    "''",
    "\"",
    "\\\"",
    "\\",
    "\\\n",
    " ",
    "  ",
    "    ",
    "\n",
    "\n",
    "\n  ",
    "\n    ",
    "\r\n",
    "\t",
    "- ",
    "-",
    "? ",
    "?",
    ": ",
    ":",
    "#",
    " #",
    "a",
    "bc",
    "|",
    "|-",
    ">2",
    "|+\n",
    "!",
    "!!str ",
    "!<x[y]> ",
    "!a!b ",
    "&a ",
    "--- ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "%TAG !e! tag:x,2000:\n",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "é",
    "%",
    "@",
    "x[",
    "x]",
    "x:y",
    "&a",
    "!a",
    "#]",
    " #]",
    "'\\'",
    "\"\\\"\"",
];

/// Random pieces around a run of nesting that is closed again, so that some of them parse and
/// reach serde's recursion limit.
fn pieces() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(PIECES);
    let runs: &[(&str, &str)] = &[("[", "]"), ("{a: ", "}"), ("[a: ", "]"), ("- ", ""), ("[", ""), ("? ", "")];
    let run = (prop::sample::select(runs), 0usize..150);
    let part = || prop::collection::vec(piece.clone(), 0..30).prop_map(|p| p.concat());
    (part(), run, part(), part()).prop_map(|(head, ((open, close), n), middle, tail)| {
        format!("{head}{}{middle}{}{tail}", open.repeat(n), close.repeat(n))
    })
}

/// Scalars that hide brackets, quotes and comment signs, or only look as if they did.
const FLOW_SCALARS: &[&str] = &[
    "a",
    "'[x'",
    "'it''s ]]'",
    "\"a\\\"[b\"",
    "\"]\\\\\"",
    "a'b",
    "b#c",
    "x:y",
    "'#['",
    "!!str '[['",
    "&n v",
    "!<t:[x]> v",
    "\"line\\\n  [[\"",
    "'two\n  lines [['",
    "'back\\'",
    "&n",
];

fn key(k: usize, style: &mut impl Iterator<Item = bool>) -> String {
    let variant = (0..3).fold(k, |v, _| v * 2 + usize::from(style.next().unwrap_or(false)));
    match variant % 7 {
        0 => format!("k{k}"),
        1 => format!("'k{k}'"),
        2 => format!("\"k{k}\""),
        3 if k == 0 => "&a".to_string(),
        4 => format!("!!str k{k}"),
        5 => format!("[k{k}, [x]]"),
        _ => format!("&b{k} k{k}"),
    }
}
const BLOCK_SCALARS: &[&str] = &["a [b", "it's", "a ]", "x # [[ comment", "\"q\" # ]]", "a\n  'continued [[", "b#[c"];

#[derive(Debug, Clone)]
enum Node {
    Scalar(usize),
    Seq(Vec<Node>),
    Map(Vec<Node>),
    Literal,
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![4 => (0usize..100).prop_map(Node::Scalar), 1 => Just(Node::Literal)];
    leaf.prop_recursive(10, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Node::Seq),
            prop::collection::vec(inner, 0..4).prop_map(Node::Map),
        ]
    })
}

/// Renders a tree as YAML, choosing flow or block style per collection from `style` bits.
fn render(node: &Node, indent: usize, block: bool, style: &mut impl Iterator<Item = bool>, out: &mut String) {
    let pad = " ".repeat(indent);
    let flow_scalar = |i: usize| FLOW_SCALARS[i % FLOW_SCALARS.len()];
    match node {
        Node::Scalar(i) if block && style.next().unwrap_or(false) => {
            out.push_str(BLOCK_SCALARS[i % BLOCK_SCALARS.len()].replace("\n  ", &format!("\n{pad}  ")).as_str())
        }
        Node::Scalar(i) => out.push_str(&flow_scalar(*i).replace("\n  ", &format!("\n{pad}  "))),
        Node::Literal if block => out.push_str(&format!("|\n{pad}  [[[ {{ '\n{pad}   \"#\n")),
        Node::Literal => out.push_str("'lit'"),
        Node::Seq(items) if !block || items.is_empty() || style.next().unwrap_or(false) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                render(item, indent + 2, false, style, out);
                if style.next().unwrap_or(false) {
                    out.push_str(&format!(" # ]] }} '\n{pad}"));
                }
            }
            out.push(']');
        }
        Node::Map(items) if !block || items.is_empty() || style.next().unwrap_or(false) => {
            out.push('{');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!("{}: ", key(k, style)));
                render(item, indent + 2, false, style, out);
            }
            out.push('}');
        }
        Node::Seq(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&format!("{pad}- "));
                render(item, indent + 2, true, style, out);
                if style.next().unwrap_or(false) {
                    out.push_str(" # ]] [[ '");
                }
                out.push('\n');
            }
        }
        Node::Map(items) => {
            out.push('\n');
            for (k, item) in items.iter().enumerate() {
                out.push_str(&format!("{pad}{}: ", key(k, style)));
                // A sequence may sit at its key's column (indentless) or deeper.
                let child =
                    if matches!(item, Node::Seq(_)) && style.next().unwrap_or(false) { indent } else { indent + 2 };
                render(item, child, true, style, out);
                out.push('\n');
            }
        }
    }
}

/// Mostly valid YAML full of tricky scalars, sometimes wrapped deeper than serde's limit.
fn documents() -> impl Strategy<Value = String> {
    (node(), prop::collection::vec(any::<bool>(), 64), 0usize..140, any::<bool>()).prop_map(
        |(tree, bits, wrap, flow)| {
            let mut style = bits.into_iter().cycle();
            let mut body = String::new();
            render(&tree, 0, !flow, &mut style, &mut body);
            if flow {
                format!("{}{body}{}\n", "[".repeat(wrap), "]".repeat(wrap))
            } else {
                format!(
                    "{}{}\n",
                    "- ".repeat(wrap),
                    body.trim_start_matches('\n').replace('\n', &format!("\n{}", "  ".repeat(wrap)))
                )
            }
        },
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![pieces(), documents()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// The pre-scan never reports less nesting than serde_yaml_ng (libyaml) actually builds: what
    /// parses is never deeper than the scan says, and what hits serde's recursion limit of 128 is
    /// deeper than 128 for the scan too.
    #[test]
    fn never_below_what_the_parser_builds(text in text()) {
        let scanned = max_depth(&text);
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            match Value::deserialize(document) {
                Ok(value) => prop_assert!(scanned >= value_depth(&value), "scanned {scanned}, parsed {}", value_depth(&value)),
                Err(e) => {
                    if e.to_string().contains("recursion limit exceeded") {
                        prop_assert!(scanned > 128, "scanned {scanned}, parser over 128: {e}");
                    }
                    break;
                }
            }
        }
    }
}

proptest! {
    /// The byte-first search for where libyaml's reader stops agrees with testing every character.
    #[test]
    fn reader_end_agrees_with_testing_every_character(
        text in proptest::collection::vec(prop_oneof![
            Just('a'), Just(' '), Just('\t'), Just('\n'), Just('\r'), Just('\u{7F}'), Just('\u{1}'),
            Just('\u{85}'), Just('\u{9F}'), Just('é'), Just('\u{FEFF}'), Just('\u{FFFE}'), Just('😀'), Just('~'),
        ], 0..40).prop_map(|cs| cs.into_iter().collect::<String>())
    ) {
        let every = text.char_indices().find(|(_, c)| !allowed_char(*c)).map_or(text.len(), |(i, _)| i);
        prop_assert_eq!(reader_end(&text), every);
    }
}
