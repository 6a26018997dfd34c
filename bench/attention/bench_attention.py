#!/usr/bin/env python3
"""bench/attention/bench_attention.py — attention forward and backward alone, causal, bf16: this repository's CUDA
op (through the C driver bench_attention.cu, run as a subprocess) against PyTorch SDPA with the flash and the cuDNN
backends, in one invocation on one GPU. Writes results.json and results.md.

FLOPs (the usual causal convention): forward 4 * B * NA * T^2 * HD / 2 (Q K^T and P V over the causal half),
backward 2.5 x forward (five T x T products: S and dP recomputed, dV, dK, dQ). Ours does those five where the dk/dv
kernel can store dS^T for the dq kernel (ROPEPP_ATTN_DS_MB, default 4096 MB on Hopper, 1024 MB elsewhere: every T
here on Hopper) and seven beyond (S and dP recomputed in the dq kernel too); both deterministic without atomics, both
credited with 2.5 x. Times: medians over --iters iterations after --warmup, CUDA events around each call.

What each side times. ours: attention_forward = the key rotation kernel (writes kr) + the fused kernel (q rotation,
real/imaginary heads, qr written, flash attention, out, lse); attention_backward = D = rowsum(dout * out) + the dq
kernel (with the q rotary backward, real + imaginary summed) + the dk/dv kernel (with the key rotary backward), all
accumulated into dqkv. PyTorch: F.scaled_dot_product_attention(q, k, v, is_causal=True) on already-rotated q/k
(B, heads, T, HD), and torch.autograd.grad of it (dq, dk, dv): no rotary work.

Usage (repository root, GPU machine):
  python3 bench/attention/bench_attention.py --driver ./bench_attention [--out bench/attention/out] [--tokens 16384]
         [--T 1024,2048,4096,8192,16384] [--iters 30] [--warmup 5] [--simt-T 1024,4096] [--no-mma]
On a Hopper GPU with a binary built for sm_90a, "ours" is the wgmma + TMA forward, dk/dv and dq kernels
(cuda/attention_sm90.cuh) and a second driver run with ROPEPP_ATTN_SM90=0 times the mma.sync kernels beside it.
"""
import argparse, datetime, json, os, platform, statistics, subprocess, sys

MODES = {  # attention heads NA, kv heads KVH (ours also needs the projected q heads HQ; see the driver)
    "rope": dict(NA=8, KVH=4, desc="8 q heads, 4 kv heads"),
    "ropepp_eh": dict(NA=8, KVH=2, desc="4 q heads -> 8 attention heads (real+imag), 2 kv heads"),
    "ropepp_ec": dict(NA=16, KVH=4, desc="8 q heads -> 16 attention heads (real+imag), 4 kv heads"),
}


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"({e})"


def fwd_flops(B, NA, T, HD):
    return 4.0 * B * NA * T * T * HD / 2.0


def run_driver(driver, args, env_extra=None, Ts=None, iters=None):
    env = dict(os.environ)
    if env_extra:
        env.update(env_extra)
    cmd = [driver, "--tokens", str(args.tokens), "--T", ",".join(map(str, Ts or args.T)), "--hd", str(args.hd),
           "--iters", str(iters or args.iters), "--warmup", str(args.warmup), "--modes", ",".join(MODES)]
    print("+", " ".join(cmd), ("(" + " ".join(f"{k}={v}" for k, v in env_extra.items()) + ")") if env_extra else "",
          flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"driver failed with {p.returncode}:\n{p.stdout}\n{p.stderr}")
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    for r in rows:
        print(f"  {r['impl']:12s} {r['mode']:10s} B{r['B']:<3d} T{r['T']:<6d} fwd {r['fwd_ms']:8.3f} ms "
              f"{r['fwd_tflops']:6.1f} TFLOP/s   bwd {r['bwd_ms']:8.3f} ms {r['bwd_tflops']:6.1f} TFLOP/s", flush=True)
    return rows


def time_cuda(torch, fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    return statistics.median(ts), min(ts)


def bench_torch(args):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backends = {"torch_flash": SDPBackend.FLASH_ATTENTION, "torch_cudnn": SDPBackend.CUDNN_ATTENTION}
    rows = []
    for mode, m in MODES.items():
        NA, KVH, HD = m["NA"], m["KVH"], args.hd
        for T in args.T:
            B = max(1, args.tokens // T)
            flops = fwd_flops(B, NA, T, HD)
            for name, be in backends.items():
                row = dict(impl=name, mode=mode, B=B, T=T, NA=NA, KVH=KVH, HD=HD, iters=args.iters)
                try:
                    g = torch.Generator(device="cuda").manual_seed(1234)
                    q = torch.randn(B, NA, T, HD, device="cuda", dtype=torch.bfloat16, generator=g)
                    k = torch.randn(B, KVH, T, HD, device="cuda", dtype=torch.bfloat16, generator=g)
                    v = torch.randn(B, KVH, T, HD, device="cuda", dtype=torch.bfloat16, generator=g)
                    gqa = "enable_gqa"
                    with sdpa_kernel([be]):
                        qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
                        try:
                            out = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True, enable_gqa=True)
                            call = lambda: F.scaled_dot_product_attention(qq, kk, vv, is_causal=True, enable_gqa=True)
                        except Exception:  # noqa: BLE001  (backend without GQA: repeat the kv heads beforehand)
                            gqa = "repeat_kv"
                            rep = NA // KVH
                            kk = k.repeat_interleave(rep, dim=1).requires_grad_(True)
                            vv = v.repeat_interleave(rep, dim=1).requires_grad_(True)
                            out = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True)
                            call = lambda: F.scaled_dot_product_attention(qq, kk, vv, is_causal=True)
                        dout = torch.randn_like(out)
                        mf, mfmin = time_cuda(torch, call, args.iters, args.warmup)
                        bwd = lambda: torch.autograd.grad(out, (qq, kk, vv), dout, retain_graph=True)
                        mb, mbmin = time_cuda(torch, bwd, args.iters, args.warmup)
                    row.update(gqa=gqa, fwd_ms=mf, bwd_ms=mb, fwd_ms_min=mfmin, bwd_ms_min=mbmin,
                               fwd_tflops=flops / mf * 1e-9, bwd_tflops=2.5 * flops / mb * 1e-9)
                    print(f"  {name:12s} {mode:10s} B{B:<3d} T{T:<6d} fwd {mf:8.3f} ms {row['fwd_tflops']:6.1f} "
                          f"TFLOP/s   bwd {mb:8.3f} ms {row['bwd_tflops']:6.1f} TFLOP/s  ({gqa})", flush=True)
                    del q, k, v, qq, kk, vv, out, dout
                except Exception as e:  # noqa: BLE001
                    row.update(error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                    print(f"  {name:12s} {mode:10s} T{T}: {row['error']}", flush=True)
                rows.append(row)
                torch.cuda.empty_cache()
    return rows


def env_info(args):
    info = dict(date_utc=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                command=" ".join([os.path.basename(sys.executable)] + sys.argv), host=platform.node())
    info["gpu"] = sh("nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader")
    info["nvcc"] = sh("nvcc --version | tail -1")
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["gpu_torch"] = torch.cuda.get_device_name(0)
    except Exception as e:  # noqa: BLE001
        info["torch"] = f"unavailable: {e}"
    return info


def fmt(r, key):
    if r is None or "error" in r:
        return "n/a"
    return f"{r[key + '_tflops']:.0f} ({r[key + '_ms']:.2f} ms)"


def ratio(a, b, key):
    if a is None or b is None or "error" in a or "error" in b:
        return "n/a"
    return f"{b[key + '_ms'] / a[key + '_ms']:.2f}x"


def write_md(path, info, rows, args):
    idx = {(r["impl"], r["mode"], r["T"]): r for r in rows}
    L = ["# Attention forward / backward alone: ropepp CUDA (tensor cores) vs PyTorch SDPA", "",
         f"- date: {info['date_utc']}", f"- GPU: {info['gpu']}", f"- CUDA (nvcc): {info['nvcc']}",
         f"- PyTorch {info.get('torch')} (CUDA {info.get('torch_cuda')}, cuDNN {info.get('cudnn')})",
         f"- command: `{info['command']}`", "",
         "Causal, bf16, head dim %d, B = %d / T sequences. TFLOP/s with forward FLOPs = 4·B·NA·T²·HD/2 and backward "
         "= 2.5 × forward (ours does that work where the dk/dv kernel's dS^T tiles fit ROPEPP_ATTN_DS_MB, default 4096 MB on "
         "Hopper and 1024 MB elsewhere, and 3.5 × forward beyond, recomputing S and dP in the dq kernel; deterministic without atomics either way, "
         "credited 2.5 × like the others). Medians over "
         "%d iterations after %d warm-up, CUDA events. Ours includes the rotary work (q rotated in the kernel, qr/kr "
         "written, rotary backward into dqkv); PyTorch gets pre-rotated q/k." % (args.hd, args.tokens, args.iters,
                                                                                  args.warmup), ""]
    for mode, m in MODES.items():
        L += [f"## {mode}: {m['desc']}", "",
              "| T | B | ours fwd | ours fwd, mma.sync | flash fwd | cuDNN fwd | ours / cuDNN fwd | ours bwd | "
              "ours bwd, mma.sync | flash bwd | cuDNN bwd | ours / cuDNN bwd |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for T in args.T:
            o, om, f, c = (idx.get((i, mode, T)) for i in ("ropepp_tc", "ropepp_tc_mma", "torch_flash", "torch_cudnn"))
            B = (o or f or c or {}).get("B", "")
            L.append(f"| {T} | {B} | {fmt(o, 'fwd')} | {fmt(om, 'fwd')} | {fmt(f, 'fwd')} | {fmt(c, 'fwd')} | "
                     f"{ratio(o, c, 'fwd')} | {fmt(o, 'bwd')} | {fmt(om, 'bwd')} | {fmt(f, 'bwd')} | {fmt(c, 'bwd')} | "
                     f"{ratio(o, c, 'bwd')} |")
        gq = sorted({r.get("gqa") for r in rows if r["mode"] == mode and r.get("gqa")})
        L += ["", "TFLOP/s (median time). PyTorch GQA: " + (", ".join(gq) or "n/a") + ".", ""]
    simt = [r for r in rows if r["impl"] == "ropepp_simt"]
    if simt:
        L += ["## The previous fp32-math kernels (ROPEPP_ATTN_SIMT=1), for reference", "",
              "| mode | T | fwd | bwd | tensor-core speedup fwd / bwd |", "|---|---|---|---|---|"]
        for r in simt:
            o = idx.get(("ropepp_tc", r["mode"], r["T"]))
            sp = f"{r['fwd_ms'] / o['fwd_ms']:.1f}x / {r['bwd_ms'] / o['bwd_ms']:.1f}x" if o else "n/a"
            L.append(f"| {r['mode']} | {r['T']} | {fmt(r, 'fwd')} | {fmt(r, 'bwd')} | {sp} |")
        L.append("")
    if any(r["impl"] in ("ropepp_tc_bk128", "ropepp_tc_fwd64") for r in rows):
        L += ["## Block sizes (ours)", "",
              "Defaults: forward blocks of 128 rows (8 warps; 64 rows = 4 warps, 2 blocks/SM), dk/dv blocks of 64 keys "
              "(4 warps, 2 blocks/SM; 128 keys = 8 warps).", "",
              "| mode | T | fwd default (128 rows) | fwd 64 rows | bwd default (64 keys) | bwd 128 keys |",
              "|---|---|---|---|---|---|"]
        for mode in MODES:
            for T in args.T:
                o, f64, b128 = (idx.get((i, mode, T)) for i in ("ropepp_tc", "ropepp_tc_fwd64", "ropepp_tc_bk128"))
                L.append(f"| {mode} | {T} | {fmt(o, 'fwd')} | {fmt(f64, 'fwd')} | {fmt(o, 'bwd')} | {fmt(b128, 'bwd')} |")
        L.append("")
    ours = {(r["mode"], r["T"]): r for r in rows if r["impl"] == "ropepp_tc"}
    if all((m, T) in ours for m in ("rope", "ropepp_ec") for T in args.T):
        L += ["## Cost of RoPE++ EC over RoPE (same config heads, attention op alone, fwd + bwd time)", "",
              "| T | ropepp_ec / rope | ropepp_eh / rope |", "|---|---|---|"]
        for T in args.T:
            base = ours[("rope", T)]["fwd_ms"] + ours[("rope", T)]["bwd_ms"]
            ec = ours[("ropepp_ec", T)]["fwd_ms"] + ours[("ropepp_ec", T)]["bwd_ms"]
            eh = ours.get(("ropepp_eh", T))
            ehs = f"{(eh['fwd_ms'] + eh['bwd_ms']) / base:.2f}" if eh else "n/a"
            L.append(f"| {T} | {ec / base:.2f} | {ehs} |")
        L.append("")
    open(path, "w").write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", default="./bench_attention")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--T", type=lambda s: [int(x) for x in s.split(",")], default=[1024, 2048, 4096, 8192, 16384])
    ap.add_argument("--hd", type=int, default=128)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--simt-T", type=lambda s: [int(x) for x in s.split(",") if x], default=[1024, 4096],
                    help="also time the fp32-math fallback at these T (5 iterations); empty to skip")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-mma", action="store_true",
                    help="skip timing ours with the Hopper kernels turned off (ROPEPP_ATTN_SM90=0: the mma.sync kernels)")
    ap.add_argument("--variants", action="store_true",
                    help="also time ours with the other block sizes (128-key dk/dv blocks, 64-row forward blocks)")
    args = ap.parse_args()
    info = env_info(args)
    print(json.dumps(info, indent=1), flush=True)
    rows = run_driver(args.driver, args)
    if not args.no_torch:
        rows += bench_torch(args)
    if not args.no_mma:
        rows += run_driver(args.driver, args, {"ROPEPP_ATTN_SM90": "0"})
    if args.variants:
        rows += run_driver(args.driver, args, {"ROPEPP_ATTN_DKV_BK": "128"})
        rows += run_driver(args.driver, args, {"ROPEPP_ATTN_FWD_BM": "64"})
    if args.simt_T:
        rows += run_driver(args.driver, args, {"ROPEPP_ATTN_SIMT": "1"}, Ts=args.simt_T, iters=5)
    os.makedirs(args.out, exist_ok=True)
    flops_note = ("fwd FLOPs = 4*B*NA*T^2*HD/2 (causal), bwd FLOPs = 2.5 x fwd; TFLOP/s = FLOPs / median time")
    json.dump(dict(env=info, flops=flops_note, tokens=args.tokens, results=rows),
              open(os.path.join(args.out, "results.json"), "w"), indent=1)
    write_md(os.path.join(args.out, "results.md"), info, rows, args)
    print(open(os.path.join(args.out, "results.md")).read())


if __name__ == "__main__":
    main()
