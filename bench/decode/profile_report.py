#!/usr/bin/env python3
"""bench/decode/profile_report.py — one decode step's kernels from ncu's CSV (bench/decode/profile.sh), summed by kind.

Usage: python3 bench/decode/profile_report.py [--layers L] ncu_rope.csv [ncu_ropepp_eh.csv ...] > profile.md
(L: the model's layers, 8 for the 376M shape)

Each CSV is `ncu --csv --page raw --print-units base` of decode_bench with one untimed and one timed step (no CUDA
graph). The step is periodic: the kernels from one attn_decode_kernel launch to the same layer's launch in the next
step are one step; the report takes the last such window and sums its kernels' durations (ns) and DRAM bytes by
kind: attention (attn_decode_kernel: the split-K pass over the cache), combine (attn_decode_combine_kernel), cache
append (kv_append_kernel), GEMM (cuBLAS/cuBLASLt), sampling, other (norms, residuals, activations, embedding).
Bandwidth = (DRAM bytes read + written) / duration. Standard library only.
"""
import csv
import sys


def kind_of(name):
    n = name.lower()
    if "attn_decode_combine" in n:
        return "combine"
    if "attn_decode_kernel" in n:
        return "attention"
    if "kv_append" in n:
        return "cache append"
    if "sample" in n or "segment_offsets" in n or "add_u64" in n or "add_int" in n or "radix" in n:
        return "sampling"
    if "gemm" in n or "cublas" in n or "xmma" in n or "cutlass" in n or "gemv" in n or "sm90_" in n:
        return "GEMM"
    return "other"


def read_rows(path):
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        raise SystemExit(f"{path}: no ncu CSV header (\"ID\", ...) found")
    reader = csv.DictReader(lines[start:])
    rows = []
    for r in reader:
        if not (r.get("ID") or "").strip().isdigit():
            continue   # the units row
        def num(key):
            v = (r.get(key) or "").replace(",", "").strip()
            try:
                return float(v)
            except ValueError:
                return 0.0
        rows.append({"name": r.get("Kernel Name", "?"), "ns": num("gpu__time_duration.sum"),
                     "read": num("dram__bytes_read.sum"), "write": num("dram__bytes_write.sum"),
                     "pct": num("dram__throughput.avg.pct_of_peak_sustained_elapsed"),
                     "grid": num("launch__grid_size")})
    return rows


def last_step(rows, layers):
    att = [i for i, r in enumerate(rows) if kind_of(r["name"]) == "attention"]
    if len(att) < layers + 1:
        raise SystemExit(f"{len(att)} attention launches: fewer than one step and a layer of {layers} layers (--layers)")
    # the step's period: from a layer's attention launch to the same layer's in the next step; the window of that
    # many kernels ending at the last launch is slid on while the names repeat, to the end of the last step
    names = [r["name"] for r in rows]
    K = att[-1] - att[-1 - layers]
    s = att[-1] + 1 - K
    while s + K < len(rows) and names[s + K] == names[s]:
        s += 1
    return rows[s:s + K]


def main():
    args = sys.argv[1:]
    layers = 8
    if len(args) >= 2 and args[0] == "--layers":
        layers = int(args[1])
        args = args[2:]
    if not args:
        print(__doc__)
        return 2
    print("# One decode step, kernel by kernel (ncu)\n")
    print("Kinds: attention = the split-K pass over the KV cache, combine = the merge of the splits' partial softmaxes, "
          "GEMM = cuBLAS, other = norms, residuals, activations, embedding. GB/s = DRAM (read + written) / time.\n")
    for path in args:
        rows = read_rows(path)
        step = last_step(rows, layers)
        tot = sum(r["ns"] for r in step)
        print(f"## {path.rsplit('/', 1)[-1]}: {len(step)} kernels, {tot / 1e3:.1f} us of kernel time in one step\n")
        print("| kind | kernels | us | share | DRAM MB | GB/s | mean DRAM % of peak |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        kinds = {}
        for r in step:
            k = kinds.setdefault(kind_of(r["name"]), {"n": 0, "ns": 0.0, "bytes": 0.0, "pct": 0.0})
            k["n"] += 1
            k["ns"] += r["ns"]
            k["bytes"] += r["read"] + r["write"]
            k["pct"] += r["pct"] * r["ns"]
        for name, k in sorted(kinds.items(), key=lambda kv: -kv[1]["ns"]):
            gbs = k["bytes"] / k["ns"] if k["ns"] > 0 else 0.0
            print(f"| {name} | {k['n']} | {k['ns'] / 1e3:.1f} | {k['ns'] / tot * 100:.0f}% | {k['bytes'] / 1e6:.1f} | "
                  f"{gbs:.0f} | {k['pct'] / k['ns'] if k['ns'] else 0:.0f}% |")
        print()
        print("Slowest kernels of the step:\n")
        print("| kernel | grid | us | DRAM MB | GB/s |")
        print("|---|---:|---:|---:|---:|")
        for r in sorted(step, key=lambda r: -r["ns"])[:8]:
            b = r["read"] + r["write"]
            print(f"| {r['name'][:70]} | {r['grid']:.0f} | {r['ns'] / 1e3:.1f} | {b / 1e6:.1f} | {b / r['ns'] if r['ns'] else 0:.0f} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
