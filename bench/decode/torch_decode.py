#!/usr/bin/env python3
# bench/decode/torch_decode.py -- PyTorch decoding with a static KV cache, the competitor of decode_bench.c.
#
# The model is bench/train/torch_model.py (HF Llama layout, RoPE / RoPE++ EH / EC as docs/MATH.md, RoPE++)
# with bf16 weights and random init.  For each context N: preallocated caches k, v of (B, KVH, Nmax, HD) per layer
# (Nmax = N + warmup + steps), a prefill of N random tokens (SDPA, causal, one pass), then decoding of one new
# token per sequence per step.  Two ways to run the step, both timed with CUDA events over --steps steps after
# --warmup steps, one JSON line each:
#   eager  the loop a researcher writes: SDPA of the new query over the filled prefix k[:, :, :pos+1] (native GQA)
#   graph  the same step with static shapes (attention over the whole cache with a position mask, written as two
#          grouped matmuls so that each K/V row is read once), captured once into a CUDA graph and replayed:
#          PyTorch without launch overhead.  GPU only; --modes eager skips it.
#   static the graph mode's step run eagerly (no graph): checks that path on a CPU.
# Both modes decode the same tokens from the same cache; the JSON holds their final logits' relative difference.
#
#   python3 bench/decode/torch_decode.py --pe ropepp_eh --ctx 2048,4096 --batch 8      (376M shape by default)
#   python3 bench/decode/torch_decode.py --device cpu --dtype fp32 --dim 64 --layers 2 --heads 4 --kv-heads 2 \
#       --ffn 128 --vocab 256 --ctx 16,32 --batch 2 --steps 4 --warmup 2                     (CPU smoke test)
#   python3 bench/decode/torch_decode.py --check-ref    (cached decoding = ref/model.py full forward, float64)
import argparse
import gc
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "train"))
from torch_model import PES, LM, Cfg, sdpa  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="PyTorch KV-cache decoding benchmark")
    p.add_argument("--pe", default="rope", choices=PES)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=3584)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ctx", default="2048", help="comma list of context lengths N (prefilled tokens)")
    p.add_argument("--steps", type=int, default=100, help="timed decode steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed decode steps first")
    p.add_argument("--modes", default="eager,graph", help="comma list of eager, graph, static")
    p.add_argument("--prefill-chunk", type=int, default=0, help="prefill in chunks of this many tokens (0 = one pass)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp32", "fp64"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--check-ref", action="store_true", help="compare with ref/model.py in float64 on the CPU and exit")
    return p.parse_args(argv)


def emit(rec):
    print(json.dumps(rec), flush=True)


class Decoder:
    """A static KV cache for B sequences of up to Nmax positions and the forward passes that fill and read it."""

    def __init__(self, model, B, Nmax):
        cfg = model.cfg
        self.model, self.cfg, self.B, self.Nmax = model, cfg, B, Nmax
        w = model.lm_head.weight
        shape = (B, cfg.kvh, Nmax, cfg.hd)
        self.k = [torch.zeros(shape, dtype=w.dtype, device=w.device) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, dtype=w.dtype, device=w.device) for _ in range(cfg.layers)]
        self.pos = 0
        self.bytes = sum(t.numel() * t.element_size() for t in self.k + self.v)
        self.positions = torch.arange(Nmax, device=w.device)
        self.scale = 1.0 / math.sqrt(cfg.hd)

    @torch.no_grad()
    def forward(self, idx):
        """idx (B, T) at positions pos .. pos+T-1 -> logits of the last token (B, V); the cache grows by T.
        T = 1 is the eager decode step: SDPA of the new query over the filled prefix."""
        m = self.model
        B, T = idx.shape
        p0 = self.pos
        cos, sin = m.cos[p0:p0 + T], m.sin[p0:p0 + T]
        mask = None
        if T > 1 and p0 > 0:   # a later prefill chunk: query i sees keys 0 .. p0 + i
            mask = self.positions[None, :p0 + T] <= (p0 + torch.arange(T, device=idx.device))[:, None]
        x = m.model.embed_tokens(idx)
        for l, layer in enumerate(m.model.layers):
            att = layer.self_attn
            q, k, v = att.project(layer.input_layernorm(x), cos, sin)
            self.k[l][:, :, p0:p0 + T] = k
            self.v[l][:, :, p0:p0 + T] = v
            kk, vv = self.k[l][:, :, :p0 + T], self.v[l][:, :, :p0 + T]
            y = sdpa(q, kk, vv, is_causal=(T > 1 and p0 == 0), attn_mask=mask)
            x = x + att.out(y)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.pos = p0 + T
        return m.lm_head(m.model.norm(x[:, -1]))

    @torch.no_grad()
    def step_static(self, tok, pos_t):
        """The decode step with static shapes for CUDA graphs: tok (B, 1), pos_t (1,) int64 on the device.
        Attention over all Nmax cache rows, rows after pos_t masked; q heads grouped per kv head, so each K/V row
        is read once: scores (B, KVH, G, Nmax) = q (B, KVH, G, d) @ k^T."""
        m, cfg = self.model, self.cfg
        B = tok.shape[0]
        G = cfg.na // cfg.kvh
        cos, sin = m.cos.index_select(0, pos_t), m.sin.index_select(0, pos_t)   # (1, d)
        masked = self.positions > pos_t                                          # (Nmax,)
        x = m.model.embed_tokens(tok)
        for l, layer in enumerate(m.model.layers):
            att = layer.self_attn
            q, k, v = att.project(layer.input_layernorm(x), cos, sin)           # q (B, NA, 1, d)
            self.k[l].index_copy_(2, pos_t, k)
            self.v[l].index_copy_(2, pos_t, v)
            qg = q.reshape(B, cfg.kvh, G, cfg.hd)                               # head a = kv * G + g
            s = torch.matmul(qg, self.k[l].transpose(-1, -2))
            s = s.to(torch.promote_types(s.dtype, torch.float32)) * self.scale   # softmax in fp32 (fp64 in checks)
            s = s.masked_fill(masked, float("-inf"))
            pr = torch.softmax(s, dim=-1).to(qg.dtype)
            y = torch.matmul(pr, self.v[l])                                     # (B, KVH, G, d)
            x = x + att.o_proj(y.reshape(B, 1, cfg.na * cfg.hd))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return m.lm_head(m.model.norm(x[:, -1]))

    def prefill(self, idx, chunk=0):
        self.pos = 0
        n = idx.shape[1]
        chunk = chunk if chunk > 0 else n
        logits = None
        for s in range(0, n, chunk):
            logits = self.forward(idx[:, s:s + chunk])
        return logits


def make_model(cfg, max_T, dtype, dev, seed):
    torch.manual_seed(seed)
    with torch.device(dev):
        model = LM(cfg, max_T, table_dtype=dtype)
    model = model.to(dtype)
    model.eval()
    return model


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class Timer:
    """CUDA events on a GPU, perf_counter on the CPU; ms()."""

    def __init__(self, dev):
        self.cuda = dev.type == "cuda"
        if self.cuda:
            self.a, self.b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def start(self):
        if self.cuda:
            self.a.record()
        self.t0 = time.perf_counter()

    def stop(self):
        if self.cuda:
            self.b.record()
            self.b.synchronize()
            return self.a.elapsed_time(self.b)
        return (time.perf_counter() - self.t0) * 1e3


def run_ctx(a, cfg, model, dev, N, modes):
    """Prefill N tokens, then time each mode's decode steps from position N on. Yields JSON records."""
    B, W, M = a.batch, a.warmup, a.steps
    dec = Decoder(model, B, N + W + M)
    g = torch.Generator(device=dev)
    g.manual_seed(a.seed + N)
    prompt = torch.randint(0, cfg.vocab, (B, N), device=dev, generator=g)
    toks = torch.randint(0, cfg.vocab, (W + M, B, 1), device=dev, generator=g)
    t0 = time.perf_counter()
    dec.prefill(prompt, a.prefill_chunk)
    sync(dev)
    prefill_s = time.perf_counter() - t0
    base = dict(impl="torch", pe=cfg.pe, ctx=N, batch=B, steps=M, warmup=W, shape=cfg.describe(),
                kv_bytes=dec.bytes, kv_bytes_per_token=dec.bytes / dec.Nmax, kv_bytes_ctx=dec.bytes / dec.Nmax * N,
                prefill_s=prefill_s, dtype=a.dtype, torch=torch.__version__,
                device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu")
    last = {}
    for mode in modes:
        rec = dict(base, mode=mode)
        try:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            timer = Timer(dev)
            if mode == "eager":
                dec.pos = N
                for i in range(W):
                    dec.forward(toks[i])
                sync(dev)
                timer.start()
                for i in range(W, W + M):
                    out = dec.forward(toks[i])
                ms = timer.stop()
            elif mode == "static":   # the graph mode's step without the graph (a CPU check of that path)
                pos_t = torch.full((1,), N, dtype=torch.int64, device=dev)
                for i in range(W):
                    dec.step_static(toks[i], pos_t)
                    pos_t.add_(1)
                sync(dev)
                timer.start()
                for i in range(W, W + M):
                    out = dec.step_static(toks[i], pos_t)
                    pos_t.add_(1)
                ms = timer.stop()
            elif mode == "graph":
                if dev.type != "cuda":
                    raise RuntimeError("graph mode needs a GPU (CUDA graphs)")
                tok_s = toks[0].clone()
                pos_t = torch.full((1,), N, dtype=torch.int64, device=dev)
                side = torch.cuda.Stream(dev)
                side.wait_stream(torch.cuda.current_stream(dev))
                with torch.cuda.stream(side):   # warm-up before capture (writes row N, rewritten below)
                    for _ in range(2):
                        dec.step_static(tok_s, pos_t)
                torch.cuda.current_stream(dev).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out_s = dec.step_static(tok_s, pos_t)

                def one(i):
                    tok_s.copy_(toks[i])
                    graph.replay()
                    pos_t.add_(1)
                for i in range(W):
                    one(i)
                sync(dev)
                timer.start()
                for i in range(W, W + M):
                    one(i)
                ms = timer.stop()
                out = out_s
            else:
                raise ValueError(f"unknown mode {mode!r}")
            logits = out.float()
            last[mode] = logits.clone()
            tpot = ms / M
            rec.update(tpot_ms=tpot, tok_s=B * 1e3 / tpot, finite=bool(torch.isfinite(logits).all().item()),
                       peak_mem_bytes=torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None)
            if mode != "eager" and "eager" in last:
                ref = last["eager"]
                rec["vs_eager_maxrel"] = ((logits - ref).abs().max() / ref.abs().max()).item()
        except Exception as e:  # report and go on
            rec["error"] = f"{type(e).__name__}: {str(e)[:500]}"
        yield rec
    del dec
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def check_ref():
    """Cached decoding (one-pass prefill, chunked prefill, eager steps, static steps) = ref/model.py's full
    forward, in float64 on the CPU, for every position embedding."""
    sys.path.insert(0, os.path.join(REPO, "ref"))
    from model import ModelConfig, RopeppLM
    ok, worst = True, 0.0
    for pe in PES:
        torch.manual_seed(1)
        rc = ModelConfig(vocab_size=41, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=72, pe=pe)
        ref = RopeppLM(rc)
        cfg = Cfg(41, 64, 2, 4, 2, 72, pe)
        N, S, B = 13, 5, 3
        model = LM(cfg, N + S, table_dtype=torch.float64).double().eval()
        model.load_state_dict(ref.state_dict(), strict=True)
        idx = torch.randint(0, 41, (B, N + S))
        with torch.no_grad():
            full, _ = ref(idx)                                   # (B, N+S, V)
        errs = []
        for chunk in (0, 4):
            dec = Decoder(model, B, N + S)
            lg = dec.prefill(idx[:, :N], chunk)
            errs.append((lg - full[:, N - 1]).abs().max().item())
            for i in range(S - 1):
                lg = dec.forward(idx[:, N + i:N + i + 1])
                errs.append((lg - full[:, N + i]).abs().max().item())
        dec = Decoder(model, B, N + S)
        dec.prefill(idx[:, :N])
        for i in range(S):
            lg = dec.step_static(idx[:, N + i:N + i + 1], torch.tensor([N + i]))
            errs.append((lg - full[:, N + i]).abs().max().item())
        err = max(errs) / full.abs().max().item()
        worst = max(worst, err)
        good = err < 1e-10
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {pe:10s}: prefill (one pass, chunked) + eager and static decode steps "
              f"vs ref/model.py full forward, max rel err {err:.1e}")
    print(("PASS" if ok else "FAIL") + f" cached decoding = ref/model.py (worst {worst:.1e})")
    return ok


def main(argv=None):
    a = parse_args(argv)
    if a.check_ref:
        sys.exit(0 if check_ref() else 1)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        emit(dict(impl="torch", error="CUDA is not available; use --device cpu"))
        sys.exit(1)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}[a.dtype]
    cfg = Cfg(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.pe)
    ctxs = [int(c) for c in a.ctx.split(",") if c]
    modes = [m for m in a.modes.split(",") if m]
    model = make_model(cfg, max(ctxs) + a.warmup + a.steps, dtype, dev, a.seed)
    failed = 0
    for N in ctxs:
        try:
            for rec in run_ctx(a, cfg, model, dev, N, modes):
                failed += "error" in rec
                emit(rec)
        except Exception as e:  # prefill failed (out of memory, ...): report, go on with the next context
            failed += 1
            emit(dict(impl="torch", pe=cfg.pe, ctx=N, batch=a.batch, error=f"{type(e).__name__}: {str(e)[:500]}"))
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
