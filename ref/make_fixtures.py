#!/usr/bin/env python3
# ref/make_fixtures.py -- regenerate the C parity fixtures tests/fixtures/<pe>.{ckpt,fix} from the float64
# PyTorch reference (ref/model.py), one per position embedding.
#
# How to run (from the repository root; needs torch, numpy, safetensors):
#   python3 ref/make_fixtures.py                 # all 7 PEs, prints a summary table
#   python3 ref/make_fixtures.py --pe rope alibi # a subset
#   python3 ref/make_fixtures.py --out DIR       # somewhere else (default tests/fixtures)
#
# Each <pe>.ckpt is the initial model in fp64 (written through ref/convert.py).  Each <pe>.fix follows
# docs/FORMATS.md "Parity fixture": header, inputs, targets (one -1), logits, loss, gradients of every table
# tensor (frozen FoPE coefficients as zeros; raw gradients, before any clipping), then n_steps AdamW steps on
# the same batch: the loss before update k and the lr used by update k.
# Training semantics (what the C side must match): torch.optim.AdamW(foreach=False), weight decay on all
# trainable tensors except RMSNorm weights, optional torch.nn.utils.clip_grad_norm_ (coef = clip/(norm+1e-6),
# applied only when < 1), LambdaLR with lr_k = lr_peak * lambda(k) (ref/model.py lr_lambda).

import sys

sys.dont_write_bytecode = True   # keep ref/ free of __pycache__

import argparse
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import PE_NAMES, SCHEDULES, ModelConfig, RopeppLM, make_optimizer, make_scheduler, trainable_parameters  # noqa: E402
import convert  # noqa: E402

FIX_MAGIC = 20251208
FIX_VERSION = 1
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures")

BASE_MODEL = dict(vocab_size=11, dim=48, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, train_seq=64,
                  rope_base=10000.0, norm_eps=1e-5)
BASE_TRAIN = dict(B=2, T=9, n_steps=10, lr=1e-2, beta1=0.95, beta2=0.99, eps=1e-8, weight_decay=0.1, clip=0.0,
                  schedule="constant_with_warmup", W=3, N=10, D=0)

# per-PE variations so that every option is exercised
SPECS = {
    "nope":      (dict(), dict(schedule="constant_with_warmup", W=3)),
    "rope":      (dict(yarn_factor=4.0, yarn_orig_len=1024), dict(schedule="constant_with_warmup", W=3)),
    "ropepp_eh": (dict(ntk_factor=2.0), dict(schedule="warmup_stable_decay", W=2, N=10, D=4, clip=0.5)),
    "ropepp_ec": (dict(pi_factor=2.0), dict(schedule="cosine", W=2, N=10)),
    "fope":      (dict(), dict(schedule="constant_with_warmup", W=3)),
    "alibi":     (dict(n_heads=6, n_kv_heads=3), dict(schedule="cosine", W=2, N=10)),
    "partial":   (dict(rotary_frac=0.5), dict(schedule="warmup_stable_decay", W=2, N=10, D=4)),
}


def fixture_spec(pe):
    """-> (ModelConfig, train dict, seed)."""
    m, t = SPECS[pe]
    cfg = ModelConfig(pe=pe, **{**BASE_MODEL, **m})
    train = {**BASE_TRAIN, **t}
    seed = 1000 + PE_NAMES.index(pe)
    return cfg, train, seed


def make_batch(cfg, train, seed):
    g = torch.Generator().manual_seed(seed + 7)
    B, T = train["B"], train["T"]
    inputs = torch.randint(0, cfg.vocab_size, (B, T), generator=g)      # (B, T)
    targets = torch.randint(0, cfg.vocab_size, (B, T), generator=g)     # (B, T)
    targets[1, 4] = -1                                                  # one ignored target
    return inputs, targets


def grad_state_dict(model):
    """HF-keyed gradients; frozen (FoPE) tensors and missing grads as zeros."""
    out = {}
    for name, p in model.named_parameters():
        out[name] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    return out


def run_reference(cfg, train, seed):
    """Build the seeded model, run n_steps AdamW steps on one batch; returns everything a fixture holds."""
    torch.manual_seed(seed)
    model = RopeppLM(cfg)
    init_tables = convert.state_to_table({k: v.detach().clone() for k, v in model.state_dict().items()}, cfg)
    inputs, targets = make_batch(cfg, train, seed)
    opt = make_optimizer(model, train["lr"], betas=(train["beta1"], train["beta2"]), eps=train["eps"],
                         weight_decay=train["weight_decay"])
    sched = make_scheduler(opt, train["schedule"], train["W"], train["N"], train["D"])
    losses, lrs = [], []
    logits0 = loss0 = grads0 = None
    for k in range(train["n_steps"]):
        opt.zero_grad(set_to_none=True)
        logits, loss = model(inputs, targets)
        loss.backward()
        if k == 0:
            logits0 = logits.detach().clone()
            loss0 = loss.item()
            grads0 = convert.state_to_table(grad_state_dict(model), cfg)
        if train["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(trainable_parameters(model), train["clip"])
        lr_used = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        losses.append(loss.item())
        lrs.append(lr_used)
    return dict(model=model, init_tables=init_tables, inputs=inputs, targets=targets, logits=logits0, loss=loss0,
                grads=grads0, losses=losses, lrs=lrs)


def write_fix(path, cfg, train, res):
    h = np.zeros(256, dtype="<i4")
    h[0], h[1] = FIX_MAGIC, FIX_VERSION
    h[2], h[3], h[4], h[5] = train["B"], train["T"], cfg.vocab_size, train["n_steps"]
    h[6] = SCHEDULES.index(train["schedule"])
    h[7], h[8], h[9] = train["W"], train["N"], train["D"]
    n = convert.num_params(cfg)
    convert._put_int64(h, 10, n)
    for slot, key in [(32, "lr"), (34, "beta1"), (36, "beta2"), (38, "eps"), (40, "weight_decay"), (42, "clip")]:
        convert._put_double(h, slot, train[key])
    grads = np.concatenate([g.double().reshape(-1).numpy() for g in res["grads"]])
    assert grads.size == n
    with open(path, "wb") as f:
        f.write(h.tobytes())
        f.write(res["inputs"].numpy().astype("<i4").tobytes())
        f.write(res["targets"].numpy().astype("<i4").tobytes())
        f.write(res["logits"].double().numpy().astype("<f8").tobytes())
        f.write(np.array([res["loss"]], dtype="<f8").tobytes())
        f.write(grads.astype("<f8").tobytes())
        f.write(np.array(res["losses"], dtype="<f8").tobytes())
        f.write(np.array(res["lrs"], dtype="<f8").tobytes())


def read_fix(path):
    """Parse a .fix (used by ref/test_ref.py)."""
    raw = open(path, "rb").read()
    h = np.frombuffer(raw[:1024], dtype="<i4").copy()
    if h[0] != FIX_MAGIC or h[1] != FIX_VERSION:
        raise ValueError(f"{path}: bad magic/version {h[0]}/{h[1]}")
    B, T, V, S = (int(x) for x in h[2:6])
    n = convert._get_int64(h, 10)
    off = 1024

    def take(dtype, count):
        nonlocal off
        a = np.frombuffer(raw, dtype=dtype, count=count, offset=off)
        off += a.nbytes
        return a

    out = dict(B=B, T=T, V=V, n_steps=S, schedule=SCHEDULES[h[6]], W=int(h[7]), N=int(h[8]), D=int(h[9]),
               num_params=n, lr=convert._get_double(h, 32), beta1=convert._get_double(h, 34),
               beta2=convert._get_double(h, 36), eps=convert._get_double(h, 38),
               weight_decay=convert._get_double(h, 40), clip=convert._get_double(h, 42))
    out["inputs"] = take("<i4", B * T).reshape(B, T)
    out["targets"] = take("<i4", B * T).reshape(B, T)
    out["logits"] = take("<f8", B * T * V).reshape(B, T, V)
    out["loss"] = float(take("<f8", 1)[0])
    out["grads"] = take("<f8", n)
    out["losses"] = take("<f8", S)
    out["lrs"] = take("<f8", S)
    if off != len(raw):
        raise ValueError(f"{path}: {len(raw) - off} trailing bytes")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Regenerate tests/fixtures/<pe>.{ckpt,fix} from the float64 reference.")
    ap.add_argument("--pe", nargs="*", choices=PE_NAMES, default=PE_NAMES)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)   # deterministic CPU reductions
    rows = []
    for pe in args.pe:
        cfg, train, seed = fixture_spec(pe)
        res = run_reference(cfg, train, seed)
        ckpt = os.path.join(args.out, f"{pe}.ckpt")
        fix = os.path.join(args.out, f"{pe}.fix")
        convert.write_ckpt(ckpt, cfg, res["init_tables"], bytes_per=8, tokenizer=0, init=0)
        write_fix(fix, cfg, train, res)
        rows.append((pe, cfg, train, res, os.path.getsize(ckpt), os.path.getsize(fix)))

    print(f"{'pe':10s} {'H/KV':>5s} {'HQ/KVH/NA':>9s} {'params':>7s} {'M,P':>4s} {'ckpt B':>7s} {'fix B':>7s} "
          f"{'schedule':>22s} {'clip':>4s} {'loss0':>10s} {'loss9':>10s}  lrs")
    for pe, cfg, train, res, sc, sf in rows:
        sch = f"{train['schedule']}(W{train['W']}" + (f",N{train['N']}" if train["schedule"] != "constant_with_warmup" else "") \
              + (f",D{train['D']}" if train["schedule"] == "warmup_stable_decay" else "") + ")"
        mp = f"{cfg.fope_M},{cfg.fope_P}" if pe == "fope" else "-"
        lrs = " ".join(f"{x:.4g}" for x in res["lrs"])
        print(f"{pe:10s} {cfg.n_heads:>2d}/{cfg.n_kv_heads:<2d} {cfg.hq:>3d}/{cfg.kvh}/{cfg.na:<3d} "
              f"{convert.num_params(cfg):>7d} {mp:>4s} {sc:>7d} {sf:>7d} {sch:>22s} {train['clip']:>4g} "
              f"{res['loss']:>10.6f} {res['losses'][-1]:>10.6f}  {lrs}")
    print(f"wrote {2 * len(rows)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
