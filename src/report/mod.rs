//! Reports from the cache: `report.md`, a self-contained `report.html` and the plots as
//! SVG files, written from cached results and run records without running anything.
//!
//! [`collect`] reads the cache, [`doc::build`] decides what to show, [`render`] writes it.

pub mod collect;
pub mod datasets;
pub mod doc;
pub mod export;
pub mod render;
pub mod sample;
pub mod svg;

pub use collect::{collect, EvalEntry, NodeRow, NodeState, ReportData};

use std::path::{Path, PathBuf};

use crate::exec::{Cache, Registry};
use crate::ir::Program;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot plan the experiment: {0}")]
    Plan(String),
    #[error("plot: {0}")]
    Plot(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub plots: Vec<PathBuf>,
    /// Evals with a result / all evals.
    pub evals_with_results: usize,
    pub evals: usize,
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `report.md`, `report.html` and `plots/*.svg` into `out` from what `cache` holds
/// for `program`. Nothing is trained or evaluated.
pub fn write_report(
    program: &Program,
    registry: &dyn Registry,
    cache: &Cache,
    out: &Path,
) -> Result<Written, ReportError> {
    let data = collect(program, registry, cache)?;
    write_data(&data, out)
}

/// Renders already collected data into `out`.
pub fn write_data(data: &ReportData, out: &Path) -> Result<Written, ReportError> {
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|source| ReportError::Io {
        path: plots_dir.clone(),
        source,
    })?;
    let blocks = doc::build(data);
    let mut plots = Vec::new();
    for b in &blocks {
        if let doc::Block::Figure { file, svg, .. } = b {
            let p = plots_dir.join(file);
            write(&p, svg)?;
            plots.push(p);
        }
    }
    let markdown = out.join("report.md");
    write(&markdown, &render::markdown(&blocks))?;
    let html = out.join("report.html");
    write(&html, &render::html(&doc::title(data), &blocks))?;
    Ok(Written {
        markdown,
        html,
        plots,
        evals_with_results: data.evals.iter().filter(|e| e.result.is_some()).count(),
        evals: data.evals.len(),
    })
}
