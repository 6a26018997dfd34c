#!/usr/bin/env python3
# bench/decode/torch_decode.py -- PyTorch decoding with a static KV cache, the competitors of decode_bench.c.
#
# The model is bench/train/torch_model.py (HF Llama layout, RoPE / RoPE++ EH / EC as docs/MATH.md, RoPE++)
# with bf16 weights and random init.  For each context N: a preallocated cache k, v of (B, KVH, Nmax, HD) per layer,
# registered as module buffers (Nmax = N + warmup + steps rounded up to 128, FlexAttention's block), a prefill of N
# random tokens (SDPA, causal, one pass), then one new token per sequence per step.  The ways to run the step, each
# timed with CUDA events over --steps steps after --warmup steps, one JSON line each:
#   eager       the loop a researcher writes: SDPA of the new query over the filled prefix k[:, :, :pos+1]
#   sdpa_graph  static shapes: F.scaled_dot_product_attention over the whole cache with a bool mask (positions
#               <= pos), native GQA (enable_gqa=True), the step captured once into a CUDA graph and replayed
#   compile     the sdpa step through torch.compile(mode="reduce-overhead", fullgraph=True, dynamic=False) set up as
#               gpt-fast does: caches are buffers of the compiled module, updated in place with index_copy_ at the
#               device position, attention in SDPA's math form for inductor to generate; inductor's CUDA graphs
#               apply (the record's cudagraph_skips says if they did not); gpt-fast's inductor
#               coordinate-descent tuning only with --coordinate-descent (it lengthens every compile)
#   flex        FlexAttention (torch >= 2.5) in the same compiled step: a block mask of every cache block with a
#               mask_mod kv <= pos (pos read from device memory), flex's decoding kernel for the length-1 query
#   graph       the earlier loop, kept as an extra column: attention as two grouped matmuls with an fp32 softmax
#               over the whole cache, captured into a CUDA graph
#   static, sdpa_static, flex_static   the graph / sdpa_graph / flex step run eagerly (CPU checks of those paths)
# Every mode's first step (position N, the same token) is checked against the eager step's logits: check_maxrel
# = max |logits - eager| / max |eager| must stay under --tol (bf16), else the record is marked check_ok false and
# the report leaves it out of "fastest PyTorch".
#
#   python3 bench/decode/torch_decode.py --pe ropepp_eh --ctx 2048,4096 --batch 8      (376M shape by default)
#   python3 bench/decode/torch_decode.py --device cpu --dtype fp32 --dim 64 --layers 2 --heads 4 --kv-heads 2 \
#       --ffn 128 --vocab 256 --ctx 16,32 --batch 2 --steps 4 --warmup 2 --modes eager,static,sdpa_static  (CPU)
#   python3 bench/decode/torch_decode.py --check-ref    (cached decoding = ref/model.py full forward, float64)
import argparse
import gc
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "train"))
from torch_model import PES, LM, Cfg, sdpa  # noqa: E402

try:   # FlexAttention: torch 2.5+
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
    FLEX_MISSING = None
except ImportError as e:
    BlockMask = flex_attention = None
    FLEX_MISSING = f"torch {torch.__version__} has no torch.nn.attention.flex_attention (2.5+): {e}"


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
    p.add_argument("--modes", default="sdpa_graph,compile,flex,graph",
                   help="comma list of " + ", ".join(MODES))
    p.add_argument("--coordinate-descent", action="store_true",
                   help="inductor's coordinate_descent_tuning, as gpt-fast sets it (longer compiles; off by default)")
    p.add_argument("--tol", type=float, default=3e-2,
                   help="largest max |logits - eager| / max |eager| of a mode's first step (bf16)")
    p.add_argument("--prefill-chunk", type=int, default=0, help="prefill in chunks of this many tokens (0 = one pass)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp32", "fp64"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--check-ref", action="store_true", help="compare with ref/model.py in float64 on the CPU and exit")
    return p.parse_args(argv)


# mode -> (attention of the static step, how it runs); "eager" is Decoder.forward
MODES = {"eager": (None, None), "sdpa_graph": ("sdpa", "graph"), "compile": ("sdpa_math", "compile"),
         "flex": ("flex", "compile"), "graph": ("matmul", "graph"), "static": ("matmul", None),
         "sdpa_static": ("sdpa", None), "flex_static": ("flex", None)}


def emit(rec):
    print(json.dumps(rec), flush=True)


class KVCache(nn.Module):
    """K and V of one layer, (B, KVH, Nmax, HD), as buffers: torch.compile treats them as static inputs, so the
    in-place writes at the device position keep inductor's CUDA graphs (gpt-fast's KVCache)."""

    def __init__(self, shape, dtype, device):
        super().__init__()
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)


FLEX_BLOCK = 128   # FlexAttention's default block; Nmax is a multiple of it


class Decoder(nn.Module):
    """A static KV cache for B sequences of up to Nmax positions and the forward passes that fill and read it.
    The model is a submodule and the caches are buffers, so one torch.compile of step() sees them as static."""

    def __init__(self, model, B, Nmax):
        super().__init__()
        cfg = model.cfg
        w = model.lm_head.weight
        self.model, self.cfg, self.B, self.Nmax = model, cfg, B, Nmax
        shape = (B, cfg.kvh, Nmax, cfg.hd)
        self.cache = nn.ModuleList([KVCache(shape, w.dtype, w.device) for _ in range(cfg.layers)])
        self.pos = 0
        self.bytes = 2 * cfg.layers * B * cfg.kvh * Nmax * cfg.hd * w.element_size()
        self.register_buffer("positions", torch.arange(Nmax, device=w.device), persistent=False)
        self.scale = 1.0 / math.sqrt(cfg.hd)
        self.block_mask = None

    def make_block_mask(self, pos_t):
        """FlexAttention's mask for a length-1 query over the cache: every KV block listed as partial (none skipped:
        the cache ends one block past the context), mask_mod kv <= pos read from pos_t (1,) on the device."""
        n = self.Nmax // FLEX_BLOCK
        dev = pos_t.device
        num = torch.full((1, 1, 1), n, dtype=torch.int32, device=dev)
        idx = torch.arange(n, dtype=torch.int32, device=dev).view(1, 1, 1, n)

        def visible(b, h, q_idx, kv_idx):
            return kv_idx <= pos_t[0]
        self.block_mask = BlockMask.from_kv_blocks(num, idx, BLOCK_SIZE=FLEX_BLOCK, mask_mod=visible,
                                                   seq_lengths=(1, self.Nmax))

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
            c = self.cache[l]
            q, k, v = att.project(layer.input_layernorm(x), cos, sin)
            c.k[:, :, p0:p0 + T] = k
            c.v[:, :, p0:p0 + T] = v
            y = sdpa(q, c.k[:, :, :p0 + T], c.v[:, :, :p0 + T], is_causal=(T > 1 and p0 == 0), attn_mask=mask)
            x = x + att.out(y)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.pos = p0 + T
        return m.lm_head(m.model.norm(x[:, -1]))

    def step(self, tok, pos_t, attn, block_mask=None):
        """The decode step with static shapes (CUDA graphs, torch.compile): tok (B, 1), pos_t (1,) int64 on the
        device -> logits (B, V). K/V of the new token written at pos_t, attention over all Nmax cache rows with the
        rows after pos_t masked. attn: "sdpa" (SDPA, bool mask, native GQA), "sdpa_math" (the same in SDPA's math
        form, for inductor), "flex" (flex_attention with block_mask, make_block_mask's), "matmul" (scores (B, KVH, G, Nmax) =
        q grouped per kv head @ k^T, fp32 softmax, @ v: the earlier loop)."""
        m, cfg = self.model, self.cfg
        B = tok.shape[0]
        G = cfg.na // cfg.kvh
        cos, sin = m.cos.index_select(0, pos_t), m.sin.index_select(0, pos_t)   # (1, d)
        visible = self.positions <= pos_t                                        # (Nmax,)
        x = m.model.embed_tokens(tok)
        for l, layer in enumerate(m.model.layers):
            att = layer.self_attn
            c = self.cache[l]
            q, k, v = att.project(layer.input_layernorm(x), cos, sin)           # q (B, NA, 1, d)
            c.k.index_copy_(2, pos_t, k)
            c.v.index_copy_(2, pos_t, v)
            if attn == "matmul":
                qg = q.reshape(B, cfg.kvh, G, cfg.hd)                           # head a = kv * G + g
                s = torch.matmul(qg, c.k.transpose(-1, -2))
                s = s.to(torch.promote_types(s.dtype, torch.float32)) * self.scale   # fp32 (fp64 in checks)
                s = s.masked_fill(~visible, float("-inf"))
                y = torch.matmul(torch.softmax(s, dim=-1).to(qg.dtype), c.v).reshape(B, cfg.na, 1, cfg.hd)
            elif attn == "flex":
                y = flex_attention(q, c.k, c.v, block_mask=block_mask, enable_gqa=True)
            elif attn in ("sdpa", "sdpa_math"):
                y = sdpa(q, c.k, c.v, attn_mask=visible.view(1, 1, 1, self.Nmax))
            else:
                raise ValueError(f"unknown attention {attn!r}")
            x = x + att.out(y)
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


def inductor_counter(name):
    """torch._dynamo's counters["inductor"][name] (cudagraph_skips: compiled graphs run without CUDA graphs)."""
    try:
        from torch._dynamo.utils import counters
        return int(counters["inductor"][name])
    except Exception:  # noqa: BLE001 -- a torch without these counters
        return None


def make_runner(mode, dec, dev, N):
    """mode -> (call(tok) -> logits (B, V) of one step at pos_t, then pos_t += 1; pos_t; extra JSON fields)."""
    attn, how = MODES[mode]
    pos_t = torch.full((1,), N, dtype=torch.int64, device=dev)
    extra = {}
    if attn == "flex":
        if FLEX_MISSING:
            raise RuntimeError(FLEX_MISSING)
        dec.make_block_mask(pos_t)
    if how is None:
        def call(tok):
            out = dec.step(tok, pos_t, attn, dec.block_mask)
            pos_t.add_(1)
            return out
    elif how == "graph":
        if dev.type != "cuda":
            raise RuntimeError(f"{mode} needs a GPU (CUDA graphs)")
        tok_s = torch.zeros((dec.B, 1), dtype=torch.int64, device=dev)
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):   # warm-up before capture (writes row N, rewritten by the first replay)
            for _ in range(2):
                dec.step(tok_s, pos_t, attn, dec.block_mask)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out_s = dec.step(tok_s, pos_t, attn, dec.block_mask)

        def call(tok):
            tok_s.copy_(tok)
            graph.replay()
            pos_t.add_(1)
            return out_s
    else:   # torch.compile, reduce-overhead (inductor's CUDA graphs), as gpt-fast's decode_one_token
        from torch.nn.attention import SDPBackend, sdpa_kernel
        torch._dynamo.reset()

        def decode_one(d, tok, p, bm):
            return d.step(tok, p, attn, bm)
        compiled = torch.compile(decode_one, mode="reduce-overhead", fullgraph=True, dynamic=False)
        # gpt-fast runs its compiled decode step under the math SDPA backend for inductor to generate the attention
        backends = [SDPBackend.MATH] if attn == "sdpa_math" else None
        skips0 = inductor_counter("cudagraph_skips")
        tok0 = torch.zeros((dec.B, 1), dtype=torch.int64, device=dev)
        t0 = time.perf_counter()
        with sdpa_kernel(backends) if backends else torch.no_grad():
            for _ in range(3):   # compile, record, first replay (writes row N, rewritten below)
                torch.compiler.cudagraph_mark_step_begin()
                compiled(dec, tok0, pos_t, dec.block_mask)
        sync(dev)
        extra["compile_s"] = time.perf_counter() - t0
        skips1 = inductor_counter("cudagraph_skips")
        extra["cudagraph_skips"] = None if skips0 is None else skips1 - skips0

        def call(tok):
            torch.compiler.cudagraph_mark_step_begin()
            if backends:
                with sdpa_kernel(backends):
                    out = compiled(dec, tok, pos_t, dec.block_mask)
            else:
                out = compiled(dec, tok, pos_t, dec.block_mask)
            pos_t.add_(1)
            return out
    return call, pos_t, extra


@torch.no_grad()
def run_ctx(a, cfg, model, dev, N, modes):
    """Prefill N tokens, then time each mode's decode steps from position N on; each mode's first step is checked
    against the eager step's logits at position N (same token, same cache). Yields JSON records."""
    B, W, M = a.batch, max(a.warmup, 1), a.steps
    nmax = -(-(N + W + M) // FLEX_BLOCK) * FLEX_BLOCK
    dec = Decoder(model, B, nmax)
    g = torch.Generator(device=dev)
    g.manual_seed(a.seed + N)
    prompt = torch.randint(0, cfg.vocab, (B, N), device=dev, generator=g)
    toks = torch.randint(0, cfg.vocab, (W + M, B, 1), device=dev, generator=g)
    t0 = time.perf_counter()
    dec.prefill(prompt, a.prefill_chunk)
    sync(dev)
    prefill_s = time.perf_counter() - t0
    ref = dec.forward(toks[0]).float()   # the eager step at position N: every mode's check
    base = dict(impl="torch", pe=cfg.pe, ctx=N, batch=B, steps=M, warmup=W, shape=cfg.describe(),
                kv_bytes=dec.bytes, kv_bytes_per_token=dec.bytes / dec.Nmax, kv_bytes_ctx=dec.bytes / dec.Nmax * N,
                nmax=dec.Nmax, prefill_s=prefill_s, dtype=a.dtype, torch=torch.__version__,
                device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu")
    for mode in modes:
        rec = dict(base, mode=mode)
        if MODES.get(mode, (None,))[0] == "flex" and FLEX_MISSING:
            print(f"{mode}: skipped, {FLEX_MISSING}", file=sys.stderr)
            yield dict(rec, skipped=FLEX_MISSING)
            continue
        try:
            if mode not in MODES:
                raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            if mode == "eager":
                def call(tok):
                    return dec.forward(tok)
                dec.pos = N
            else:
                call, pos_t, extra = make_runner(mode, dec, dev, N)
                rec.update(extra)
                pos_t.fill_(N)
            first = call(toks[0]).float()
            err = ((first - ref).abs().max() / ref.abs().max()).item()
            rec.update(check_maxrel=err, check_argmax_agree=(first.argmax(-1) == ref.argmax(-1)).float().mean().item(),
                       check_ok=bool(err < a.tol), check_tol=a.tol)
            for i in range(1, W):
                call(toks[i])
            sync(dev)
            timer = Timer(dev)
            timer.start()
            for i in range(W, W + M):
                out = call(toks[i])
            ms = timer.stop()
            logits = out.float()
            tpot = ms / M
            rec.update(tpot_ms=tpot, tok_s=B * 1e3 / tpot, finite=bool(torch.isfinite(logits).all().item()),
                       peak_mem_bytes=torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None)
        except Exception as e:  # report and go on
            rec["error"] = f"{type(e).__name__}: {str(e)[:500]}"
        yield rec
    dec.block_mask = None
    del dec
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def check_ref():
    """Cached decoding (one-pass prefill, chunked prefill, eager steps, and the static step with every attention:
    matmul, sdpa, flex where this torch has it) = ref/model.py's full forward, in float64 on the CPU, for every
    position embedding. The static steps run over a 128-row cache whose rows past the context hold random values,
    so a mask that lets one of them through fails."""
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
        attns = ["matmul", "sdpa"] + ([] if FLEX_MISSING else ["flex"])
        if FLEX_MISSING and pe == PES[0]:
            print(f"flex: not checked, {FLEX_MISSING}")
        for attn in attns:
            dec = Decoder(model, B, FLEX_BLOCK)
            dec.prefill(idx[:, :N])
            for c in dec.cache:
                c.k[:, :, N:].normal_()
                c.v[:, :, N:].normal_()
            pos_t = torch.tensor([N])
            if attn == "flex":
                dec.make_block_mask(pos_t)
            for i in range(S):
                with torch.no_grad():
                    lg = dec.step(idx[:, N + i:N + i + 1], pos_t, attn, dec.block_mask)
                pos_t.add_(1)
                errs.append((lg - full[:, N + i]).abs().max().item())
        err = max(errs) / full.abs().max().item()
        worst = max(worst, err)
        good = err < 1e-10
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {pe:10s}: prefill (one pass, chunked) + eager and static ({'/'.join(attns)}) steps "
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
    if a.coordinate_descent:
        from torch._inductor import config as inductor_config
        inductor_config.coordinate_descent_tuning = True
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
