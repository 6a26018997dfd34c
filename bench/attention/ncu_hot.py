#!/usr/bin/env python3
"""bench/attention/ncu_hot.py — the hottest SASS instructions of one kernel from an Nsight Compute source page:
reads the CSV of `ncu -i REPORT --page source --csv --print-source sass` (a report taken with --section
SourceCounters) and prints the N instructions with the most warp-stall samples, with their share of all samples,
and the samples summed per opcode. Standard library only.
Usage: python3 bench/attention/ncu_hot.py sass.csv [N]
"""
import csv, sys, collections

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
with open(path, newline="") as f:
    lines = f.readlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"Address"')), None)   # after a "Kernel Name" line
if start is None:
    sys.exit(f"{path}: no table with an Address column")
lines = lines[start:]
rows = list(csv.DictReader(lines))
if not rows:
    sys.exit(f"{path}: no CSV rows")
cols = rows[0].keys()
samp = next((c for c in cols if c.startswith("Warp Stall Sampling (All")), None)
src = next((c for c in cols if c == "Source"), None)
if samp is None or src is None:
    sys.exit(f"{path}: no 'Source' / 'Warp Stall Sampling (All Samples)' columns; have: {list(cols)[:12]}")


def num(v):
    try:
        return float(v.replace(",", ""))
    except ValueError:
        return 0.0


total = sum(num(r[samp]) for r in rows) or 1.0
print(f"{len(rows)} instructions, {total:.0f} stall samples")
per_op = collections.Counter()
for r in rows:
    op = r[src].strip().split(" ")
    op = [t for t in op if not t.startswith("@")]
    per_op[(op[0] if op else "?").split(".")[0]] += num(r[samp])
reasons = [c for c in cols if c.startswith("stall_") and "Not Issued" not in c]
per_reason = {c: sum(num(r[c]) for r in rows) for c in reasons}
print("samples per stall reason:", ", ".join(f"{k[6:]} {100 * v / total:.1f}%" for k, v in
                                          sorted(per_reason.items(), key=lambda kv: -kv[1])[:10]))
print("samples per opcode:", ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in per_op.most_common(14)))
for r in sorted(rows, key=lambda r: -num(r[samp]))[:top]:
    why = sorted(((num(r[c]), c[6:]) for c in reasons), reverse=True)[:2]
    why = " ".join(f"{w}:{100 * v / total:.1f}" for v, w in why if v > 0)
    print(f"{100 * num(r[samp]) / total:5.1f}%  {r.get('Address', ''):>8s}  {r[src].strip()[:80]:80s}  {why}")
