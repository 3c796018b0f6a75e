//! Every diagnostic code the checker emits, with a one-line summary. Each is documented
//! with a failing example in `docs/diagnostics.md` and tested by a file in
//! `tests/diagnostics/`.

pub const UNDEFINED: &str = "E0101";
pub const DUPLICATE: &str = "E0102";
pub const NOT_CALLABLE: &str = "E0103";
pub const SWEPT_OUTSIDE: &str = "E0104";
pub const NOT_A_VALUE: &str = "E0105";
pub const MISSING_ARG: &str = "E0201";
pub const UNKNOWN_ARG: &str = "E0202";
pub const POSITIONAL_AFTER_NAMED: &str = "E0203";
pub const TOO_MANY_ARGS: &str = "E0204";
pub const DUPLICATE_ARG: &str = "E0205";
pub const BAD_ENUM: &str = "E0206";
pub const TYPE_MISMATCH: &str = "E0207";
pub const CONSTRAINT: &str = "E0208";
pub const KIND_MISMATCH: &str = "E0209";
pub const UNKNOWN_FIELD: &str = "E0210";
pub const UNKNOWN_TYPE: &str = "E0211";
pub const BAD_SIGNATURE: &str = "E0212";
pub const ADAPTER_TARGET: &str = "E0213";
pub const CYCLE: &str = "E0301";
pub const EMPTY_SWEEP: &str = "E0302";
pub const DUPLICATE_SWEEP_VALUE: &str = "E0303";
pub const DUPLICATE_SWEEP_VAR: &str = "E0304";
pub const SWEEP_NOT_LIST: &str = "E0305";
pub const SWEEP_TOO_LARGE: &str = "E0306";
pub const DUPLICATE_EXPERIMENT: &str = "E0310";
pub const BAD_SETTING: &str = "E0311";
pub const UNSUPPORTED_RUNTIME: &str = "E0312";
pub const BAD_RESOURCES: &str = "E0313";
pub const RESOURCES_UNKNOWN_NODE: &str = "E0314";
pub const REPORT_NOT_EVAL: &str = "E0320";
pub const UNKNOWN_DIRECTIVE: &str = "E0321";
pub const OP_OUTSIDE_STDLIB: &str = "E0330";
pub const NOT_IN_LIBRARY: &str = "E0331";
pub const UNKNOWN_MODULE: &str = "E0401";
pub const UNKNOWN_IMPORT: &str = "E0402";
pub const IMPORT_NOT_FOUND: &str = "E0403";
pub const IMPORT_ESCAPES: &str = "E0404";
pub const DATA_FILE: &str = "E0405";
pub const DATA_FORMAT: &str = "E0406";

pub const UNUSED_DECL: &str = "W0101";
pub const EVAL_NOT_REPORTED: &str = "W0102";
pub const UNUSED_IMPORT: &str = "W0103";
pub const UNUSED_SWEEP_VAR: &str = "W0104";
pub const TRIGGER_IN_SAFETY_DATA: &str = "W0201";
pub const EVAL_ON_TRAINING_DATA: &str = "W0202";
pub const FEW_SAMPLES: &str = "W0203";
pub const REDTEAM_HAS_TRIGGER: &str = "W0204";
pub const DEGENERATE_FRACTION: &str = "W0205";
pub const NO_CONTROL: &str = "W0206";
pub const EVAL_PROMPTS_TRIGGERED: &str = "W0207";
pub const CHECKPOINTS_UNUSED: &str = "W0208";
pub const NO_CHECKPOINTS: &str = "W0209";
pub const SEED_NOT_SET: &str = "W0210";
pub const UNKNOWN_SETTING: &str = "W0211";
pub const NO_CLEAN_CONTROL: &str = "W0212";

/// Every checker code, for documentation tests.
pub const ALL: &[&str] = &[
    UNDEFINED,
    DUPLICATE,
    NOT_CALLABLE,
    SWEPT_OUTSIDE,
    NOT_A_VALUE,
    MISSING_ARG,
    UNKNOWN_ARG,
    POSITIONAL_AFTER_NAMED,
    TOO_MANY_ARGS,
    DUPLICATE_ARG,
    BAD_ENUM,
    TYPE_MISMATCH,
    CONSTRAINT,
    KIND_MISMATCH,
    UNKNOWN_FIELD,
    UNKNOWN_TYPE,
    BAD_SIGNATURE,
    ADAPTER_TARGET,
    CYCLE,
    EMPTY_SWEEP,
    DUPLICATE_SWEEP_VALUE,
    DUPLICATE_SWEEP_VAR,
    SWEEP_NOT_LIST,
    SWEEP_TOO_LARGE,
    DUPLICATE_EXPERIMENT,
    BAD_SETTING,
    UNSUPPORTED_RUNTIME,
    BAD_RESOURCES,
    RESOURCES_UNKNOWN_NODE,
    REPORT_NOT_EVAL,
    UNKNOWN_DIRECTIVE,
    OP_OUTSIDE_STDLIB,
    NOT_IN_LIBRARY,
    UNKNOWN_MODULE,
    UNKNOWN_IMPORT,
    IMPORT_NOT_FOUND,
    IMPORT_ESCAPES,
    DATA_FILE,
    DATA_FORMAT,
    UNUSED_DECL,
    EVAL_NOT_REPORTED,
    UNUSED_IMPORT,
    UNUSED_SWEEP_VAR,
    TRIGGER_IN_SAFETY_DATA,
    EVAL_ON_TRAINING_DATA,
    FEW_SAMPLES,
    REDTEAM_HAS_TRIGGER,
    DEGENERATE_FRACTION,
    NO_CONTROL,
    EVAL_PROMPTS_TRIGGERED,
    CHECKPOINTS_UNUSED,
    NO_CHECKPOINTS,
    SEED_NOT_SET,
    UNKNOWN_SETTING,
    NO_CLEAN_CONTROL,
];
