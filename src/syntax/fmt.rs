//! The formatter: prints a file that parsed without error in the canonical layout.
//!
//! Rules (also in `docs/format.md`): 2-space indentation in blocks; `name = value` with one
//! space around `=` and no alignment; `, ` between arguments; a call, list or parameter list
//! whose one-line form passes [`MAX_WIDTH`] columns, or that contains a comment, is broken
//! one element per line with a trailing comma; a blank line around blocks (`experiment`,
//! `sweep`, `report`) and after the `use` lines, and otherwise at most one blank line where
//! the user put one; comments stay where they were, own-line or trailing (one space before a
//! trailing comment); docs are printed `/// text`. Printing only reads the AST, the comment
//! list and the source text between nodes (for blank lines and comment placement), so the
//! output reparses to the same AST and formatting it again changes nothing.

use std::collections::HashMap;

use super::ast::*;
use super::lex;
use super::parser::{parse_full, Parsed};
use crate::diag::{Diagnostic, FileId, Severity};

/// Lines are broken past this many columns.
pub const MAX_WIDTH: usize = 100;

const INDENT: usize = 2;

/// Formats a file. Files with syntax errors are not formatted: their errors are returned.
pub fn format(text: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = parse_full(text, FileId(0));
    if parsed
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return Err(parsed.diagnostics);
    }
    Ok(format_parsed(text, &parsed))
}

fn format_parsed(text: &str, parsed: &Parsed) -> String {
    let mut f = Fmt {
        text,
        comments: &parsed.file.comments,
        ci: 0,
        doc_starts: &parsed.doc_starts,
    };
    f.file(&parsed.file, parsed.file_doc_end)
}

struct Fmt<'a> {
    text: &'a str,
    comments: &'a [Comment],
    /// The next comment not yet printed; comments are printed in source order.
    ci: usize,
    doc_starts: &'a HashMap<usize, usize>,
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Whether an item is a block, around which a blank line is always put.
fn is_block(item: &Item) -> bool {
    matches!(item, Item::Experiment(_) | Item::Sweep(_) | Item::Report(_))
}

fn item_span(item: &Item) -> &Span {
    match item {
        Item::Use(u) => &u.span,
        Item::Experiment(e) => &e.span,
        Item::Decl(d) => &d.span,
        Item::Sweep(s) => &s.span,
        Item::Report(r) => &r.span,
        Item::Op(o) => &o.span,
        Item::Fn(f) => &f.span,
    }
}

fn item_docs(item: &Item) -> &[String] {
    match item {
        Item::Experiment(e) => &e.doc,
        Item::Decl(d) => &d.doc,
        Item::Report(r) => &r.doc,
        Item::Op(o) => &o.doc,
        Item::Fn(f) => &f.doc,
        Item::Use(_) | Item::Sweep(_) => &[],
    }
}

fn doc_lines(out: &mut String, docs: &[String], marker: &str, indent: usize) {
    for d in docs {
        out.push_str(&pad(indent));
        out.push_str(marker);
        if !d.is_empty() {
            out.push(' ');
            out.push_str(d.trim_end());
        }
        out.push('\n');
    }
}

impl Fmt<'_> {
    fn blank_between(&self, a: usize, b: usize) -> bool {
        b > a
            && self
                .text
                .get(a..b)
                .is_some_and(|s| s.matches('\n').count() >= 2)
    }

    fn has_comment_in(&self, span: &Span) -> bool {
        let i = self.comments.partition_point(|c| c.span.start < span.start);
        self.comments
            .get(i)
            .is_some_and(|c| c.span.start < span.end)
    }

    /// The comment right after `end` on the same source line (only spaces and commas
    /// between), taken and returned as ` // text`.
    fn trailing(&mut self, end: usize) -> Option<String> {
        let c = self.comments.get(self.ci)?;
        if c.span.start < end {
            return None;
        }
        let between = self.text.get(end..c.span.start)?;
        if !between
            .chars()
            .all(|ch| ch == ' ' || ch == '\t' || ch == ',')
        {
            return None;
        }
        self.ci += 1;
        Some(format!(" {}", c.text.trim_end()))
    }

    /// Prints every comment that starts before `pos` on its own line. `prev_end` tracks the
    /// end of what was printed last, for blank lines; `first` suppresses a blank line at the
    /// start of a block.
    fn own_line_comments(
        &mut self,
        out: &mut String,
        pos: usize,
        indent: usize,
        prev_end: &mut usize,
        first: &mut bool,
        forced_blank: &mut bool,
    ) {
        while let Some(c) = self.comments.get(self.ci) {
            if c.span.start >= pos {
                break;
            }
            self.ci += 1;
            if !*first && (*forced_blank || self.blank_between(*prev_end, c.span.start)) {
                out.push('\n');
            }
            *forced_blank = false;
            *first = false;
            out.push_str(&pad(indent));
            out.push_str(c.text.trim_end());
            out.push('\n');
            *prev_end = c.span.end;
        }
    }

    fn file(&mut self, file: &File, file_doc_end: usize) -> String {
        let mut out = String::new();
        doc_lines(&mut out, &file.docs, "//!", 0);
        let mut prev_end = file_doc_end;
        // After the file docs, the rest starts after a blank line.
        let mut first = file.docs.is_empty();
        let mut forced = !file.docs.is_empty();
        let mut prev_item: Option<&Item> = None;
        for item in &file.items {
            let span = item_span(item);
            let lead = self
                .doc_starts
                .get(&span.start)
                .copied()
                .unwrap_or(span.start);
            if let Some(p) = prev_item {
                let use_boundary = matches!(p, Item::Use(_)) != matches!(item, Item::Use(_));
                forced |= is_block(p) || is_block(item) || use_boundary;
            }
            self.own_line_comments(&mut out, lead, 0, &mut prev_end, &mut first, &mut forced);
            if !first && (forced || self.blank_between(prev_end, lead)) {
                out.push('\n');
            }
            doc_lines(&mut out, item_docs(item), "///", 0);
            let body = self.item(item, 0);
            out.push_str(&body);
            prev_end = span.end;
            if let Some(t) = self.trailing(span.end) {
                out.push_str(&t);
                prev_end = self.comments[self.ci - 1].span.end;
            }
            out.push('\n');
            first = false;
            // Whatever follows a block (even a comment) starts after a blank line.
            forced = is_block(item);
            prev_item = Some(item);
        }
        let end = self.text.len() + 1;
        self.own_line_comments(&mut out, end, 0, &mut prev_end, &mut first, &mut forced);
        out
    }

    fn item(&mut self, item: &Item, indent: usize) -> String {
        match item {
            Item::Use(u) => self.use_decl(u),
            Item::Experiment(e) => {
                let members: Vec<Member> = e.settings.iter().map(Member::Setting).collect();
                self.block(
                    format!("experiment {}", e.name.name),
                    e.name.span.end,
                    &members,
                    &e.span,
                    indent,
                )
            }
            Item::Report(r) => {
                let members: Vec<Member> = r.items.iter().map(Member::Report).collect();
                self.block(
                    format!("report {}", r.name.name),
                    r.name.span.end,
                    &members,
                    &r.span,
                    indent,
                )
            }
            Item::Decl(d) => self.decl(d, indent),
            Item::Sweep(s) => {
                let mut head = String::from("sweep ");
                for (i, v) in s.vars.iter().enumerate() {
                    if i > 0 {
                        head.push_str(", ");
                    }
                    let prefix = format!("{} in ", v.name.name);
                    let col = indent + width(&head) + width(&prefix);
                    let last = i + 1 == s.vars.len();
                    let value = self.expr(&v.values, indent, col, if last { 2 } else { 1 });
                    head.push_str(&prefix);
                    head.push_str(&value);
                }
                let after = s.vars.last().map(|v| v.span.end).unwrap_or(s.span.start);
                let members: Vec<Member> = s.body.iter().map(Member::Decl).collect();
                self.block(head, after, &members, &s.span, indent)
            }
            Item::Op(o) => {
                let head = format!("op {}", o.name.name);
                let tail = format!(" -> {}", flat_ty(&o.ret));
                self.signature(
                    head,
                    &o.params,
                    o.name.span.end,
                    o.ret.span.start,
                    tail,
                    indent,
                )
            }
            Item::Fn(f) => {
                let head = format!("fn {}", f.name.name);
                let tail = format!(" -> {} =", flat_ty(&f.ret));
                let mut s = self.signature(
                    head,
                    &f.params,
                    f.name.span.end,
                    f.ret.span.start,
                    tail,
                    indent,
                );
                // The body stays on the `=` line if it fits there in one piece; otherwise
                // it starts on the next line, one level in.
                let col = last_line_width(&s) + 1;
                let flat_body = flat(&f.body);
                if !self.has_comment_in(&f.body.span) && col + width(&flat_body) <= MAX_WIDTH {
                    s.push(' ');
                    s.push_str(&flat_body);
                } else {
                    let inner = indent + INDENT;
                    let body = self.expr(&f.body, inner, inner, 0);
                    s.push('\n');
                    s.push_str(&pad(inner));
                    s.push_str(&body);
                }
                s
            }
        }
    }

    fn use_decl(&mut self, u: &UseDecl) -> String {
        let mut s = String::from("use ");
        match &u.source {
            UseSource::Std { segments, .. } => {
                s.push_str("std");
                for seg in segments {
                    s.push('.');
                    s.push_str(&seg.name);
                }
            }
            UseSource::Path { path, .. } => s.push_str(&quote(path)),
        }
        if u.names.is_empty() {
            return s;
        }
        s.push_str(".{");
        let flat = u
            .names
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let open = self.find_char(source_end(&u.source), '{');
        if width(&s) + width(&flat) < MAX_WIDTH && !self.has_comment_in(&(open..u.span.end)) {
            s.push_str(&flat);
            s.push('}');
            return s;
        }
        let elems: Vec<Elem> = u.names.iter().map(Elem::Name).collect();
        s.pop();
        s.pop();
        s.push('.');
        let rest = self.broken("{", open, &elems, "}", u.span.end, 0);
        s.push_str(&rest);
        s
    }

    fn decl(&mut self, d: &Decl, indent: usize) -> String {
        let head = format!("{} {} = ", d.kind.keyword(), d.name.name);
        let col = indent + width(&head);
        let value = self.expr(&d.value, indent, col, 0);
        head + &value
    }

    /// `op`/`fn` heads: `head(params)tail`, broken one parameter per line when too long.
    fn signature(
        &mut self,
        head: String,
        params: &[Param],
        name_end: usize,
        ret_start: usize,
        tail: String,
        indent: usize,
    ) -> String {
        let open = self.find_char(name_end, '(');
        let flat = params.iter().map(flat_param).collect::<Vec<_>>().join(", ");
        let one_line = format!("{head}({flat})");
        let fits = indent + width(&one_line) + width(tail.trim_end()) <= MAX_WIDTH;
        if params.is_empty() || (fits && !self.has_comment_in(&(open..ret_start))) {
            // Comments between `)` and the return type, if any, are printed before the next
            // item (there is no place for them on this line).
            return one_line + &tail;
        }
        let elems: Vec<Elem> = params.iter().map(Elem::Param).collect();
        let close = self.find_close_before(ret_start);
        let rest = self.broken("(", open, &elems, ")", close, indent);
        head + &rest + &tail
    }

    /// An `experiment`, `report` or `sweep` block.
    fn block(
        &mut self,
        head: String,
        after_head: usize,
        members: &[Member],
        span: &Span,
        indent: usize,
    ) -> String {
        let open = self.find_char(after_head, '{');
        let close = span.end.saturating_sub(1);
        if members.is_empty() && !self.has_comment_in(&(open..close)) {
            return format!("{head} {{}}");
        }
        let mut s = format!("{head} {{");
        if let Some(t) = self.trailing(open + 1) {
            s.push_str(&t);
        }
        s.push('\n');
        let inner = indent + INDENT;
        let mut prev_end = open + 1;
        let mut first = true;
        let mut forced = false;
        for m in members {
            let mspan = m.span();
            let lead = self
                .doc_starts
                .get(&mspan.start)
                .copied()
                .unwrap_or(mspan.start);
            self.own_line_comments(&mut s, lead, inner, &mut prev_end, &mut first, &mut forced);
            if !first && self.blank_between(prev_end, lead) {
                s.push('\n');
            }
            let body = match m {
                Member::Setting(st) => self.setting(st, inner),
                Member::Report(ReportItem::Setting(st)) => self.setting(st, inner),
                Member::Report(ReportItem::Directive { name, args, .. }) => {
                    self.directive(name, args, inner)
                }
                Member::Decl(d) => {
                    doc_lines(&mut s, &d.doc, "///", inner);
                    self.decl(d, inner)
                }
            };
            s.push_str(&pad(inner));
            s.push_str(&body);
            prev_end = mspan.end;
            if let Some(t) = self.trailing(mspan.end) {
                s.push_str(&t);
                prev_end = self.comments[self.ci - 1].span.end;
            }
            s.push('\n');
            first = false;
        }
        self.own_line_comments(&mut s, close, inner, &mut prev_end, &mut first, &mut forced);
        s.push_str(&pad(indent));
        s.push('}');
        s
    }

    fn setting(&mut self, st: &Setting, indent: usize) -> String {
        let head = format!("{} = ", st.key.name);
        let value = self.expr(&st.value, indent, indent + width(&head), 0);
        head + &value
    }

    fn directive(&mut self, name: &Ident, args: &[Arg], indent: usize) -> String {
        let mut s = name.name.clone();
        for (i, a) in args.iter().enumerate() {
            s.push_str(if i == 0 { " " } else { ", " });
            let col = indent + width(&s);
            let a = self.arg(a, indent, col, 0);
            s.push_str(&a);
        }
        s
    }

    /// An expression starting at column `col` on a line indented `indent`, followed by
    /// `suffix` more characters on its last line.
    fn expr(&mut self, e: &Expr, indent: usize, col: usize, suffix: usize) -> String {
        let commented = self.has_comment_in(&e.span);
        if !commented {
            let f = flat(e);
            let breakable = match &e.kind {
                ExprKind::Call { args, .. } => !args.is_empty(),
                ExprKind::List(items) => !items.is_empty(),
                ExprKind::Field { .. } => true,
                _ => false,
            };
            if !breakable || col + width(&f) + suffix <= MAX_WIDTH {
                return f;
            }
        }
        match &e.kind {
            ExprKind::Call { callee, args } => {
                let open = self.find_char(callee.span.end, '(');
                let elems: Vec<Elem> = args.iter().map(Elem::Arg).collect();
                let rest = self.broken("(", open, &elems, ")", e.span.end - 1, indent);
                format!("{}{}", callee.name, rest)
            }
            ExprKind::List(items) => {
                let elems: Vec<Elem> = items.iter().map(Elem::Expr).collect();
                self.broken("[", e.span.start, &elems, "]", e.span.end - 1, indent)
            }
            ExprKind::Field { base, field } => {
                let b = self.expr(base, indent, col, suffix + 1 + width(&field.name));
                format!("{b}.{}", field.name)
            }
            // Comments inside a constraint or a literal-free spot have no place of their
            // own: they are printed at the next comment position.
            _ => flat(e),
        }
    }

    /// `open` elem, elem, ... `close`, one element per line. `open_pos` and `close_pos` are
    /// the source offsets of the brackets (for comment placement).
    fn broken(
        &mut self,
        open: &str,
        open_pos: usize,
        elems: &[Elem],
        close: &str,
        close_pos: usize,
        indent: usize,
    ) -> String {
        let mut s = String::from(open);
        if let Some(t) = self.trailing(open_pos + 1) {
            s.push_str(&t);
        }
        s.push('\n');
        let inner = indent + INDENT;
        let mut prev_end = open_pos + 1;
        let mut first = true;
        let mut forced = false;
        for el in elems {
            let span = el.span();
            // No blank lines inside brackets.
            let mut no_blank = true;
            self.own_line_comments(
                &mut s,
                span.start,
                inner,
                &mut prev_end,
                &mut no_blank,
                &mut forced,
            );
            first = false;
            let body = match el {
                Elem::Arg(a) => self.arg(a, inner, inner, 1),
                Elem::Expr(x) => self.expr(x, inner, inner, 1),
                Elem::Param(p) => self.param(p, inner),
                Elem::Name(n) => n.name.clone(),
            };
            s.push_str(&pad(inner));
            s.push_str(&body);
            s.push(',');
            prev_end = span.end;
            if let Some(t) = self.trailing(span.end) {
                s.push_str(&t);
                prev_end = self.comments[self.ci - 1].span.end;
            }
            s.push('\n');
        }
        let _ = first;
        let mut no_blank = true;
        self.own_line_comments(
            &mut s,
            close_pos,
            inner,
            &mut prev_end,
            &mut no_blank,
            &mut forced,
        );
        s.push_str(&pad(indent));
        s.push_str(close);
        s
    }

    fn arg(&mut self, a: &Arg, indent: usize, col: usize, suffix: usize) -> String {
        match &a.name {
            Some(n) => {
                let head = format!("{}: ", n.name);
                let v = self.expr(&a.value, indent, col + width(&head), suffix);
                head + &v
            }
            None => self.expr(&a.value, indent, col, suffix),
        }
    }

    fn param(&mut self, p: &Param, indent: usize) -> String {
        let mut s = format!("{}: {}", p.name.name, flat_ty(&p.ty));
        if let Some(d) = &p.default {
            s.push_str(" = ");
            let col = indent + width(&s);
            let v = self.expr(d, indent, col, 1);
            s.push_str(&v);
        }
        if let Some(c) = &p.constraint {
            s.push_str(" where ");
            s.push_str(&flat(c));
        }
        s
    }

    /// The offset of the first `ch` at or after `from` outside comments (or `from`).
    fn find_char(&self, from: usize, ch: char) -> usize {
        let text = self.text;
        let mut i = from.min(text.len());
        while i < text.len() {
            let rest = &text[i..];
            if rest.starts_with("//") {
                i = lex::line_end(text, i);
            } else if rest.starts_with(ch) {
                return i;
            } else {
                i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
            }
        }
        from
    }

    /// The offset of the last `)` before `pos` (the close of a parameter list).
    fn find_close_before(&self, pos: usize) -> usize {
        self.text[..pos.min(self.text.len())]
            .rfind(')')
            .unwrap_or(pos)
    }
}

fn source_end(s: &UseSource) -> usize {
    match s {
        UseSource::Std { span, .. } | UseSource::Path { span, .. } => span.end,
    }
}

fn last_line_width(s: &str) -> usize {
    width(s.rsplit('\n').next().unwrap_or(s))
}

enum Member<'a> {
    Setting(&'a Setting),
    Report(&'a ReportItem),
    Decl(&'a Decl),
}

impl Member<'_> {
    fn span(&self) -> Span {
        match self {
            Member::Setting(s) => s.span.clone(),
            Member::Report(ReportItem::Setting(s)) => s.span.clone(),
            Member::Report(ReportItem::Directive { span, .. }) => span.clone(),
            Member::Decl(d) => d.span.clone(),
        }
    }
}

enum Elem<'a> {
    Arg(&'a Arg),
    Expr(&'a Expr),
    Param(&'a Param),
    Name(&'a Ident),
}

impl Elem<'_> {
    fn span(&self) -> Span {
        match self {
            Elem::Arg(a) => a.span.clone(),
            Elem::Expr(e) => e.span.clone(),
            Elem::Param(p) => p.span.clone(),
            Elem::Name(n) => n.span.clone(),
        }
    }
}

/// A string literal with the escapes the parser understands.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The one-line form of an expression.
pub fn flat(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float { text, .. } => text.clone(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Str(s) => quote(s),
        ExprKind::None => "none".to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Field { base, field } => format!("{}.{}", flat(base), field.name),
        ExprKind::Call { callee, args } => {
            let args: Vec<String> = args.iter().map(flat_arg).collect();
            format!("{}({})", callee.name, args.join(", "))
        }
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(flat).collect();
            format!("[{}]", items.join(", "))
        }
        ExprKind::Compare { first, rest } => {
            let mut s = flat(first);
            for (op, x) in rest {
                s.push(' ');
                s.push_str(op.symbol());
                s.push(' ');
                s.push_str(&flat(x));
            }
            s
        }
        ExprKind::And(a, b) => format!("{} and {}", flat(a), flat(b)),
        // Never printed: files with errors are not formatted.
        ExprKind::Error => String::new(),
    }
}

fn flat_arg(a: &Arg) -> String {
    match &a.name {
        Some(n) => format!("{}: {}", n.name, flat(&a.value)),
        None => flat(&a.value),
    }
}

fn flat_param(p: &Param) -> String {
    let mut s = format!("{}: {}", p.name.name, flat_ty(&p.ty));
    if let Some(d) = &p.default {
        s.push_str(" = ");
        s.push_str(&flat(d));
    }
    if let Some(c) = &p.constraint {
        s.push_str(" where ");
        s.push_str(&flat(c));
    }
    s
}

/// The one-line form of a type.
pub fn flat_ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Named { name, args } if args.is_empty() => name.name.clone(),
        TypeKind::Named { name, args } => {
            let args: Vec<String> = args.iter().map(flat_ty).collect();
            format!("{}[{}]", name.name, args.join(", "))
        }
        TypeKind::Enum(words) => words
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        TypeKind::Optional(inner) => format!("{}?", flat_ty(inner)),
    }
}
