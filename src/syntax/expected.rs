//! Turning pest's "expected rules" into readable text: `expected an expression, `)` or `,``.
//! Raw rule names never reach the user.

use super::grammar::Rule;

/// What the user should read for a rule pest expected; `None` for rules that only exist
/// for the driver and are never reported on their own.
pub fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident | Rule::ident_list => "a name",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::comma => "`,`",
        Rule::colon => "`:`",
        Rule::dot => "`.`",
        Rule::eq => "`=`",
        Rule::arrow => "`->`",
        Rule::pipe => "`|`",
        Rule::question => "`?`",
        Rule::cmp_op => "a comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`)",
        Rule::kw_use => "`use`",
        Rule::kw_std => "`std` or a quoted path",
        Rule::kw_experiment => "`experiment`",
        Rule::kw_report => "`report`",
        Rule::kw_sweep => "`sweep`",
        Rule::kw_in => "`in`",
        Rule::kw_op => "`op`",
        Rule::kw_fn => "`fn`",
        Rule::kw_where => "`where`",
        Rule::kw_and => "`and`",
        Rule::EOI => "end of file",
        Rule::item_end | Rule::body_end => "the end of the declaration",
        Rule::decl_kind | Rule::decl | Rule::body_decl | Rule::decl_head => {
            "a declaration (`trigger`, `dataset`, `tokenizer`, `model`, `stage` or `eval`)"
        }
        Rule::item => "a declaration (`use`, `experiment`, `trigger`, `dataset`, `tokenizer`, `model`, `stage`, `eval`, `sweep`, `report`, `op` or `fn`)",
        Rule::use_decl => "`use`",
        Rule::use_source | Rule::std_path => "`std` or a quoted path",
        Rule::block_head => "`experiment` or `report`",
        Rule::exp_member => "a setting (`name = value`)",
        Rule::report_member => "a report entry",
        Rule::member_end => "the end of the entry",
        Rule::setting => "a setting (`name = value`)",
        Rule::directive | Rule::directive_args => "a report entry",
        Rule::sweep_head => "`sweep`",
        Rule::sweep_var => "a sweep variable (`name in [...]`)",
        Rule::op_decl => "`op`",
        Rule::fn_decl => "`fn`",
        Rule::params | Rule::param => "a parameter (`name: Type`)",
        Rule::ty | Rule::ty_alt => "a type",
        Rule::constraint | Rule::cmp_chain => "a constraint",
        Rule::expr | Rule::arg | Rule::call | Rule::list => "an expression",
        Rule::boolean => "`true` or `false`",
        Rule::none => "`none`",
        Rule::number => "a number",
        Rule::string => "a string",
        Rule::str_body => "the string's text",
        Rule::primary => "an expression",
        Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char | Rule::inline_space | Rule::sync_head | Rule::sync_decl | Rule::member_sync => return None,
    })
}

/// `a`, `a or b`, `a, b or c`, without duplicates, in the order given.
pub fn join(rules: &[Rule]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for r in rules {
        if let Some(d) = describe(*r) {
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
    }
    // An expression subsumes the words and literals that start one.
    if seen.contains(&"an expression") {
        seen.retain(|d| {
            !matches!(
                *d,
                "a name" | "a number" | "a string" | "`none`" | "`true` or `false`" | "`[`"
            )
        });
    }
    // Separators and closers first: they are what the user most often forgot.
    seen.sort_by_key(|d| !matches!(*d, "`,`" | "`)`" | "`]`" | "`}`"));
    match seen.len() {
        0 => "something else".to_string(),
        1 => seen[0].to_string(),
        n => format!("{} or {}", seen[..n - 1].join(", "), seen[n - 1]),
    }
}
