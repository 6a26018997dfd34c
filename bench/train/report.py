#!/usr/bin/env python3
# bench/train/report.py -- turns the logs of bench/train/run.sh into results.md and results.json (one Markdown
# table per position embedding: ropepp's train_gpu vs PyTorch eager and torch.compile, plus the RoPE++/RoPE
# step-time ratios).  Called by run.sh; standalone: python3 bench/train/report.py --work DIR --results DIR.
import argparse
import json
import os
import shlex
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchenv import collect_env, env_lines, load_jsonl  # noqa: E402

SKIP_STEPS = 5   # ropepp's first steps (allocation, cuBLAS heuristics) are left out of its median


def shape_from_args(args):
    """--dim 1024 --layers 8 ... (the flags both programs take) -> dict."""
    t = shlex.split(args)
    d = {t[i][2:].replace("-", "_"): int(t[i + 1]) for i in range(0, len(t) - 1, 2) if t[i].startswith("--")}
    return d


def dims(s, pe):
    hd = s["dim"] // s["heads"]
    hq = s["heads"] // 2 if pe == "ropepp_eh" else s["heads"]
    kvh = s["kv_heads"] // 2 if pe == "ropepp_eh" else s["kv_heads"]
    na = 2 * s["heads"] if pe == "ropepp_ec" else s["heads"]
    return hd, hq, kvh, na


def flops_per_token(s, pe):
    """ropepp.h model_flops_per_token."""
    C, L, F, V, T = s["dim"], s["layers"], s["ffn"], s["vocab"], s["seq"]
    hd, hq, kvh, na = dims(s, pe)
    qkv = (hq + 2 * kvh) * hd
    matmul = L * (qkv * C + C * na * hd + 3 * F * C) + V * C
    return 6.0 * matmul + 6.0 * L * na * hd * T


def ours_mem_estimate(s, pe):
    """Bytes ropepp allocates for training (bf16 build): params + grads (bf16), master + AdamW m, v (fp32) and
    the activation arena of model_alloc_acts.  Leaves out the CUDA context, cuBLAS workspace and the backend's
    scratch buffers, so it is a lower bound."""
    C, L, F, V, B, T = s["dim"], s["layers"], s["ffn"], s["vocab"], s["batch"], s["seq"]
    hd, hq, kvh, na = dims(s, pe)
    qkv, nahd, kvhd = (hq + 2 * kvh) * hd, na * hd, kvh * hd
    n_params = 2 * V * C + 2 * L * C + L * qkv * C + L * C * nahd + L * 2 * F * C + L * C * F + C
    N = B * T
    sw = max(C, nahd, 2 * F, qkv)
    x = N * C + L * N * (C + qkv + nahd + kvhd + nahd + C + C + C + 2 * F + F + C + C) + N * C + N * V + 2 * N * sw + N * C
    m = 2 * L * N + N + L * B * na * T + N + 1
    return n_params * (2 + 2 + 4 + 4 + 4) + 2 * x + 4 * m + 2 * 4 * N




def ours_record(work, run, peak):
    tag, pe = run["tag"], run["pe"]
    s = shape_from_args(run["args"])
    rec = dict(impl="ropepp", tag=tag, pe=pe, batch=s["batch"], seq=s["seq"], rc=run["rc"], secs=run.get("secs"),
               log=f"ours_{tag}_{pe}.jsonl")
    log = load_jsonl(os.path.join(work, f"ours_{tag}_{pe}.jsonl"))
    rows = [r for r in log if "ms" in r]
    peaks = [r["peak_memory_bytes"] for r in log if "peak_memory_bytes" in r]
    if peaks:
        rec["peak_mem_bytes"] = peaks[-1]
    stdout = os.path.join(work, f"ours_{tag}_{pe}.txt")
    if os.path.exists(stdout):
        for line in open(stdout, errors="replace"):
            if line.startswith("model:") and "parameters" in line:
                try:
                    rec["num_params"] = int(line.split("|")[-1].split()[0])
                except (ValueError, IndexError):
                    pass
    timed = [r["ms"] for r in rows if r["step"] > SKIP_STEPS] or [r["ms"] for r in rows[1:]]
    if not timed:
        tail = open(stdout, errors="replace").read()[-400:] if os.path.exists(stdout) else ""
        rec["error"] = f"exit {run['rc']}{' (timeout)' if run['rc'] == 124 else ''}, no step logged; {tail.strip()}"
        return rec
    if run["rc"] != 0:
        rec["warning"] = f"exit {run['rc']} after {len(rows)} steps"
    med = statistics.median(timed)
    tokens = s["batch"] * s["seq"]
    fpt = flops_per_token(s, pe)
    rec.update(steps_timed=len(timed), ms_median=med, ms_min=min(timed), ms_max=max(timed), tok_s=tokens / (med / 1e3),
               flops_per_token=fpt, mfu=fpt * tokens / (med / 1e3) / (peak * 1e12),
               mem_estimate_bytes=ours_mem_estimate(s, pe), loss_last=rows[-1].get("loss"))
    return rec


def fmt_int(x):
    return f"{x:,.0f}" if x is not None else ""


def fmt_ratio(a, b):
    return f"{a / b:.2f}×" if a and b else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", default="bash bench/train/run.sh")
    ap.add_argument("--peak", type=float, default=989.0)
    ap.add_argument("--peak-source", default="")
    ap.add_argument("--notes", default="")
    ap.add_argument("--ours-label", default="ropepp `train_gpu`")
    a = ap.parse_args()
    work = a.work
    runs = load_jsonl(os.path.join(work, "ours_runs.jsonl"))
    shapes, shape_args, pes = [], {}, []
    for r in runs + load_jsonl(os.path.join(work, "torch_runs.jsonl")):
        if r["tag"] not in shape_args:
            shapes.append(r["tag"])
            shape_args[r["tag"]] = r["args"]
        if r["pe"] not in pes:
            pes.append(r["pe"])
    ours = [ours_record(work, r, a.peak) for r in runs]
    torch_recs = load_jsonl(os.path.join(work, "torch.jsonl"))
    for r in torch_recs:   # the same MFU peak for both sides
        if "ms_median" in r:
            r["mfu"] = r["flops_per_token"] * r["batch"] * r["seq"] / (r["ms_median"] / 1e3) / (a.peak * 1e12)
            r["peak_tflops"] = a.peak
    for r in load_jsonl(os.path.join(work, "torch_runs.jsonl")):   # process-level failures and skips
        if r.get("rc", 0) != 0 or r.get("skipped"):
            torch_recs.append(dict(impl="torch", mode=r.get("modes", ""), tag=r["tag"], pe=r["pe"],
                                   error=r.get("skipped") or f"process exit {r['rc']}"
                                   + (" (timeout)" if r["rc"] == 124 else "") + f"; {r.get('stderr_tail', '')}"))

    def find(impl, tag, pe, mode=None):
        for r in (ours if impl == "ropepp" else torch_recs):
            if r.get("tag") == tag and r.get("pe") == pe and (mode is None or r.get("mode") == mode) and "ms_median" in r:
                return r
        return None

    env = collect_env()
    md = ["# Training throughput: ropepp vs PyTorch", ""]
    md += env_lines(env)
    md += [f"- command: `{a.command}`",
           f"- MFU peak: {a.peak:g} TFLOP/s ({a.peak_source or 'ROPEPP_PEAK_TFLOPS'}); FLOPs per token as "
           "ropepp's `model_flops_per_token`: 6 × matmul weights + 6·L·NA·HD·T (causal attention), the same for both sides",
           f"- {a.ours_label} (bf16 activations on a GPU, fp32 master weights, fused AdamW kernel) on random tokens; "
           f"median of the `ms` of its `--log` over the steps after the first {SKIP_STEPS} (each step: data, forward, "
           "backward, AdamW; the loss is read back every step)",
           "- PyTorch: `bench/train/torch_train.py`: same model in the HF Llama layout, bf16 autocast over fp32 weights, "
           "SDPA with native GQA (`enable_gqa=True`), fused `torch.optim.AdamW`; median over its timed steps after warm-up "
           "(CUDA events, synchronised every step); `torch.compile` mode default. Peak memory = "
           "`torch.cuda.max_memory_allocated`",
           "- ropepp's peak memory: the most bytes its cudaMallocs held at once (model tensors, activations and "
           "scratch; no CUDA context or cuBLAS workspace, as `torch.cuda.max_memory_allocated`), from the "
           "`peak_memory_bytes` line of its log; an estimate from the shapes (marked ~) where a log has none",
           "- vs eager / vs compile: tokens/s of the row over tokens/s of PyTorch eager / torch.compile on the same shape"]
    if a.notes:
        md.append(f"- {a.notes}")
    md.append("")
    summary = []
    for pe in pes:
        md += [f"## {pe}", "", "| shape | implementation | ms/step | tokens/s | vs eager | vs compile | MFU | peak memory (GiB) |",
               "|---|---|---:|---:|---:|---:|---:|---:|"]
        for tag in shapes:
            s = shape_from_args(shape_args[tag])
            label = (f"{tag}: C {s['dim']} L {s['layers']} H {s['heads']}/{s['kv_heads']} F {s['ffn']} V {s['vocab']}, "
                     f"B {s['batch']} × T {s['seq']}")
            o, e, c = find("ropepp", tag, pe), find("torch", tag, pe, "eager"), find("torch", tag, pe, "compile")
            rows = [(a.ours_label, o), ("PyTorch eager", e), ("PyTorch `torch.compile`", c)]
            first = True
            for name, r in rows:
                cell = label if first else ""
                first = False
                if r is None:
                    err = None
                    want = None if name.startswith("ropepp") else ("compile" if "compile" in name else "eager")
                    for x in (ours if want is None else torch_recs):
                        xm = str(x.get("mode") or "")
                        if x.get("tag") == tag and x.get("pe") == pe and "error" in x and (
                                want is None or not xm or want in xm.split(",")):
                            err = x["error"]
                    md.append(f"| {cell} | {name} | — | — | | | | {('failed: ' + err[:120]) if err else 'not run'} |")
                    continue
                mem = (f"{r['peak_mem_bytes'] / 2**30:.1f}" if r.get("peak_mem_bytes")
                       else (f"~{r['mem_estimate_bytes'] / 2**30:.1f}" if r.get("mem_estimate_bytes") else ""))
                md.append(f"| {cell} | {name} | {r['ms_median']:.2f} | {fmt_int(r['tok_s'])} | "
                          f"{fmt_ratio(r['tok_s'], e['tok_s'] if e else None)} | "
                          f"{fmt_ratio(r['tok_s'], c['tok_s'] if c else None)} | {100 * r['mfu']:.1f}% | {mem} |")
            summary.append(dict(pe=pe, tag=tag, shape=s, ropepp=o, torch_eager=e, torch_compile=c,
                                ropepp_vs_eager=(o["tok_s"] / e["tok_s"]) if o and e else None,
                                ropepp_vs_compile=(o["tok_s"] / c["tok_s"]) if o and c else None))
        md.append("")
    md += ["## RoPE++ cost over RoPE (step-time ratio, same shape)", "",
           "| shape | ropepp EC/rope | eager EC/rope | compile EC/rope | ropepp EH/rope | eager EH/rope | compile EH/rope |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for tag in (shapes if "rope" in pes else []):
        cells, rr = [], dict(tag=tag)
        for other in ("ropepp_ec", "ropepp_eh"):
            for impl, mode, key in (("ropepp", None, "ropepp"), ("torch", "eager", "eager"), ("torch", "compile", "compile")):
                x, base = find(impl, tag, other, mode), find(impl, tag, "rope", mode)
                v = x["ms_median"] / base["ms_median"] if x and base else None
                rr[f"{key}_{other.split('_')[1]}_over_rope"] = v
                cells.append(f"{v:.3f}" if v else "—")
        ratios.append(rr)
        md.append(f"| {tag} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("")
    comp = [r["first_step_s"] for r in torch_recs if r.get("mode") == "compile" and "first_step_s" in r]
    if comp:
        md.append(f"torch.compile's first step (compilation included) took {min(comp):.0f}–{max(comp):.0f} s.")
    same, diff = 0, []
    for r in torch_recs:
        o = find("ropepp", r.get("tag"), r.get("pe"))
        if o and "num_params" in r and "num_params" in o:
            if o["num_params"] == r["num_params"]:
                same += 1
            else:
                diff.append(f"{r['tag']} {r['pe']}: ropepp {o['num_params']}, PyTorch {r['num_params']}")
    if same or diff:
        md.append(f"Parameter counts: ropepp = PyTorch in {same} of {same + len(diff)} runs"
                  + (f"; MISMATCH: {'; '.join(diff)}" if diff else "") + ".")
    md.append("")
    problems = [r for r in ours + torch_recs if "error" in r or "warning" in r]
    if problems:
        md += ["## Failed, skipped or partial runs", ""]
        for r in problems:
            md.append(f"- {r.get('impl')} {r.get('mode') or ''} {r.get('tag')} {r.get('pe')}: "
                      f"{(r.get('error') or r.get('warning'))[:300]}")
        md.append("")
    md += ["Logs: `ours_<shape>_<pe>.{jsonl,txt}` (train_gpu's --log and output), `torch.jsonl` (one line per "
           "PyTorch mode, with every timed step), `torch_<shape>_<pe>.err`; in logs.tar.gz where run.sh could write $OUT.", ""]
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "results.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(a.results, "results.json"), "w") as f:
        json.dump(dict(env=env, command=a.command, peak_tflops=a.peak, peak_source=a.peak_source,
                       shapes={t: shape_from_args(shape_args[t]) for t in shapes}, summary=summary, ratios=ratios,
                       ropepp=ours, torch=torch_recs), f, indent=1)
    print("\n".join(md))


if __name__ == "__main__":
    main()
