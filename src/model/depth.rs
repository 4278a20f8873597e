//! A linear pre-scan that measures how deeply a YAML or JSON text nests, before libyaml sees it.
//!
//! libyaml (inside serde_yaml_ng) spends time per token in proportion to the flow nesting depth, so
//! 100,000 nested `[` in a 200 KB file keep it busy for minutes; serde's recursion limit only
//! applies after the scanner has done that work. This pre-scan follows the token boundaries of
//! libyaml's scanner (the `unsafe-libyaml` 0.2 transcription of libyaml 0.2.5, which serde_yaml_ng
//! uses) without building tokens: which characters start a token, where a quoted, plain or block
//! scalar ends (so that brackets inside scalars and comments are not counted, and brackets outside
//! them always are), the flow level, the block indentation stack and the simple-key state that
//! decides where a block mapping starts. Where libyaml stops with a scanner error, the scan stops
//! too, since libyaml reads no further.
//!
//! The depth it reports is never below the nesting the parser builds: one level per flow
//! collection, one per block collection (an indentation level), one more for a single-pair mapping
//! inside a flow sequence (`[a: b]`) and one more for an indentless sequence (`key:` followed by
//! `- item` at the key's column). It may be above it by one per such level, which only matters for
//! texts far deeper than any Kubernetes object (those nest fewer than 15 levels).
//!
//! It also counts tokens (scalars, brackets and indicators). Depth bounds the time, but memory
//! follows the number of parser events, which serde_yaml_ng holds for a whole document: 4 MiB of
//! `[[]]` is a gigabyte of events, where a 4 MiB Kubernetes object (about one token per 8 bytes)
//! is about a hundred megabytes.
//!
//! Every character is visited a bounded number of times, so the scan is O(n).

/// A position in the text (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub line: usize,
    pub column: usize,
}

/// Why a text is refused before parsing, and where the scan found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Excess {
    Depth(Position),
    Tokens(Position),
}

/// Checks that no point of `text` nests deeper than `depth` collections and that it holds at most
/// `tokens` tokens.
pub(crate) fn check(text: &str, depth: usize, tokens: usize) -> Result<(), Excess> {
    let mut scanner = Scanner::new(text, depth, tokens);
    match scanner.run() {
        Ok(()) | Err(Halt::ScannerError) => Ok(()),
        Err(Halt::Excess(excess)) => Err(excess),
    }
}

/// The deepest nesting anywhere in `text` (for tests: no limit, scans to the end or to libyaml's
/// first scanner error).
#[cfg(test)]
pub(crate) fn max_depth(text: &str) -> usize {
    let mut scanner = Scanner::new(text, usize::MAX, usize::MAX);
    let _ = scanner.run();
    scanner.max_depth
}

enum Halt {
    /// libyaml reports a scanner error here and reads nothing after it.
    ScannerError,
    Excess(Excess),
}

type Step = Result<(), Halt>;

/// A simple key candidate at flow level 0 (libyaml keeps one per flow level; only the one at level 0
/// decides where a block mapping starts, and only it can be "required").
#[derive(Clone, Copy, Default)]
struct SimpleKey {
    possible: bool,
    required: bool,
    index: usize,
    line: usize,
    column: usize,
}

/// One block collection: the indentation column libyaml pushed for it.
struct Block {
    column: isize,
    sequence: bool,
    /// A sequence at this mapping's own column (`key:` then `- item`), which the parser nests one
    /// level deeper although the scanner pushes no indentation for it.
    indentless: bool,
}

/// The deepest nesting seen in a stretch of text: `window` since the start of the current key
/// candidate of a level (a simple key at level 0, the current entry of a flow collection), `whole`
/// since the level opened. A mapping that a `:` turns its key into opens before the key, so the key
/// was one level deeper than it looked while it was scanned.
#[derive(Clone, Copy)]
struct Peak {
    window: usize,
    whole: usize,
}

/// One flow collection.
struct Flow {
    sequence: bool,
    /// `[a: b]`: the parser nests a single-pair mapping inside the sequence.
    pair: bool,
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
    column: usize,
    indent: isize,
    blocks: Vec<Block>,
    flows: Vec<Flow>,
    /// One per flow level, plus one for block context at index 0.
    peaks: Vec<Peak>,
    extra: usize,
    simple_key_allowed: bool,
    key: SimpleKey,
    limit: usize,
    max_depth: usize,
    token_limit: usize,
    tokens: usize,
}

/// The reader refuses these ("control characters are not allowed") before the scanner reaches them.
fn allowed_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Where libyaml's reader stops: the first character it refuses, or the end. Manifests are nearly
/// all ASCII, so bytes are tested first and characters decoded only from the first non-ASCII byte.
fn reader_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let ascii_run = bytes.iter().position(|&b| !(b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r')));
    match ascii_run {
        None => text.len(),
        Some(i) => text[i..].char_indices().find(|(_, c)| !allowed_char(*c)).map_or(text.len(), |(j, _)| i + j),
    }
}

fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str, limit: usize, token_limit: usize) -> Self {
        // libyaml never reads past a character its reader refuses: the text ends there for it.
        let end = reader_end(text);
        // serde_yaml_ng sets the encoding, so the reader keeps a leading byte order mark: the
        // scanner skips it at column 0 like any other, counting a column.
        Scanner {
            s: &text.as_bytes()[..end],
            i: 0,
            line: 0,
            column: 0,
            indent: -1,
            blocks: Vec::new(),
            flows: Vec::new(),
            peaks: vec![Peak { window: 0, whole: 0 }],
            extra: 0,
            simple_key_allowed: true,
            key: SimpleKey::default(),
            limit,
            max_depth: 0,
            token_limit,
            tokens: 0,
        }
    }

    // Character classes at a byte offset from the current position, as libyaml's macros test them.

    fn at(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    fn is(&self, k: usize, b: u8) -> bool {
        self.at(k) == Some(b)
    }

    fn is_z(&self, k: usize) -> bool {
        self.i + k >= self.s.len()
    }

    fn is_blank(&self, k: usize) -> bool {
        matches!(self.at(k), Some(b' ' | b'\t'))
    }

    fn is_break(&self, k: usize) -> bool {
        match self.at(k) {
            Some(b'\r' | b'\n') => true,
            Some(0xC2) => self.is(k + 1, 0x85),
            Some(0xE2) => self.is(k + 1, 0x80) && matches!(self.at(k + 2), Some(0xA8 | 0xA9)),
            _ => false,
        }
    }

    fn is_breakz(&self, k: usize) -> bool {
        self.is_break(k) || self.is_z(k)
    }

    fn is_blankz(&self, k: usize) -> bool {
        self.is_blank(k) || self.is_breakz(k)
    }

    fn is_hex(&self, k: usize) -> bool {
        self.at(k).and_then(hex_value).is_some()
    }

    /// `---` or `...` followed by a blank, a break or the end, at column 0.
    fn at_document_indicator(&self) -> bool {
        self.column == 0
            && ((self.is(0, b'-') && self.is(1, b'-') && self.is(2, b'-'))
                || (self.is(0, b'.') && self.is(1, b'.') && self.is(2, b'.')))
            && self.is_blankz(3)
    }

    /// libyaml's SKIP: one character.
    fn skip(&mut self) {
        let width = match self.s[self.i] {
            b if b < 0x80 => 1,
            b if b < 0xE0 => 2,
            b if b < 0xF0 => 3,
            _ => 4,
        };
        self.i += width;
        self.column += 1;
    }

    /// libyaml's SKIP_LINE / READ_LINE: one line break (CR LF counts as one).
    fn skip_line(&mut self) {
        if self.is(0, b'\r') && self.is(1, b'\n') {
            self.i += 2;
        } else if self.is_break(0) {
            self.i += match self.s[self.i] {
                0xC2 => 2,
                0xE2 => 3,
                _ => 1,
            };
        } else {
            return;
        }
        self.column = 0;
        self.line += 1;
    }

    fn depth(&self) -> usize {
        self.blocks.len() + self.flows.len() + self.extra
    }

    fn grew(&mut self) -> Step {
        self.reached(self.depth())
    }

    /// Records that the parser nests `depth` levels deep at some point of the current level.
    fn reached(&mut self, depth: usize) -> Step {
        let peak = self.peaks.last_mut().expect("level 0 is always there");
        peak.window = peak.window.max(depth);
        peak.whole = peak.whole.max(depth);
        self.max_depth = self.max_depth.max(depth);
        if depth > self.limit {
            return Err(Halt::Excess(Excess::Depth(self.position())));
        }
        Ok(())
    }

    /// A new key candidate starts here at the current level.
    fn restart_window(&mut self) {
        let depth = self.depth();
        self.peaks.last_mut().expect("level 0 is always there").window = depth;
    }

    /// Counts one token as libyaml makes them: every token in the text, plus the ones it adds
    /// (block collection starts and ends, and the key of a simple key).
    fn count_token(&mut self) -> Step {
        self.tokens += 1;
        if self.tokens > self.token_limit {
            return Err(Halt::Excess(Excess::Tokens(self.position())));
        }
        Ok(())
    }

    fn position(&self) -> Position {
        Position { line: self.line + 1, column: self.column + 1 }
    }

    fn run(&mut self) -> Step {
        loop {
            self.scan_to_next_token();
            self.stale_simple_keys()?;
            self.unroll_indent(self.column as isize)?;
            let Some(c) = self.at(0) else { return Ok(()) };
            self.count_token()?;
            let flow = !self.flows.is_empty();
            match c {
                b'%' if self.column == 0 => {
                    // A directive must end its line (after an optional comment), or it is an error.
                    self.unroll_indent(-1)?;
                    self.remove_simple_key()?;
                    self.simple_key_allowed = false;
                    while !self.is_breakz(0) {
                        self.skip();
                    }
                    self.skip_line();
                }
                b'-' | b'.' if self.at_document_indicator() => {
                    self.unroll_indent(-1)?;
                    self.remove_simple_key()?;
                    self.simple_key_allowed = false;
                    self.skip();
                    self.skip();
                    self.skip();
                }
                b'[' | b'{' => {
                    self.save_simple_key()?;
                    self.flows.push(Flow { sequence: c == b'[', pair: false });
                    let depth = self.depth();
                    self.peaks.push(Peak { window: depth, whole: depth });
                    self.grew()?;
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b']' | b'}' => {
                    self.remove_simple_key()?;
                    if let Some(level) = self.flows.pop() {
                        self.extra -= usize::from(level.pair);
                        let inner = self.peaks.pop().expect("one peak per flow level").whole;
                        let outer = self.peaks.last_mut().expect("level 0 is always there");
                        outer.window = outer.window.max(inner);
                        outer.whole = outer.whole.max(inner);
                    }
                    self.simple_key_allowed = false;
                    self.skip();
                }
                b',' => {
                    self.remove_simple_key()?;
                    if let Some(level) = self.flows.last_mut() {
                        // A single-pair mapping ends with its entry.
                        if level.pair {
                            level.pair = false;
                            self.extra -= 1;
                        }
                        self.restart_window();
                    }
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'-' if self.is_blankz(1) => {
                    if !flow {
                        if !self.simple_key_allowed {
                            return Err(Halt::ScannerError);
                        }
                        self.roll_indent(self.column as isize, true)?;
                    }
                    self.remove_simple_key()?;
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'?' if flow || self.is_blankz(1) => {
                    if flow {
                        self.flow_pair()?;
                    } else {
                        if !self.simple_key_allowed {
                            return Err(Halt::ScannerError);
                        }
                        self.roll_indent(self.column as isize, false)?;
                    }
                    self.remove_simple_key()?;
                    self.simple_key_allowed = !flow;
                    self.skip();
                }
                b':' if flow || self.is_blankz(1) => {
                    if flow {
                        // Whether or not a simple key is pending, libyaml ends up with keys not
                        // allowed here; inside a flow sequence the pair is a mapping of its own.
                        self.flow_pair()?;
                        self.simple_key_allowed = false;
                    } else if self.key.possible {
                        self.count_token()?;
                        let key_peak = self.peaks[0].window;
                        let before = self.blocks.len();
                        self.roll_indent(self.key.column as isize, false)?;
                        if self.blocks.len() > before {
                            // The new block mapping holds the key scanned before it.
                            self.reached(key_peak + 1)?;
                        }
                        self.key.possible = false;
                        self.simple_key_allowed = false;
                    } else {
                        if !self.simple_key_allowed {
                            return Err(Halt::ScannerError);
                        }
                        self.roll_indent(self.column as isize, false)?;
                        self.simple_key_allowed = true;
                    }
                    self.skip();
                }
                b'*' | b'&' => {
                    self.save_simple_key()?;
                    self.simple_key_allowed = false;
                    self.scan_anchor()?;
                }
                b'!' => {
                    self.save_simple_key()?;
                    self.simple_key_allowed = false;
                    self.scan_tag()?;
                }
                b'|' | b'>' if !flow => {
                    self.remove_simple_key()?;
                    self.simple_key_allowed = true;
                    self.scan_block_scalar()?;
                }
                b'\'' | b'"' => {
                    self.save_simple_key()?;
                    self.simple_key_allowed = false;
                    self.scan_flow_scalar(c == b'\'')?;
                }
                _ if self.starts_plain_scalar(c, flow) => {
                    self.save_simple_key()?;
                    self.simple_key_allowed = false;
                    if self.scan_plain_scalar()? {
                        self.simple_key_allowed = true;
                    }
                }
                _ => return Err(Halt::ScannerError),
            }
        }
    }

    fn starts_plain_scalar(&self, c: u8, flow: bool) -> bool {
        let indicator = self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !indicator || (c == b'-' && !self.is_blank(1)) || (!flow && (c == b'?' || c == b':') && !self.is_blankz(1))
    }

    fn scan_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.s[self.i..].starts_with(b"\xEF\xBB\xBF") {
                self.skip();
            }
            while self.is(0, b' ') || ((!self.flows.is_empty() || !self.simple_key_allowed) && self.is(0, b'\t')) {
                self.skip();
            }
            if self.is(0, b'#') {
                while !self.is_breakz(0) {
                    self.skip();
                }
            }
            if !self.is_break(0) {
                return;
            }
            self.skip_line();
            if self.flows.is_empty() {
                self.simple_key_allowed = true;
            }
        }
    }

    fn stale_simple_keys(&mut self) -> Step {
        let k = self.key;
        if k.possible && (k.line < self.line || k.index + 1024 < self.i) {
            if k.required {
                return Err(Halt::ScannerError);
            }
            self.key.possible = false;
        }
        Ok(())
    }

    fn save_simple_key(&mut self) -> Step {
        if self.simple_key_allowed && self.flows.is_empty() {
            self.remove_simple_key()?;
            self.restart_window();
            self.key = SimpleKey {
                possible: true,
                required: self.indent == self.column as isize,
                index: self.i,
                line: self.line,
                column: self.column,
            };
        }
        Ok(())
    }

    fn remove_simple_key(&mut self) -> Step {
        if self.flows.is_empty() {
            if self.key.possible && self.key.required {
                return Err(Halt::ScannerError);
            }
            self.key.possible = false;
        }
        Ok(())
    }

    fn roll_indent(&mut self, column: isize, sequence: bool) -> Step {
        if !self.flows.is_empty() {
            return Ok(());
        }
        if self.indent < column {
            self.count_token()?;
            self.blocks.push(Block { column, sequence, indentless: false });
            self.indent = column;
            return self.grew();
        }
        if sequence && self.indent == column {
            if let Some(top) = self.blocks.last_mut() {
                if !top.sequence && !top.indentless {
                    top.indentless = true;
                    self.extra += 1;
                    return self.grew();
                }
            }
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) -> Step {
        if !self.flows.is_empty() {
            return Ok(());
        }
        while self.indent > column {
            self.count_token()?;
            let block = self.blocks.pop().expect("an indentation above -1 has a block");
            self.extra -= usize::from(block.indentless);
            self.indent = self.blocks.last().map_or(-1, |b| b.column);
        }
        Ok(())
    }

    fn flow_pair(&mut self) -> Step {
        let Some(level) = self.flows.last_mut() else { return Ok(()) };
        if !level.sequence || level.pair {
            return Ok(());
        }
        level.pair = true;
        self.extra += 1;
        // The pair's mapping holds the key scanned since the entry began.
        let key_peak = self.peaks.last().expect("one peak per flow level").window;
        self.grew()?;
        self.reached(key_peak + 1)
    }

    fn scan_anchor(&mut self) -> Step {
        self.skip();
        let mut length = 0;
        while self.at(0).is_some_and(is_alpha) {
            self.skip();
            length += 1;
        }
        let ends_well =
            self.is_blankz(0) || matches!(self.at(0), Some(b'?' | b':' | b',' | b']' | b'}' | b'%' | b'@' | b'`'));
        if length == 0 || !ends_well {
            return Err(Halt::ScannerError);
        }
        Ok(())
    }

    fn scan_tag(&mut self) -> Step {
        if self.is(1, b'<') {
            // Verbatim: `!<uri>`; here ',', '[' and ']' belong to the URI.
            self.skip();
            self.skip();
            if self.scan_tag_uri(true)? == 0 || !self.is(0, b'>') {
                return Err(Halt::ScannerError);
            }
            self.skip();
        } else {
            // The handle: '!', letters, and a closing '!' when there is one.
            self.skip();
            let mut handle_len = 1;
            while self.at(0).is_some_and(is_alpha) {
                self.skip();
                handle_len += 1;
            }
            let named = if self.is(0, b'!') {
                self.skip();
                handle_len += 1;
                true
            } else {
                false
            };
            let uri_len = self.scan_tag_uri(false)?;
            // `!name!` needs a suffix; a bare `!` or `!name` is a suffix itself.
            if named && handle_len > 1 && uri_len == 0 {
                return Err(Halt::ScannerError);
            }
        }
        if !self.is_blankz(0) && (self.flows.is_empty() || !self.is(0, b',')) {
            return Err(Halt::ScannerError);
        }
        Ok(())
    }

    /// Reads URI characters; returns how many (an escape counts once).
    fn scan_tag_uri(&mut self, uri_char: bool) -> Result<usize, Halt> {
        let mut length = 0;
        while let Some(c) = self.at(0) {
            let uri = is_alpha(c) || b";/?:@&=+$.%!~*'()".contains(&c) || (uri_char && matches!(c, b',' | b'[' | b']'));
            if !uri {
                break;
            }
            if c == b'%' {
                self.scan_uri_escapes()?;
            } else {
                self.skip();
            }
            length += 1;
        }
        Ok(length)
    }

    fn scan_uri_escapes(&mut self) -> Step {
        let mut width = 0;
        loop {
            if !(self.is(0, b'%') && self.is_hex(1) && self.is_hex(2)) {
                return Err(Halt::ScannerError);
            }
            let octet = hex_value(self.s[self.i + 1]).unwrap_or(0) << 4 | hex_value(self.s[self.i + 2]).unwrap_or(0);
            if width == 0 {
                width = match octet {
                    o if o & 0x80 == 0 => 1,
                    o if o & 0xE0 == 0xC0 => 2,
                    o if o & 0xF0 == 0xE0 => 3,
                    o if o & 0xF8 == 0xF0 => 4,
                    _ => return Err(Halt::ScannerError),
                };
            } else if octet & 0xC0 != 0x80 {
                return Err(Halt::ScannerError);
            }
            self.skip();
            self.skip();
            self.skip();
            width -= 1;
            if width == 0 {
                return Ok(());
            }
        }
    }

    fn scan_block_scalar(&mut self) -> Step {
        self.skip();
        let mut increment: isize = 0;
        let digit = |s: &Self| s.at(0).filter(u8::is_ascii_digit);
        if matches!(self.at(0), Some(b'+' | b'-')) {
            self.skip();
            if let Some(d) = digit(self) {
                if d == b'0' {
                    return Err(Halt::ScannerError);
                }
                increment = (d - b'0') as isize;
                self.skip();
            }
        } else if let Some(d) = digit(self) {
            if d == b'0' {
                return Err(Halt::ScannerError);
            }
            increment = (d - b'0') as isize;
            self.skip();
            if matches!(self.at(0), Some(b'+' | b'-')) {
                self.skip();
            }
        }
        while self.is_blank(0) {
            self.skip();
        }
        if self.is(0, b'#') {
            while !self.is_breakz(0) {
                self.skip();
            }
        }
        if !self.is_breakz(0) {
            return Err(Halt::ScannerError);
        }
        self.skip_line();
        let mut indent: isize = 0;
        if increment != 0 {
            indent = if self.indent >= 0 { self.indent + increment } else { increment };
        }
        self.block_scalar_breaks(&mut indent)?;
        while self.column as isize == indent && !self.is_z(0) {
            while !self.is_breakz(0) {
                self.skip();
            }
            self.skip_line();
            self.block_scalar_breaks(&mut indent)?;
        }
        Ok(())
    }

    fn block_scalar_breaks(&mut self, indent: &mut isize) -> Step {
        let mut max_indent: isize = 0;
        loop {
            while (*indent == 0 || (self.column as isize) < *indent) && self.is(0, b' ') {
                self.skip();
            }
            max_indent = max_indent.max(self.column as isize);
            if (*indent == 0 || (self.column as isize) < *indent) && self.is(0, b'\t') {
                return Err(Halt::ScannerError);
            }
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        Ok(())
    }

    fn scan_flow_scalar(&mut self, single: bool) -> Step {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if self.at_document_indicator() || self.is_z(0) {
                return Err(Halt::ScannerError);
            }
            while !self.is_blankz(0) {
                if single && self.is(0, b'\'') && self.is(1, b'\'') {
                    self.skip();
                    self.skip();
                    continue;
                }
                if self.is(0, quote) {
                    break;
                }
                if !single && self.is(0, b'\\') && self.is_break(1) {
                    self.skip();
                    self.skip_line();
                    break;
                }
                if !single && self.is(0, b'\\') {
                    let code_length = match self.at(1) {
                        Some(
                            b'0' | b'a' | b'b' | b't' | b'\t' | b'n' | b'v' | b'f' | b'r' | b'e' | b' ' | b'"' | b'/'
                            | b'\\' | b'N' | b'_' | b'L' | b'P',
                        ) => 0,
                        Some(b'x') => 2,
                        Some(b'u') => 4,
                        Some(b'U') => 8,
                        _ => return Err(Halt::ScannerError),
                    };
                    self.skip();
                    self.skip();
                    if code_length > 0 {
                        let mut value: u32 = 0;
                        for k in 0..code_length {
                            let Some(v) = self.at(k).and_then(hex_value) else { return Err(Halt::ScannerError) };
                            value = (value << 4) + v;
                        }
                        if (0xD800..=0xDFFF).contains(&value) || value > 0x10FFFF {
                            return Err(Halt::ScannerError);
                        }
                        for _ in 0..code_length {
                            self.skip();
                        }
                    }
                    continue;
                }
                self.skip();
            }
            if self.is(0, quote) {
                self.skip();
                return Ok(());
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    /// Returns whether the scalar ended after a line break (libyaml then allows a simple key).
    fn scan_plain_scalar(&mut self) -> Result<bool, Halt> {
        let flow = !self.flows.is_empty();
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.at_document_indicator() || self.is(0, b'#') {
                break;
            }
            while !self.is_blankz(0) {
                if flow && self.is(0, b':') && matches!(self.at(1), Some(b',' | b'?' | b'[' | b']' | b'{' | b'}')) {
                    return Err(Halt::ScannerError);
                }
                if (self.is(0, b':') && self.is_blankz(1))
                    || (flow && matches!(self.at(0), Some(b',' | b'[' | b']' | b'{' | b'}')))
                {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    if leading_blanks && (self.column as isize) < indent && self.is(0, b'\t') {
                        return Err(Halt::ScannerError);
                    }
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if !flow && (self.column as isize) < indent {
                break;
            }
        }
        Ok(leading_blanks)
    }
}

#[cfg(test)]
mod tests;
