#!/usr/bin/env python3
# bench/decode/report.py -- results.md, results.json and tpot.svg from the JSON lines of bench/decode/run.sh
# (decode_bench = ropepp, torch_decode.py = PyTorch).  The SVG is written as text: no plotting library needed.
#   python3 bench/decode/report.py --work DIR --results DIR [--command "..."]
import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from benchenv import collect_env, env_lines, load_jsonl  # noqa: E402

PES = ("rope", "ropepp_eh", "ropepp_ec")
COLORS = {"rope": "#1f77b4", "ropepp_eh": "#d62728", "ropepp_ec": "#2ca02c"}
# torch_decode.py's modes: the baselines a user would pick ("PyTorch" = the fastest of those present whose first
# step matched the eager step), then the extra columns
LABELS = {"sdpa_graph": "SDPA + CUDA graph", "compile": "torch.compile reduce-overhead", "flex": "FlexAttention compiled",
          "sdpa_static": "SDPA static step (no graph)", "flex_static": "FlexAttention static step (no graph)",
          "eager": "eager SDPA over the prefix", "graph": "old loop: 2 matmuls + fp32 softmax, CUDA graph",
          "static": "old loop without graph"}
BASELINES = ("sdpa_graph", "compile", "flex", "sdpa_static", "flex_static")
IMPLS = (("ropepp", None, "ropepp", ""), ("torch", "fastest", "fastest PyTorch", "6,4"),
         ("torch", "graph", "PyTorch old loop (CUDA graph)", "2,3"))




def mib(b):
    if b >= 2**30:
        return f"{b / 2**30:.2f} GiB"
    return f"{b / 2**20:,.1f} MiB" if b >= 2**20 else f"{b / 2**10:,.1f} KiB"


def nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def svg_plot(series_t, series_kv, ctxs, title, pes, impls):
    """Two panels: TPOT (ms) and KV-cache GiB vs context (log2 x). series: list of (pe, impl label, dash, {ctx: y}).
    Colour = position embedding, dash = implementation; the legend lists both below the panels."""
    W, H = 1000, 470
    pw, ph, top, left0, gap = 400, 300, 50, 70, 110
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    xs = sorted(ctxs)
    lx0 = math.log2(xs[0])
    lx1 = math.log2(xs[-1]) if len(xs) > 1 else lx0 + 1

    def panel(ix, series, ylabel):
        left = left0 + ix * (pw + gap)
        ymax = nice_max(max([y for _, _, _, d in series for y in d.values()] or [1.0]) * 1.05)
        X = lambda c: left + (math.log2(c) - lx0) / ((lx1 - lx0) or 1) * pw  # noqa: E731
        Y = lambda v: top + ph - v / ymax * ph  # noqa: E731
        out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        for i in range(6):
            v = ymax * i / 5
            out.append(f'<line x1="{left}" y1="{Y(v):.1f}" x2="{left + pw}" y2="{Y(v):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.4g}</text>')
        for c in xs:
            out.append(f'<line x1="{X(c):.1f}" y1="{top + ph}" x2="{X(c):.1f}" y2="{top + ph + 5}" stroke="#444"/>')
            lab = f"{c // 1024}k" if c >= 1024 and c % 1024 == 0 else str(c)
            out.append(f'<text x="{X(c):.1f}" y="{top + ph + 18}" text-anchor="middle">{lab}</text>')
        out.append(f'<text x="{left + pw / 2}" y="{top + ph + 36}" text-anchor="middle">context (tokens, log scale)</text>')
        out.append(f'<text transform="translate({left - 48},{top + ph / 2}) rotate(-90)" text-anchor="middle">{ylabel}</text>')
        for k, (pe, _, dash, d) in enumerate(series):
            pts = [(X(c), Y(d[c])) for c in xs if c in d]
            if not pts:
                continue
            da = f' stroke-dasharray="{dash}"' if dash else ""
            wide = ' stroke-width="5" stroke-opacity="0.45"' if (ix == 1 and k == 0) else ' stroke-width="2"'
            out.append(f'<polyline fill="none" stroke="{COLORS.get(pe, "#000")}"{wide}{da} points="'
                       + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
            for x, y in pts:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{COLORS.get(pe, "#000")}"/>')

    panel(0, series_t, "ms per decode step (TPOT)")
    panel(1, series_kv, "KV cache (GiB)")
    ly, lx = top + ph + 62, left0
    for pe in pes:
        out.append(f'<rect x="{lx}" y="{ly - 6}" width="24" height="10" fill="{COLORS.get(pe, "#000")}"/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 3}">{pe}</text>')
        lx += 130
    lx += 20
    for _, mode, name, dash in impls:
        da = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" y1="{ly - 1}" x2="{lx + 30}" y2="{ly - 1}" stroke="#333" stroke-width="2"{da}/>')
        out.append(f'<text x="{lx + 36}" y="{ly + 3}">{name}</text>')
        lx += 60 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--command", default="bash bench/decode/run.sh")
    ap.add_argument("--notes", default="")
    ap.add_argument("--batch", type=int, default=0, help="the batch of the comparison tables (default: the first)")
    a = ap.parse_args()
    ours = load_jsonl(os.path.join(a.work, "ours.jsonl"))
    torch_recs = load_jsonl(os.path.join(a.work, "torch.jsonl"))
    runs = load_jsonl(os.path.join(a.work, "runs.jsonl"))
    copies = [r for r in load_jsonl(os.path.join(a.work, "copy.jsonl")) if "bw_bytes_s" in r]
    bw = max((r["bw_bytes_s"] for r in copies), default=None)   # measured in this run (copy_bw.py)
    ok_all = [r for r in ours + torch_recs if "tpot_ms" in r and "error" not in r]
    batch = a.batch if a.batch else next((r["batch"] for r in ok_all), None)
    ok = [r for r in ok_all if r["batch"] == batch]   # the main comparison; other batches: their own tables
    ctxs = sorted({r["ctx"] for r in ok})
    modes = [m for m in LABELS if any(r.get("mode") == m for r in ok)]
    old = "graph" if "graph" in modes or "static" not in modes else "static"
    impls = (IMPLS[0], IMPLS[1], ("torch", old, "PyTorch " + LABELS[old], IMPLS[2][3]))

    def get(impl, mode, pe, ctx):
        if mode == "fastest":   # the fastest baseline whose first step matched the eager step's logits
            cands = [r for r in ok if r["impl"] == "torch" and r["pe"] == pe and r["ctx"] == ctx
                     and r.get("mode") in BASELINES and r.get("check_ok", True)]
            return min(cands, key=lambda r: r["tpot_ms"]) if cands else None
        for r in ok:
            if r["impl"] == impl and r["pe"] == pe and r["ctx"] == ctx and (mode is None or r.get("mode") == mode):
                return r
        return None

    env = collect_env()
    shape = next((r["shape"] for r in ok), {})
    md = ["# Decoding: time per output token and KV cache vs context, ropepp vs PyTorch", ""]
    md += env_lines(env)
    md += [f"- command: `{a.command}`",
           f"- model: random weights, C {shape.get('dim')} L {shape.get('layers')} H {shape.get('heads')} "
           f"KV {shape.get('kv_heads')} F {shape.get('ffn')} V {shape.get('vocab')}, batch {batch}",
           "- TPOT: wall time of one decode step (one new token for each of the batch's sequences) after the context "
           "was prefilled, mean over the timed steps; ropepp: `decode_bench` (model_decode, bf16 KV cache, split-K "
           "decode attention), PyTorch: `torch_decode.py`, bf16 weights, static preallocated KV cache "
           "of module buffers; the modes (`torch_decode.py`'s header says each): "
           + "; ".join(f"{m} = {LABELS[m]}" for m in modes)
           + ". **Fastest PyTorch** = the fastest of " + ", ".join(m for m in BASELINES if m in modes)
           + " whose first step's logits matched the eager step's (max |diff| / max |logit| under the tolerance); "
           "the old loop is an extra column only",
           "- KV cache: bytes of K and V for the context's positions (ropepp's kv.bytes per position × context; "
           "the allocation also holds the warm-up and timed steps' rows)",
           "- bandwidth floor: the bytes one ropepp step must read (bf16 matmul weights with the classifier, B "
           "embedding rows, the K and V of every cached position of every layer at the timed steps' mean position) "
           "over the device-to-device copy bandwidth measured in this run (`copy_bw.py`: (read + written bytes) / "
           "time of a 2 GiB copy" + (f", {bw / 1e12:.2f} TB/s" if bw else ", not measured") + "); fraction = floor / "
           "TPOT"]
    if a.notes:
        md.append(f"- {a.notes}")
    cols = [m for m in modes]
    md += ["", "## Time per output token (ms)", "",
           "| context | pe | ropepp | fastest PyTorch | which | ropepp speed-up | " + " | ".join(LABELS[m] for m in cols)
           + " | KV cache |", "|---:|---|---:|---:|---|---:|" + "---:|" * len(cols) + "---:|"]
    summary = []
    f = lambda r: f"{r['tpot_ms']:.3f}" if r else "—"  # noqa: E731
    for c in ctxs:
        for pe in PES:
            o, best = get("ropepp", None, pe, c), get("torch", "fastest", pe, c)
            rs = {m: get("torch", m, pe, c) for m in cols}
            if not (o or best or any(rs.values())):
                continue
            kvb = (o or best or next(r for r in rs.values() if r))["kv_bytes_ctx"]
            sp = f"{best['tpot_ms'] / o['tpot_ms']:.2f}×" if (best and o) else "—"

            def cell(m):
                r = rs[m]
                if r and r.get("check_ok") is False:
                    return f"{f(r)} (wrong: {r['check_maxrel']:.1e})"
                return f(r)
            md.append(f"| {c} | {pe} | {f(o)} | {f(best)} | {best['mode'] if best else '—'} | {sp} | "
                      + " | ".join(cell(m) for m in cols) + f" | {mib(kvb)} |")
            summary.append(dict(ctx=c, pe=pe, ropepp_tpot_ms=o and o["tpot_ms"],
                                fastest_torch_tpot_ms=best and best["tpot_ms"], fastest_torch_mode=best and best["mode"],
                                ropepp_speedup=best["tpot_ms"] / o["tpot_ms"] if (best and o) else None,
                                torch_tpot_ms={m: rs[m] and rs[m]["tpot_ms"] for m in cols}, kv_bytes_ctx=kvb,
                                ropepp_kv_bytes=o and o["kv_bytes"]))
    def floor_cells(o):
        if not o or "step_bytes" not in o or not bw:
            return "—", "—", "—"
        fl = o["step_bytes"] / bw * 1e3
        return f"{o['step_bytes'] / 2**30:.3f}", f"{fl:.3f}", f"{fl / o['tpot_ms'] * 100:.0f}%"

    bwrows = []
    md += ["", f"## Against the bandwidth floor (batch {batch})", "",
           "| context | pe | GiB read per step | floor (ms) | ropepp (ms) | fraction of floor | ropepp vs fastest PyTorch |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for c in ctxs:
        for pe in PES:
            o, g = get("ropepp", None, pe, c), get("torch", "fastest", pe, c)
            if not o:
                continue
            gb, fl, fr = floor_cells(o)
            md.append(f"| {c} | {pe} | {gb} | {fl} | {o['tpot_ms']:.3f} | {fr} | "
                      + (f"{g['tpot_ms'] / o['tpot_ms']:.2f}×" if g else "—") + " |")
            bwrows.append(dict(ctx=c, pe=pe, batch=batch, step_bytes=o.get("step_bytes"), tpot_ms=o["tpot_ms"],
                               floor_ms=o["step_bytes"] / bw * 1e3 if bw and "step_bytes" in o else None))
    for ob in sorted({r["batch"] for r in ours if "tpot_ms" in r and r["batch"] != batch}):
        rows = [r for r in ours if "tpot_ms" in r and r["batch"] == ob]
        fill = rows[0].get("fill", "prefill") if rows else ""
        md += ["", f"## ropepp at batch {ob} ({'latency' if ob == 1 else 'throughput'}; cache {fill})", "",
               "| context | pe | ms per step | tokens/s | GiB read per step | floor (ms) | fraction of floor |",
               "|---:|---|---:|---:|---:|---:|---:|"]
        for c in sorted({r["ctx"] for r in rows}):
            for pe in PES:
                o = next((r for r in rows if r["pe"] == pe and r["ctx"] == c), None)
                if not o:
                    continue
                gb, fl, fr = floor_cells(o)
                md.append(f"| {c} | {pe} | {o['tpot_ms']:.3f} | {o['tok_s']:,.0f} | {gb} | {fl} | {fr} |")
                bwrows.append(dict(ctx=c, pe=pe, batch=ob, step_bytes=o.get("step_bytes"), tpot_ms=o["tpot_ms"],
                                   tok_s=o["tok_s"], floor_ms=o["step_bytes"] / bw * 1e3 if bw and "step_bytes" in o else None))
    md += ["", "## RoPE++ over RoPE at the same context", "",
           "| context | KV EH/rope | TPOT EH/rope: ropepp | fastest PyTorch | TPOT EC/rope: ropepp | fastest PyTorch |",
           "|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for c in ctxs:
        row, cells = dict(ctx=c), []
        base = get("ropepp", None, "rope", c) or get("torch", "fastest", "rope", c)
        eh = get("ropepp", None, "ropepp_eh", c) or get("torch", "fastest", "ropepp_eh", c)
        kv = eh["kv_bytes_ctx"] / base["kv_bytes_ctx"] if base and eh else None
        row["kv_eh_over_rope"] = kv
        cells.append(f"{kv:.2f}" if kv else "—")
        for other in ("ropepp_eh", "ropepp_ec"):
            for impl, mode, key in (("ropepp", None, "ropepp"), ("torch", "fastest", "torch")):
                x, b = get(impl, mode, other, c), get(impl, mode, "rope", c)
                v = x["tpot_ms"] / b["tpot_ms"] if x and b else None
                row[f"{key}_{other.split('_')[1]}_over_rope"] = v
                cells.append(f"{v:.2f}" if v else "—")
        ratios.append(row)
        md.append(f"| {c} | " + " | ".join(cells) + " |")
    problems = [r for r in ours + torch_recs if "error" in r or r.get("skipped") or r.get("finite") is False]
    problems += [r for r in runs if r.get("rc", 0) != 0 or r.get("skipped")]
    checks = [r for r in torch_recs if "check_maxrel" in r]
    if checks:
        bad = [r for r in checks if r.get("check_ok") is False]
        md += ["", "## Check: each PyTorch mode's first step against the eager step", "",
               f"Every mode's first step (position = context, the same token, the same prefilled cache) against the "
               f"eager step's logits: max |diff| / max |eager logit| at most {max(r['check_maxrel'] for r in checks):.1e} "
               f"(tolerance {checks[0].get('check_tol')}), argmax agreeing on at least "
               f"{min(r.get('check_argmax_agree', 1) for r in checks) * 100:.0f}% of the batch; "
               + (f"{len(bad)} mode(s) failed and are left out of the fastest: "
                  + ", ".join(f"{r['mode']} {r['pe']} {r['ctx']} ({r['check_maxrel']:.1e})" for r in bad)
                  if bad else "none failed."), ""]
        md += ["| context | pe | mode | max rel diff | argmax agree | compile (s) | inductor CUDA-graph skips |",
               "|---:|---|---|---:|---:|---:|---:|"]
        for r in checks:
            cs = f"{r['compile_s']:.0f}" if r.get("compile_s") is not None else ""
            md.append(f"| {r['ctx']} | {r['pe']} | {r['mode']} | {r['check_maxrel']:.1e} | "
                      f"{r.get('check_argmax_agree', 0) * 100:.0f}% | {cs} | {r.get('cudagraph_skips', '')} |")
    if problems:
        md += ["", "## Failed, skipped or partial runs", ""]
        for r in problems:
            if r.get("error") or r.get("skipped"):
                what = r.get("error") or r.get("skipped")
            elif "rc" in r:
                what = f"exit {r['rc']}" + (" (timeout)" if r["rc"] == 124 else "") + f"; {r.get('stderr_tail', '')}"
            else:
                what = "non-finite logits"
            md.append(f"- {r.get('impl', r.get('prog'))} {r.get('mode', '')} {r.get('pe')} ctx {r.get('ctx', 'all')}: {str(what)[:300]}")
    md += ["", "![TPOT and KV cache vs context](tpot.svg)", "",
           "Logs: `ours.jsonl` (decode_bench), `torch.jsonl` (torch_decode.py), `runs.jsonl` (exit codes), `*.err`; "
           "in logs.tar.gz where run.sh could write $OUT.", ""]
    series_t, series_kv = [], []
    for pe in PES:
        for impl, mode, name, dash in impls:
            d = {c: get(impl, mode, pe, c)["tpot_ms"] for c in ctxs if get(impl, mode, pe, c)}
            if d:
                series_t.append((pe, name, dash, d))
        d = {}
        for c in ctxs:
            r = get("ropepp", None, pe, c) or get("torch", "fastest", pe, c) or get("torch", old, pe, c)
            if r:
                d[c] = r["kv_bytes_ctx"] / 2**30
        if d:
            series_kv.append((pe, "KV cache", "", d))
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "results.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(a.results, "results.json"), "w") as f:
        json.dump(dict(env=env, command=a.command, notes=a.notes, shape=shape, batch=batch, copy=copies,
                       copy_bw_bytes_s=bw, summary=summary, bandwidth=bwrows, ratios=ratios, ropepp=ours,
                       torch=torch_recs, runs=runs), f, indent=1)
    if ctxs:
        title = (f"Decoding, batch {batch}, C {shape.get('dim')} L {shape.get('layers')} H {shape.get('heads')} "
                 f"KV {shape.get('kv_heads')}: time per output token and KV cache (rope and ropepp_ec caches coincide)")
        pes = [pe for pe in PES if any(s[0] == pe for s in series_t + series_kv)]
        with open(os.path.join(a.results, "tpot.svg"), "w") as f:
            f.write(svg_plot(series_t, series_kv, ctxs, title, pes, impls))
    print("\n".join(md))


if __name__ == "__main__":
    main()
