//! Markdown and self-contained HTML from [`Block`]s. Markdown links its plots as files
//! under `plots/`; HTML inlines the same SVG so the one file can be mailed around.

use super::doc::Block;

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                out.push_str(&"#".repeat(*level as usize));
                out.push(' ');
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Para(text) => {
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Pre(text) => {
                // Doc comments are prose: keep their lines as a quoted block.
                for line in text.lines() {
                    out.push_str("> ");
                    out.push_str(line);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Table { head, rows } => {
                if rows.is_empty() {
                    out.push_str("(nothing to show)\n\n");
                    continue;
                }
                out.push_str(&format!(
                    "| {} |\n|{}\n",
                    head.join(" | "),
                    "---|".repeat(head.len())
                ));
                for r in rows {
                    let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
                    out.push_str(&format!("| {} |\n", cells.join(" | ")));
                }
                out.push('\n');
            }
            Block::Figure { file, caption, .. } => {
                out.push_str(&format!("![{caption}](plots/{file})\n\n*{caption}*\n\n"));
            }
        }
    }
    out
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline code spans (`x`) of our own texts become <code>.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(s).split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}\
th{background:#f3f3f3}blockquote{white-space:pre-wrap;border-left:3px solid #ccc;margin:1rem 0;padding:.2rem 1rem;color:#444}\
figure{margin:1rem 0}figcaption{font-size:.9rem;color:#555}code{background:#f3f3f3;padding:0 .2rem}";

pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(text)))
            }
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline(text))),
            Block::Pre(text) => {
                out.push_str(&format!("<blockquote>{}</blockquote>\n", escape(text)))
            }
            Block::Table { head, rows } => {
                if rows.is_empty() {
                    out.push_str("<p>(nothing to show)</p>\n");
                    continue;
                }
                out.push_str("<table><thead><tr>");
                for h in head {
                    out.push_str(&format!("<th>{}</th>", escape(h)));
                }
                out.push_str("</tr></thead><tbody>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        out.push_str(&format!("<td>{}</td>", escape(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::Figure { caption, svg, .. } => {
                // plotters writes an XML declaration-free <svg> element: inline as is.
                out.push_str(&format!(
                    "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
                    inline(caption)
                ));
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_escape_pipes_and_markup() {
        let b = vec![Block::Table {
            head: vec!["a".into(), "b".into()],
            rows: vec![vec!["x|y".into(), "<script>".into()]],
        }];
        let md = markdown(&b);
        assert!(md.contains("x\\|y") && md.contains("&lt;script&gt;"));
        let h = html("t", &b);
        assert!(h.contains("&lt;script&gt;") && !h.contains("<script>"));
    }

    #[test]
    fn figures_are_linked_in_markdown_and_inlined_in_html() {
        let b = vec![Block::Figure {
            file: "fig01.svg".into(),
            caption: "c".into(),
            svg: "<svg></svg>".into(),
        }];
        assert!(markdown(&b).contains("(plots/fig01.svg)"));
        assert!(html("t", &b).contains("<figure><svg></svg>"));
    }
}
