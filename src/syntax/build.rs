//! Building AST nodes from pest pairs. Pairs come from parsing a slice of the file that
//! starts at `base`, so every span is shifted by `base`. Literal values are decoded here
//! (escapes, integer range), with a precise diagnostic when they are invalid.

use pest::iterators::Pair;

use super::ast::*;
use super::grammar::Rule;
use super::lex::MAX_DEPTH;
use crate::diag::{Diagnostic, FileId, Label};

pub struct Builder<'d> {
    pub base: usize,
    pub file: FileId,
    pub diags: &'d mut Vec<Diagnostic>,
}

/// Punctuation and keyword pairs carry no content; builders skip them.
fn is_token(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::lparen
            | Rule::member_end
            | Rule::rparen
            | Rule::lbracket
            | Rule::rbracket
            | Rule::lbrace
            | Rule::rbrace
            | Rule::comma
            | Rule::colon
            | Rule::dot
            | Rule::eq
            | Rule::arrow
            | Rule::pipe
            | Rule::kw_use
            | Rule::kw_std
            | Rule::kw_experiment
            | Rule::kw_report
            | Rule::kw_sweep
            | Rule::kw_in
            | Rule::kw_op
            | Rule::kw_fn
            | Rule::kw_where
            | Rule::kw_and
    )
}

/// Where a pair's last token ends. pest extends a rule that ends in an optional or
/// repeated part over the whitespace and comments it skipped looking for that part; spans
/// must not include them.
pub fn content_end(pair: &Pair<'_, Rule>) -> usize {
    // The last token is the last token of the last child; descend along last children.
    let mut p = pair.clone();
    loop {
        // Atomic rules never skip trivia, and a string's inner body ends before its quote.
        if matches!(p.as_rule(), Rule::string | Rule::number | Rule::ident) {
            return p.as_span().end();
        }
        // The follow-set lookaheads sit after the skipped trivia.
        let last = p
            .clone()
            .into_inner()
            .filter(|c| {
                !matches!(
                    c.as_rule(),
                    Rule::item_end | Rule::body_end | Rule::member_end
                )
            })
            .last();
        match last {
            Some(c) => p = c,
            None => return p.as_span().end(),
        }
    }
}

fn field_end(p: &Pair<'_, Rule>, base: usize) -> usize {
    base + p.as_span().end()
}

fn content(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_token(p.as_rule()))
}

impl Builder<'_> {
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        self.base + p.as_span().start()..self.base + content_end(p)
    }

    fn ident(&self, p: Pair<'_, Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span(&p),
        }
    }

    /// An `item` pair (or one of its alternatives).
    pub fn item(&mut self, pair: Pair<'_, Rule>, doc: Vec<String>) -> Option<Item> {
        let pair = if pair.as_rule() == Rule::item {
            pair.into_inner().next()?
        } else {
            pair
        };
        Some(match pair.as_rule() {
            Rule::use_decl => Item::Use(self.use_decl(pair)),
            Rule::decl => Item::Decl(self.decl(pair, doc)?),
            Rule::op_decl => Item::Op(self.op_decl(pair, doc)?),
            Rule::fn_decl => Item::Fn(self.fn_decl(pair, doc)?),
            _ => return None,
        })
    }

    fn use_decl(&mut self, pair: Pair<'_, Rule>) -> UseDecl {
        let span = self.span(&pair);
        let mut source = UseSource::Std {
            segments: Vec::new(),
            span: span.clone(),
        };
        let mut names = Vec::new();
        for p in content(pair) {
            match p.as_rule() {
                Rule::use_source => {
                    if let Some(inner) = p.into_inner().next() {
                        let s = self.span(&inner);
                        source = match inner.as_rule() {
                            Rule::string => UseSource::Path {
                                path: self.string(inner),
                                span: s,
                            },
                            _ => UseSource::Std {
                                segments: content(inner)
                                    .filter(|x| x.as_rule() == Rule::ident)
                                    .map(|x| self.ident(x))
                                    .collect(),
                                span: s,
                            },
                        };
                    }
                }
                Rule::ident_list => {
                    names = content(p).map(|x| self.ident(x)).collect();
                }
                _ => {}
            }
        }
        UseDecl {
            source,
            names,
            span,
        }
    }

    pub fn setting(&mut self, pair: Pair<'_, Rule>) -> Setting {
        let span = self.span(&pair);
        let mut it = content(pair);
        let key = it.next().map(|p| self.ident(p));
        let value = it.next().map(|p| self.expr(p));
        Setting {
            key: key.unwrap_or_else(|| Ident {
                name: String::new(),
                span: span.clone(),
            }),
            value: value.unwrap_or(Expr {
                kind: ExprKind::Error,
                span: span.clone(),
            }),
            span,
        }
    }

    /// A report member: `title = "..."` or a directive such as `table [a, b]`.
    pub fn report_item(&mut self, pair: Pair<'_, Rule>) -> Option<ReportItem> {
        match pair.as_rule() {
            Rule::setting => Some(ReportItem::Setting(self.setting(pair))),
            Rule::directive => {
                let span = self.span(&pair);
                let mut inner = pair.into_inner();
                let name = self.ident(inner.next()?);
                let args = match inner.next() {
                    Some(a) => content(a).map(|x| self.arg(x)).collect(),
                    None => Vec::new(),
                };
                Some(ReportItem::Directive { name, args, span })
            }
            _ => None,
        }
    }

    /// The name in a `block_head` pair and whether the block is a report.
    pub fn block_head(&mut self, pair: Pair<'_, Rule>) -> Option<(bool, Ident)> {
        let mut it = pair.into_inner();
        let is_report = it.next()?.as_rule() == Rule::kw_report;
        let name = self.ident(it.next()?);
        Some((is_report, name))
    }

    pub fn decl(&mut self, pair: Pair<'_, Rule>, doc: Vec<String>) -> Option<Decl> {
        let span = self.span(&pair);
        let mut it = content(pair);
        let kind_pair = it.next()?;
        let kind_span = self.span(&kind_pair);
        let kind = decl_kind(kind_pair.as_str())?;
        let name = self.ident(it.next()?);
        let value = match it.next() {
            Some(p) => self.expr(p),
            // `decl_head`: the value failed to parse; its error is already reported.
            None => Expr {
                kind: ExprKind::Error,
                span: span.end..span.end,
            },
        };
        Some(Decl {
            doc,
            kind,
            kind_span,
            name,
            value,
            span,
        })
    }

    pub fn sweep_vars(&mut self, pair: Pair<'_, Rule>) -> Vec<SweepVar> {
        content(pair)
            .filter(|p| p.as_rule() == Rule::sweep_var)
            .filter_map(|p| {
                let span = self.span(&p);
                let mut it = content(p);
                let name = self.ident(it.next()?);
                let values = self.expr(it.next()?);
                Some(SweepVar { name, values, span })
            })
            .collect()
    }

    fn signature(
        &mut self,
        pair: Pair<'_, Rule>,
    ) -> Option<(Ident, Vec<Param>, TypeExpr, Option<Expr>)> {
        let mut name = None;
        let mut params = Vec::new();
        let mut ret = None;
        let mut body = None;
        for p in content(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::params => {
                    params = content(p).filter_map(|x| self.param(x)).collect();
                }
                Rule::ty => ret = Some(self.ty(p)),
                Rule::expr => body = Some(self.expr(p)),
                _ => {}
            }
        }
        Some((name?, params, ret?, body))
    }

    fn op_decl(&mut self, pair: Pair<'_, Rule>, doc: Vec<String>) -> Option<OpDecl> {
        let span = self.span(&pair);
        let (name, params, ret, _) = self.signature(pair)?;
        Some(OpDecl {
            doc,
            name,
            params,
            ret,
            span,
        })
    }

    fn fn_decl(&mut self, pair: Pair<'_, Rule>, doc: Vec<String>) -> Option<FnDecl> {
        let span = self.span(&pair);
        let (name, params, ret, body) = self.signature(pair)?;
        Some(FnDecl {
            doc,
            name,
            params,
            ret,
            body: body?,
            span,
        })
    }

    fn param(&mut self, pair: Pair<'_, Rule>) -> Option<Param> {
        let span = self.span(&pair);
        let mut name = None;
        let mut ty = None;
        let mut default = None;
        let mut constraint = None;
        for p in content(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::ty => ty = Some(self.ty(p)),
                Rule::expr => default = Some(self.expr(p)),
                Rule::constraint => constraint = Some(self.constraint(p)),
                _ => {}
            }
        }
        Some(Param {
            name: name?,
            ty: ty?,
            default,
            constraint,
            span,
        })
    }

    fn ty(&mut self, pair: Pair<'_, Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let mut alts = Vec::new();
        let mut optional = false;
        for p in content(pair) {
            match p.as_rule() {
                Rule::ty_alt => alts.push(p),
                Rule::question => optional = true,
                _ => {}
            }
        }
        let inner_span = if optional {
            span.start..alts.last().map(|a| self.span(a).end).unwrap_or(span.end)
        } else {
            span.clone()
        };
        let kind = if alts.len() == 1 {
            let alt = alts.remove(0);
            let mut it = content(alt);
            match it.next() {
                Some(n) => TypeKind::Named {
                    name: self.ident(n),
                    args: it
                        .filter(|p| p.as_rule() == Rule::ty)
                        .map(|p| self.ty(p))
                        .collect(),
                },
                None => TypeKind::Enum(Vec::new()),
            }
        } else {
            let mut words = Vec::new();
            for alt in alts {
                let aspan = self.span(&alt);
                let mut it = content(alt);
                if let Some(n) = it.next() {
                    words.push(self.ident(n));
                }
                if it.next().is_some() {
                    self.diags.push(
                        Diagnostic::error(
                            "E0009",
                            "enum alternatives must be plain words",
                            Label::new(self.file, aspan, "this alternative has type arguments"),
                        )
                        .with_help(
                            "write an enum as `a | b | c`; use `List[T]` only as a whole type",
                        ),
                    );
                }
            }
            TypeKind::Enum(words)
        };
        let inner = TypeExpr {
            kind,
            span: inner_span,
        };
        if optional {
            TypeExpr {
                kind: TypeKind::Optional(Box::new(inner)),
                span,
            }
        } else {
            inner
        }
    }

    fn constraint(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut acc: Option<Expr> = None;
        for (n, chain) in content(pair).enumerate() {
            if n >= MAX_DEPTH {
                return self.too_deep(span);
            }
            let e = self.cmp_chain(chain);
            acc = Some(match acc {
                None => e,
                Some(left) => {
                    let span = left.span.start..e.span.end;
                    Expr {
                        kind: ExprKind::And(Box::new(left), Box::new(e)),
                        span,
                    }
                }
            });
        }
        acc.unwrap_or(Expr {
            kind: ExprKind::Error,
            span: 0..0,
        })
    }

    fn cmp_chain(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let mut first = None;
        let mut rest = Vec::new();
        let mut op = None;
        for p in content(pair) {
            match p.as_rule() {
                Rule::cmp_op => op = cmp_op(p.as_str()),
                _ => {
                    let e = self.expr(p);
                    match (first.is_none(), op.take()) {
                        (true, _) => first = Some(e),
                        (false, Some(o)) => rest.push((o, e)),
                        (false, None) => {}
                    }
                }
            }
        }
        let first = first.unwrap_or(Expr {
            kind: ExprKind::Error,
            span: span.clone(),
        });
        if rest.is_empty() {
            first
        } else {
            Expr {
                kind: ExprKind::Compare {
                    first: Box::new(first),
                    rest,
                },
                span,
            }
        }
    }

    fn too_deep(&mut self, span: Span) -> Expr {
        self.diags.push(
            Diagnostic::error(
                "E0007",
                format!("expression nested deeper than {MAX_DEPTH} levels"),
                Label::new(self.file, span.clone(), "too deeply nested"),
            )
            .with_help("split it into several declarations"),
        );
        Expr {
            kind: ExprKind::Error,
            span,
        }
    }

    pub fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut it = content(pair);
        let mut e = match it.next() {
            Some(p) => self.primary(p),
            None => {
                return Expr {
                    kind: ExprKind::Error,
                    span: 0..0,
                }
            }
        };
        for (n, field) in it.enumerate() {
            // Each `.field` nests the AST one level deeper; bound it like brackets.
            if n >= MAX_DEPTH {
                return self.too_deep(e.span.start..field_end(&field, self.base));
            }
            let field = self.ident(field);
            let span = e.span.start..field.span.end;
            e = Expr {
                kind: ExprKind::Field {
                    base: Box::new(e),
                    field,
                },
                span,
            };
        }
        e
    }

    fn primary(&mut self, p: Pair<'_, Rule>) -> Expr {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::number => self.number(p.as_str(), span.clone()),
            Rule::string => ExprKind::Str(self.string(p)),
            Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
            Rule::none => ExprKind::None,
            Rule::ident => ExprKind::Name(p.as_str().to_string()),
            Rule::call => {
                let mut it = content(p);
                match it.next() {
                    Some(callee) => ExprKind::Call {
                        callee: self.ident(callee),
                        args: it.map(|a| self.arg(a)).collect(),
                    },
                    None => ExprKind::Error,
                }
            }
            Rule::list => ExprKind::List(content(p).map(|e| self.expr(e)).collect()),
            _ => ExprKind::Error,
        };
        Expr { kind, span }
    }

    fn arg(&mut self, pair: Pair<'_, Rule>) -> Arg {
        let span = self.span(&pair);
        let mut name = None;
        let mut value = None;
        for p in content(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                _ => value = Some(self.expr(p)),
            }
        }
        Arg {
            name,
            value: value.unwrap_or(Expr {
                kind: ExprKind::Error,
                span: span.clone(),
            }),
            span,
        }
    }

    fn number(&mut self, text: &str, span: Span) -> ExprKind {
        if text.contains(['.', 'e', 'E']) {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => ExprKind::Float {
                    value: v,
                    text: text.to_string(),
                },
                _ => {
                    self.diags.push(Diagnostic::error(
                        "E0006",
                        format!("number `{text}` is out of range"),
                        Label::new(self.file, span, "too large for a 64-bit float"),
                    ));
                    ExprKind::Error
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(v) => ExprKind::Int(v),
                Err(_) => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0005",
                            format!("integer `{text}` is out of range"),
                            Label::new(self.file, span, "does not fit in a 64-bit signed integer"),
                        )
                        .with_help(
                            "integers range from -9223372036854775808 to 9223372036854775807",
                        ),
                    );
                    ExprKind::Error
                }
            }
        }
    }

    /// The value of a `string` pair with escapes resolved; a bad escape is reported and kept
    /// as written.
    fn string(&mut self, pair: Pair<'_, Rule>) -> String {
        let body_start = self.base + pair.as_span().start() + 1;
        let raw = pair.as_str();
        let body = raw
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(raw);
        let (value, errors) = unescape(body);
        for (range, msg) in errors {
            self.diags.push(
                Diagnostic::error(
                    "E0003",
                    msg,
                    Label::new(
                        self.file,
                        body_start + range.start..body_start + range.end,
                        "invalid escape",
                    ),
                )
                .with_help("valid escapes are \\n, \\t, \\r, \\\", \\\\, \\0 and \\u{hex}"),
            );
        }
        value
    }
}

pub fn decl_kind(word: &str) -> Option<DeclKind> {
    Some(match word {
        "trigger" => DeclKind::Trigger,
        "dataset" => DeclKind::Dataset,
        "tokenizer" => DeclKind::Tokenizer,
        "model" => DeclKind::Model,
        "stage" => DeclKind::Stage,
        "eval" => DeclKind::Eval,
        _ => return None,
    })
}

fn cmp_op(s: &str) -> Option<CmpOp> {
    Some(match s {
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        ">=" => CmpOp::Ge,
        "==" => CmpOp::Eq,
        "!=" => CmpOp::Ne,
        _ => return None,
    })
}

/// Resolves escapes in a string body; returns the value and, for each bad escape, its byte
/// range in `body` and a message.
pub fn unescape(body: &str) -> (String, Vec<(Span, String)>) {
    let mut out = String::with_capacity(body.len());
    let mut errors = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((j, e)) = chars.next() else {
            errors.push((i..i + 1, "a string cannot end with a lone `\\`".to_string()));
            break;
        };
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '0' => Some('\0'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let esc_end = j + e.len_utf8();
        if e != 'u' {
            errors.push((i..esc_end, format!("unknown escape `\\{e}`")));
            out.push_str(&body[i..esc_end]);
            continue;
        }
        // `\u{XXXX}`
        let rest = &body[esc_end..];
        let close = rest.find('}');
        let decoded = match (rest.starts_with('{'), close) {
            (true, Some(k)) => {
                let hex = &rest[1..k];
                let ok = (1..=6).contains(&hex.len()) && hex.chars().all(|h| h.is_ascii_hexdigit());
                let ch = if ok {
                    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                } else {
                    None
                };
                Some((ch, esc_end + k + 1))
            }
            _ => None,
        };
        match decoded {
            Some((Some(ch), end)) => {
                out.push(ch);
                while chars.peek().is_some_and(|(k, _)| *k < end) {
                    chars.next();
                }
            }
            Some((None, end)) => {
                errors.push((
                    i..end,
                    format!("invalid unicode escape `{}`", &body[i..end]),
                ));
                out.push_str(&body[i..end]);
                while chars.peek().is_some_and(|(k, _)| *k < end) {
                    chars.next();
                }
            }
            None => {
                errors.push((
                    i..esc_end,
                    "a unicode escape is written `\\u{hex}`".to_string(),
                ));
                out.push_str(&body[i..esc_end]);
            }
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn escapes() {
        assert_eq!(
            unescape(r#"a\nb\t\"\\\u{41}\u{1F600}"#).0,
            "a\nb\t\"\\A\u{1F600}"
        );
        let (v, e) = unescape(r"x\qy");
        assert_eq!(v, r"x\qy");
        assert_eq!(e[0].0, 1..3);
        let (_, e) = unescape(r"\u{110000}");
        assert_eq!(e.len(), 1);
        let (_, e) = unescape(r"\u12");
        assert_eq!(e.len(), 1);
    }
}
