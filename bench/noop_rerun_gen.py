#!/usr/bin/env python3
"""Generates the 200-node no-op rerun benchmark: the same DAG as a lowered sleeper program
(`bench.json`, ops: the hidden `__bench_text`) and as a DVC pipeline (`dvc.yaml`).

Node i reads nodes i-1 and i//2 (when they exist): a connected DAG with fan-in 2 and
fan-out up to 3, deep enough that a scheduler cannot cheat by looking at sources only.
Usage: noop_rerun_gen.py N SLEEPER_DIR DVC_DIR
"""
import json
import os
import sys

n = int(sys.argv[1])
sdir, ddir = sys.argv[2], sys.argv[3]
os.makedirs(sdir, exist_ok=True)
os.makedirs(ddir, exist_ok=True)


def deps(i):
    return sorted({j for j in (i - 1, i // 2) if 0 <= j < i})


S = lambda s: {"type": "str", "value": s}
R = lambda i: {"type": "ref", "value": {"node": i, "field": None}}
nodes = []
for i in range(n):
    nodes.append({
        "id": i, "name": f"n{i}", "base": f"n{i}", "kind": "dataset",
        "op": "__bench_text",
        "args": {"text": S(f"node {i}"), "inputs": {"type": "list", "value": [R(j) for j in deps(i)]}},
        "sweep": [], "doc": None, "origin": {"span": {"start": 0, "end": 0}},
    })
program = {"name": "noop_bench", "seed": 0, "settings": {}, "docs": [], "nodes": nodes,
           "values": [], "reports": []}
with open(os.path.join(sdir, "bench.json"), "w") as f:
    json.dump(program, f)

lines = ["stages:"]
for i in range(n):
    ins = " ".join(f"out/n{j}.txt" for j in deps(i))
    cmd = f"mkdir -p out && (echo 'node {i}'; cat {ins} /dev/null | sha256sum) > out/n{i}.txt"
    lines.append(f"  n{i}:")
    lines.append(f"    cmd: {json.dumps(cmd)}")
    if deps(i):
        lines.append("    deps:")
        lines += [f"      - out/n{j}.txt" for j in deps(i)]
    lines.append("    outs:")
    lines.append(f"      - out/n{i}.txt")
with open(os.path.join(ddir, "dvc.yaml"), "w") as f:
    f.write("\n".join(lines) + "\n")
