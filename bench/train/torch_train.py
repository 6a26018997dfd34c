#!/usr/bin/env python3
# bench/train/torch_train.py -- the PyTorch competitor for ropepp's training speed: the same model (torch_model.py,
# HF Llama layout, RoPE / RoPE++ EH / EC as in docs/MATH.md, RoPE++), bf16 autocast over fp32 weights,
# SDPA (flash) attention with native GQA, fused AdamW (betas 0.95, 0.99, eps 1e-8, wd 0.1 except norms), random
# tokens.  Modes: eager and torch.compile (mode "default").  Per mode it prints one JSON line: median step time
# over --steps steps after --warmup warm-up steps (CUDA events, the GPU synchronised after every step, as
# train_gpu's loss read-back does), tokens/s, MFU with ropepp's FLOP count (6 x matmul weights + 6 L NA HD T per
# token) against --peak-tflops, and peak memory (torch.cuda.max_memory_allocated).
#
#   python3 bench/train/torch_train.py --pe ropepp_ec --dim 1024 --layers 8 --heads 8 --kv-heads 4 --ffn 3584 \
#       --vocab 50304 --seq 4096 --batch 8                       # eager then compiled, on the GPU
#   python3 bench/train/torch_train.py --device cpu --dtype fp32 --dim 64 --layers 2 --heads 4 --kv-heads 2 \
#       --ffn 128 --vocab 256 --seq 32 --batch 2 --steps 3 --warmup 1             # CPU smoke test
#   python3 bench/train/torch_train.py --check-ref      # same function as ref/model.py (float64, CPU), then exit
import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402
from torch_model import PES, LM, Cfg, make_adamw  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__ or "torch training benchmark")
    p.add_argument("--pe", default="rope", choices=PES)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=384)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    p.add_argument("--modes", default="eager,compile", help="comma list of eager, compile")
    p.add_argument("--compile-scope", default="model", choices=("model", "layer"),
                   help="torch.compile the whole model (default) or each decoder layer (regional compilation)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"), help="autocast dtype (fp32 = no autocast)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--peak-tflops", type=float, default=float(os.environ.get("ROPEPP_PEAK_TFLOPS", "989")),
                   help="peak for MFU (env ROPEPP_PEAK_TFLOPS; default 989 = H100 SXM dense bf16 spec)")
    p.add_argument("--tag", default="", help="free text copied into the JSON (the shape's name)")
    p.add_argument("--check-ref", action="store_true", help="compare with ref/model.py in float64 on the CPU and exit")
    p.add_argument("--profile-out", default="", help="after the timed steps, 3 more under torch.profiler: GPU time "
                   "per kernel and per kind (attention, GEMM, other) into this file")
    return p.parse_args(argv)


def emit(rec):
    print(json.dumps(rec), flush=True)


def device_name(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return "cpu"


def run_mode(mode, a, cfg, dev):
    """Train --warmup + --steps steps in one mode; returns the JSON record."""
    torch.manual_seed(a.seed)
    cuda = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if a.dtype == "bf16" else None
    table_dtype = torch.bfloat16 if amp_dtype is not None else torch.float32
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.device(dev):
        model = LM(cfg, a.seq, table_dtype)
    opt, opt_kind = make_adamw(model, a.lr, fused=True)
    fwd = model
    if mode == "compile":
        if a.compile_scope == "model":
            fwd = torch.compile(model)
        else:
            for layer in model.model.layers:
                layer.compile()
    elif mode != "eager":
        raise ValueError(f"unknown mode {mode!r}")
    g = torch.Generator(device=dev)
    g.manual_seed(a.seed)
    batches = []
    for _ in range(4):   # (inputs, targets) as a data loader hands them over: contiguous int64 (B, T)
        d = torch.randint(0, cfg.vocab, (a.batch, a.seq + 1), device=dev, generator=g)
        batches.append((d[:, :-1].contiguous(), d[:, 1:].contiguous()))

    def step(i):
        x, y = batches[i % len(batches)]
        if amp_dtype is not None:
            with torch.autocast(device_type=dev.type, dtype=amp_dtype):
                loss = fwd(x, y)
        else:
            loss = fwd(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    times, walls, losses = [], [], []
    first_step_s = None
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if cuda:
            ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            ev0.record()
        loss = step(i)
        if cuda:
            ev1.record()
            ev1.synchronize()
            ms = ev0.elapsed_time(ev1)
        else:
            ms = (time.perf_counter() - t0) * 1e3
        wall = (time.perf_counter() - t0) * 1e3
        losses.append(loss.item())
        if i == 0:
            first_step_s = wall / 1e3
        if i >= a.warmup:
            times.append(ms)
            walls.append(wall)
    if not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"non-finite loss: {losses}")
    if a.profile_out and cuda:
        profile_steps(step, a, mode, cfg)
    med = statistics.median(times)
    tokens = a.batch * a.seq
    fpt = cfg.flops_per_token(a.seq)
    rec = dict(impl="torch", mode=mode, tag=a.tag, pe=cfg.pe, batch=a.batch, seq=a.seq, shape=cfg.describe(),
               steps=a.steps, warmup=a.warmup, ms_median=med, ms_min=min(times), ms_max=max(times),
               wall_ms_median=statistics.median(walls), tok_s=tokens / (med / 1e3),
               flops_per_token=fpt, peak_tflops=a.peak_tflops,
               mfu=fpt * tokens / (med / 1e3) / (a.peak_tflops * 1e12),
               peak_mem_bytes=torch.cuda.max_memory_allocated(dev) if cuda else None,
               num_params=sum(p.numel() for p in model.parameters()), num_params_formula=cfg.num_params(),
               first_step_s=first_step_s, loss_first=losses[0], loss_last=losses[-1], optimizer=opt_kind,
               compile_scope=a.compile_scope if mode == "compile" else None, autocast=a.dtype,
               torch=torch.__version__, device=device_name(dev), sdpa_gqa=torch_model.SDPA_GQA, ms=[round(t, 4) for t in times])
    return rec   # the model, optimizer and batches are freed with this frame (main collects and empties the cache)


def kernel_kind(name):
    n = name.lower()
    if any(k in n for k in ("flash", "fmha", "cudnn", "attention", "sdpa")):
        return "attention"
    if any(k in n for k in ("gemm", "cutlass", "xmma", "cublas", "sm90_", "nvjet")):
        return "gemm"
    return "other (elementwise, norms, loss, optimizer, copies)"


def profile_steps(step, a, mode, cfg, n=3):
    """n more steps under torch.profiler; GPU kernel time per step by kernel and by kind, appended to a.profile_out."""
    from torch.profiler import profile, ProfilerActivity
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(n):
            step(i)
        torch.cuda.synchronize()
    per_kernel, per_kind = {}, {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
        per_kernel[e.name] = per_kernel.get(e.name, 0.0) + us
        k = kernel_kind(e.name)
        per_kind[k] = per_kind.get(k, 0.0) + us
    total = sum(per_kind.values())
    with open(a.profile_out, "a") as f:
        f.write(f"== {cfg.pe} {mode} B{a.batch} T{a.seq}: GPU kernel time per step over {n} steps (torch.profiler)\n")
        for k, us in sorted(per_kind.items(), key=lambda kv: -kv[1]):
            f.write(f"  {k:<55s} {us / n / 1e3:9.3f} ms  {100 * us / total:5.1f}%\n")
        f.write(f"  {'total':<55s} {total / n / 1e3:9.3f} ms\n  top kernels:\n")
        for name, us in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:25]:
            f.write(f"    {us / n / 1e3:8.3f} ms  {kernel_kind(name)[:9]:<9s} {name[:110]}\n")


def check_ref():
    """Same weights through ref/model.py (float64) and torch_model.LM: logits, loss and every gradient agree."""
    sys.path.insert(0, os.path.join(REPO, "ref"))
    from model import ModelConfig, RopeppLM
    torch.manual_seed(0)
    worst = 0.0
    ok = True
    for pe in PES:
        for heads, kv in ((4, 2), (4, 4), (8, 2)):
            rc = ModelConfig(vocab_size=37, dim=64, n_layers=2, n_heads=heads, n_kv_heads=kv, ffn_dim=80, pe=pe)
            ref = RopeppLM(rc)
            cfg = Cfg(37, 64, 2, heads, kv, 80, pe)
            T = 19
            mine = LM(cfg, T, table_dtype=torch.float64).double()
            mine.load_state_dict(ref.state_dict(), strict=True)
            idx = torch.randint(0, 37, (3, T))
            tgt = torch.randint(0, 37, (3, T))
            ref_logits, ref_loss = ref(idx, tgt)
            ref_loss.backward()
            my_logits = mine(idx)
            my_loss = mine(idx, tgt)
            my_loss.backward()
            err = (my_logits - ref_logits).abs().max().item() / ref_logits.abs().max().item()
            err = max(err, abs(my_loss.item() - ref_loss.item()) / abs(ref_loss.item()))
            gref = dict(ref.named_parameters())
            for name, p in mine.named_parameters():
                r = gref[name].grad
                err = max(err, (p.grad - r).abs().max().item() / max(r.abs().max().item(), 1e-300))
            worst = max(worst, err)
            good = err < 1e-10
            ok &= good
            print(f"{'ok  ' if good else 'FAIL'} {pe:10s} heads {heads} kv {kv}: logits, loss and gradients vs "
                  f"ref/model.py, max rel err {err:.1e}")
    print(("PASS" if ok else "FAIL") + f" torch_model.LM = ref/model.py (worst {worst:.1e})")
    return ok


def main(argv=None):
    a = parse_args(argv)
    if a.check_ref:
        sys.exit(0 if check_ref() else 1)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        emit(dict(impl="torch", error="CUDA is not available; use --device cpu"))
        sys.exit(1)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = Cfg(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.pe)
    failed = 0
    for mode in [m for m in a.modes.split(",") if m]:
        try:
            emit(run_mode(mode, a, cfg, dev))
        except Exception as e:  # report and go on with the next mode (OOM, compiler failure, ...)
            failed += 1
            emit(dict(impl="torch", mode=mode, tag=a.tag, pe=a.pe, batch=a.batch, seq=a.seq,
                      error=f"{type(e).__name__}: {str(e)[:500]}"))
        gc.collect()   # the last mode's model and optimizer state, before the next mode allocates its own
        if mode == "compile":
            torch._dynamo.reset()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
