//! Small lexical helpers over raw text, used where pest's view is not enough: skipping
//! trivia between items, finding comments, describing the token at an error, matching
//! brackets for "unclosed `(`" labels, and bounding nesting depth before pest recurses.

use super::ast::Span;

/// Deepest bracket nesting accepted; deeper input is rejected before pest (and the AST
/// builder, and the formatter) recurse into it, so that no input can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// A `//` comment found by [`scan_comments`], classified by its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentKind {
    Plain,
    /// `///` (but not `////`).
    Doc,
    /// `//!`.
    FileDoc,
}

pub fn comment_kind(text: &str) -> CommentKind {
    if text.starts_with("///") && !text.starts_with("////") {
        CommentKind::Doc
    } else if text.starts_with("//!") {
        CommentKind::FileDoc
    } else {
        CommentKind::Plain
    }
}

/// The byte offset of the end of the line containing `pos` (the `\n` or the text's end).
pub fn line_end(text: &str, pos: usize) -> usize {
    text[pos..]
        .find('\n')
        .map(|i| pos + i)
        .unwrap_or(text.len())
}

/// The start of the line containing `pos`.
pub fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

/// Skips spaces, tabs, carriage returns and newlines.
pub fn skip_ws(text: &str, mut pos: usize) -> usize {
    let b = text.as_bytes();
    while pos < b.len() && matches!(b[pos], b' ' | b'\t' | b'\r' | b'\n') {
        pos += 1;
    }
    pos
}

/// Skips spaces and tabs (not newlines).
pub fn skip_ws_inline(text: &str, mut pos: usize) -> usize {
    let b = text.as_bytes();
    while pos < b.len() && matches!(b[pos], b' ' | b'\t' | b'\r') {
        pos += 1;
    }
    pos
}

/// Every `//` comment of the text outside strings, in order.
pub fn scan_comments(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = string_end(text, i).unwrap_or_else(|| line_end(text, i)),
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = trim_end_at(text, line_end(text, i));
                out.push(i..end.max(i + 2));
                i = line_end(text, i);
            }
            _ => i += 1,
        }
    }
    out
}

/// Drops a trailing `\r` before `end`.
fn trim_end_at(text: &str, end: usize) -> usize {
    if end > 0 && text.as_bytes()[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

/// Given the offset of an opening `"`, the offset just past its closing quote, or `None` if
/// the string is not closed on its line.
pub fn string_end(text: &str, open: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if b.get(i + 1).is_some_and(|c| *c != b'\n') {
                    i += 2;
                } else {
                    i += 1;
                }
            }
            b'"' => return Some(i + 1),
            b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

/// The first string opened in `from..to` that is not closed on its line.
pub fn unterminated_string(text: &str, from: usize, to: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    while i < to.min(b.len()) {
        match b[i] {
            b'"' => match string_end(text, i) {
                Some(end) => i = end,
                None => return Some(i),
            },
            b'/' if b.get(i + 1) == Some(&b'/') => i = line_end(text, i),
            _ => i += 1,
        }
    }
    None
}

/// The brackets opened in `from..to` and still open at `to`, innermost last, as
/// `(offset, char)`; stray closers are ignored.
pub fn open_brackets(text: &str, from: usize, to: usize) -> Vec<(usize, u8)> {
    let b = text.as_bytes();
    let mut stack = Vec::new();
    let mut i = from;
    while i < to.min(b.len()) {
        match b[i] {
            b'"' => i = string_end(text, i).unwrap_or_else(|| line_end(text, i)),
            b'/' if b.get(i + 1) == Some(&b'/') => i = line_end(text, i),
            c @ (b'(' | b'[' | b'{') => {
                stack.push((i, c));
                i += 1;
            }
            c @ (b')' | b']' | b'}') => {
                let open = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if let Some(k) = stack.iter().rposition(|(_, o)| *o == open) {
                    stack.truncate(k);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    stack
}

/// The offset of the first bracket in `from..to` that nests deeper than [`MAX_DEPTH`].
pub fn too_deep(text: &str, from: usize, to: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < to.min(b.len()) {
        match b[i] {
            b'"' => i = string_end(text, i).unwrap_or_else(|| line_end(text, i)),
            b'/' if b.get(i + 1) == Some(&b'/') => i = line_end(text, i),
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The span and a description of the token at `pos`, for "found ..." messages.
pub fn token_at(text: &str, pos: usize) -> (Span, String) {
    let pos = floor_char(text, pos);
    let rest = &text[pos..];
    let Some(c) = rest.chars().next() else {
        return (text.len()..text.len(), "end of file".to_string());
    };
    if c == '\n' || c == '\r' {
        return (pos..pos + 1, "end of line".to_string());
    }
    if c.is_ascii_alphanumeric() || c == '_' {
        let n = rest
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..n];
        let what = if c.is_ascii_digit() {
            format!("number `{word}`")
        } else {
            format!("`{word}`")
        };
        return (pos..pos + n, what);
    }
    if c == '"' {
        let end = string_end(text, pos).unwrap_or_else(|| line_end(text, pos));
        return (pos..end, "a string".to_string());
    }
    for op in ["->", "==", "!=", "<=", ">=", "//"] {
        if rest.starts_with(op) {
            let what = if op == "//" {
                "a comment".to_string()
            } else {
                format!("`{op}`")
            };
            return (pos..pos + op.len(), what);
        }
    }
    let len = c.len_utf8();
    let what = if c.is_control() {
        format!("character U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    };
    (pos..pos + len, what)
}

/// The largest char boundary at or before `pos` (clamped to the text).
pub fn floor_char(text: &str, pos: usize) -> usize {
    let mut p = pos.min(text.len());
    while !text.is_char_boundary(p) {
        p -= 1;
    }
    p
}

/// The word (identifier characters) starting at `pos`.
pub fn word_at(text: &str, pos: usize) -> &str {
    let rest = &text[pos.min(text.len())..];
    let n = rest
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .unwrap_or(rest.len());
    &rest[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_skip_strings() {
        let t = "a = \"x // y\" // real\n// two";
        let c = scan_comments(t);
        assert_eq!(c.len(), 2);
        assert_eq!(&t[c[0].clone()], "// real");
        assert_eq!(&t[c[1].clone()], "// two");
    }

    #[test]
    fn open_brackets_tracks_nesting() {
        let t = "f(a, [b, c], g(";
        let open = open_brackets(t, 0, t.len());
        assert_eq!(open, vec![(1, b'('), (14, b'(')]);
    }

    #[test]
    fn unterminated_string_found() {
        let t = "x = \"ok\" y = \"bad\nz";
        assert_eq!(unterminated_string(t, 0, t.len()), Some(13));
    }

    #[test]
    fn token_descriptions() {
        assert_eq!(token_at("abc def", 4).1, "`def`");
        assert_eq!(token_at("x", 1).1, "end of file");
        assert_eq!(token_at("é", 1).0, 0..2);
        assert_eq!(token_at("a -> b", 2).1, "`->`");
    }

    #[test]
    fn depth_limit() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(too_deep(&deep, 0, deep.len()), Some(MAX_DEPTH));
        let ok = "[".repeat(MAX_DEPTH);
        assert_eq!(too_deep(&ok, 0, ok.len()), None);
    }
}
