# ref/model.py -- independent PyTorch float64 reference of the ropepp models.
#
# What it is: a plain PyTorch re-statement of the authors' HF-Llama code (OpenMOSS/rope_pp, see
# docs/MATH.md) with every position embedding the C port offers:
#   nope, rope, ropepp_eh, ropepp_ec, fope, alibi, partial
# It is the oracle for the C parity fixtures (ref/make_fixtures.py) and the model that ref/convert.py
# maps to and from HF checkpoints.  Everything runs in float64 on CPU.
#
# How to use:
#   import sys; sys.path.insert(0, "ref")
#   from model import ModelConfig, RopeppLM
#   cfg = ModelConfig(vocab_size=11, dim=48, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64, pe="ropepp_ec")
#   model = RopeppLM(cfg)                       # float64, PyTorch default init
#   logits, loss = model(idx, targets)          # idx, targets: (B, T) int64, targets -1 = ignored
# No command line; run ref/test_ref.py for self-checks.
#
# State-dict keys follow HF Llama (model.embed_tokens.weight, model.layers.{i}.self_attn.q_proj.weight, ...,
# model.norm.weight, lm_head.weight).  FoPE coefficients are model.layers.{i}.self_attn.pos_emb.{sin,cos}_coef
# (frozen) and ALiBi slopes a persistent buffer model.layers.{i}.self_attn.alibi_slopes, as in the authors'
# modeling_llama_fope.py / modeling_llama_alibi.py.

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.float64

PE_NAMES = ["nope", "rope", "ropepp_eh", "ropepp_ec", "fope", "alibi", "partial"]  # index = ckpt header code
ROPE_LIKE = ("rope", "ropepp_eh", "ropepp_ec", "partial")                       # PEs that take rope scaling


# ----------------------------------------------------------------------------------------------------------
# configuration

@dataclass
class ModelConfig:
    vocab_size: int
    dim: int              # C
    n_layers: int         # L
    n_heads: int          # H (config heads; EC has 2H attention heads, EH projects H/2)
    n_kv_heads: int       # KV (config kv heads; EH projects KV/2)
    ffn_dim: int          # F
    pe: str = "rope"
    train_seq: int = 4096       # L_train: FoPE floor 2*pi/L_train, YaRN default original length
    yarn_orig_len: int = 0      # 0 = use train_seq
    rope_base: float = 10000.0
    rotary_frac: float = 1.0    # partial only
    pi_factor: float = 1.0      # linear position interpolation, 1 = off
    yarn_factor: float = 1.0    # YaRN (authors' variant), 1 = off
    ntk_factor: float = 1.0     # base' = rope_base * ntk_factor, 1 = off
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.pe not in PE_NAMES:
            raise ValueError(f"unknown pe '{self.pe}', expected one of {PE_NAMES}")
        if self.dim % self.n_heads != 0:
            raise ValueError(f"dim {self.dim} not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(f"n_heads {self.n_heads} not divisible by n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim {self.head_dim} must be even")
        if self.pe == "ropepp_eh" and (self.n_heads % 2 or self.n_kv_heads % 2):
            raise ValueError("ropepp_eh needs even n_heads and n_kv_heads")
        if self.pi_factor != 1.0 and self.yarn_factor != 1.0:
            raise ValueError("pi_factor and yarn_factor are mutually exclusive")
        if self.pe not in ROPE_LIKE and (self.pi_factor != 1.0 or self.yarn_factor != 1.0 or self.ntk_factor != 1.0):
            raise ValueError(f"rope scaling (pi/yarn/ntk) is not defined for pe '{self.pe}'")
        if self.pe != "partial" and self.rotary_frac != 1.0:
            raise ValueError("rotary_frac != 1 is only meaningful for pe 'partial'")
        if self.pe == "partial":
            r = self.rot_dim
            if r % 2 != 0 or r <= 0 or r > self.head_dim:
                raise ValueError(f"partial rotary dim round({self.rotary_frac}*{self.head_dim}) = {r} must be even, >0, <= head_dim")

    # derived sizes (docs/FORMATS.md "Derived")
    @property
    def head_dim(self):   # d = C / H, never recomputed for EH/EC
        return self.dim // self.n_heads

    @property
    def hq(self):         # projected q heads
        return self.n_heads // 2 if self.pe == "ropepp_eh" else self.n_heads

    @property
    def kvh(self):        # projected kv heads
        return self.n_kv_heads // 2 if self.pe == "ropepp_eh" else self.n_kv_heads

    @property
    def na(self):         # attention heads
        return 2 * self.n_heads if self.pe == "ropepp_ec" else self.n_heads

    @property
    def rot_dim(self):    # rotated dims per head
        if self.pe == "partial":
            return int(round(self.rotary_frac * self.head_dim))
        return self.head_dim

    @property
    def yarn_len(self):
        return self.yarn_orig_len if self.yarn_orig_len > 0 else self.train_seq

    @property
    def fope_M(self):
        return len(fope_frequencies(self)) if self.pe == "fope" else 0

    @property
    def fope_P(self):
        return min(self.fope_M, self.head_dim // 4) if self.pe == "fope" else 0


# ----------------------------------------------------------------------------------------------------------
# position-embedding tables

def rotate_half(x):
    """concat(-x[d/2:], x[:d/2]) on the last axis: pairs (j, j + d/2)."""
    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat((-x2, x1), dim=-1)


def rope_inv_freq(cfg):
    """theta_i (rot_dim/2,) and the cos/sin multiplier mscale, after ntk / PI / YaRN."""
    rot = cfg.rot_dim
    base = cfg.rope_base * cfg.ntk_factor
    i2 = torch.arange(0, rot, 2, dtype=DTYPE)                     # 2i, i = 0..rot/2-1
    theta = 1.0 / (base ** (i2 / rot))                            # (rot/2,)
    mscale = 1.0
    if cfg.pi_factor != 1.0:
        theta = theta / cfg.pi_factor
    if cfg.yarn_factor != 1.0:
        s = cfg.yarn_factor
        r = cfg.yarn_len / (2.0 * math.pi) * theta                # full turns in the original window
        gamma = torch.clip((r - 1.0) / (32.0 - 1.0), min=0.0, max=1.0)
        theta = (1.0 - gamma) * theta / s + gamma * theta
        mscale = 0.1 * math.log(s) + 1.0
    return theta, mscale


def rope_cos_sin(cfg, T):
    """cos, sin tables (T, rot_dim) for positions 0..T-1; halves duplicated (rotate_half layout), * mscale."""
    theta, mscale = rope_inv_freq(cfg)                            # (rot/2,)
    pos = torch.arange(T, dtype=DTYPE)                            # (T,)
    freqs = pos[:, None] * theta[None, :]                         # (T, rot/2)
    emb = torch.cat((freqs, freqs), dim=-1)                       # (T, rot)
    return emb.cos() * mscale, emb.sin() * mscale


def fope_frequencies(cfg):
    """omega_m = base^(-2m/d), m = 0..d/2-1, kept where omega_m >= 2*pi/train_seq (no rope scaling)."""
    d = cfg.head_dim
    m2 = torch.arange(0, d, 2, dtype=DTYPE)                       # 2m
    omega = 1.0 / (cfg.rope_base ** (m2 / d))                     # (d/2,)
    floor = 2.0 * math.pi / cfg.train_seq
    return omega[omega >= floor]                                  # (M,)


def alibi_slopes(n):
    """flash-attn / ALiBi-paper slopes for n heads (docs/MATH.md, ALiBi)."""
    def pow2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))                # = 2^(-8/n)
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return pow2(n)
    c = 2 ** math.floor(math.log2(n))
    return pow2(c) + alibi_slopes(2 * c)[0::2][: n - c]


def repeat_kv(x, n_rep):
    """(B, KVH, T, d) -> (B, KVH*n_rep, T, d); head a uses kv head a // n_rep (HF repeat_kv)."""
    B, kvh, T, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(B, kvh, n_rep, T, d).reshape(B, kvh * n_rep, T, d)


# ----------------------------------------------------------------------------------------------------------
# modules

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=DTYPE))
        self.eps = eps

    def forward(self, x):
        # HF upcasts to fp32 for the statistics; in this float64 model the statistics stay in float64
        # (at least fp32), so no precision is lost.
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        var = xf.pow(2).mean(-1, keepdim=True)
        return self.weight * (xf * torch.rsqrt(var + self.eps)).to(x.dtype)


class FourierEmbedding(nn.Module):
    """FoPE as configured by the authors (docs/MATH.md, FoPE), frozen coefficients (KVH, M, P)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("omega", fope_frequencies(cfg), persistent=False)   # (M,)
        M, P, G = cfg.fope_M, cfg.fope_P, cfg.kvh
        self.sin_coef = nn.Parameter(torch.empty(G, M, P, dtype=DTYPE), requires_grad=False)
        self.cos_coef = nn.Parameter(torch.empty(G, M, P, dtype=DTYPE), requires_grad=False)
        self.reset_parameters()

    def step_eye(self):
        M, P = self.cfg.fope_M, self.cfg.fope_P
        eye = torch.zeros(self.cfg.kvh, M, P, dtype=DTYPE)
        if P == 0:
            return eye
        step = math.ceil(M / P)
        for p in range(P):
            if p * step < M:
                eye[:, p * step, p] = 1.0
        return eye

    @torch.no_grad()
    def reset_parameters(self):
        if self.sin_coef.numel() == 0:
            return
        # xavier-normal with torch's 3-D fan rule: fan_in = M*P, fan_out = KVH*P; sin first, then cos
        nn.init.xavier_normal_(self.sin_coef, gain=0.3)
        nn.init.xavier_normal_(self.cos_coef, gain=0.3)
        self.sin_coef += self.step_eye()
        self.cos_coef += self.step_eye()

    def tables(self, T):
        """Cc, S of shape (KVH, T, d): per-kv-group cos/sin stand-ins, duplicated over the two halves."""
        d = self.cfg.head_dim
        pos = torch.arange(T, dtype=DTYPE)
        ang = pos[:, None] * self.omega[None, :]                                  # (T, M)
        S = torch.einsum("tm,gmp->gtp", ang.sin(), self.sin_coef)                 # (G, T, P)
        Cc = torch.einsum("tm,gmp->gtp", ang.cos(), self.cos_coef)                # (G, T, P)
        pad = d // 2 - S.shape[-1]
        S = F.pad(S, (0, pad), value=1.0)                                         # (G, T, d/2), slots >= P are 1
        Cc = F.pad(Cc, (0, pad), value=1.0)
        return torch.cat((Cc, Cc), dim=-1), torch.cat((S, S), dim=-1)             # (G, T, d) each


class Attention(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        C, d = cfg.dim, cfg.head_dim
        if cfg.pe == "fope":
            self.pos_emb = FourierEmbedding(cfg)
        self.q_proj = nn.Linear(C, cfg.hq * d, bias=False, dtype=DTYPE)
        self.k_proj = nn.Linear(C, cfg.kvh * d, bias=False, dtype=DTYPE)
        self.v_proj = nn.Linear(C, cfg.kvh * d, bias=False, dtype=DTYPE)
        self.o_proj = nn.Linear(cfg.na * d, C, bias=False, dtype=DTYPE)
        if cfg.pe == "alibi":
            self.register_buffer("alibi_slopes", torch.tensor(alibi_slopes(cfg.na), dtype=DTYPE))

    def qkv(self, x, rope_tables=None):
        """Projections plus position embedding.
        returns q (B, NA, T, d) in attention-head order, k (B, KVH, T, d), v (B, KVH, T, d)."""
        cfg = self.cfg
        B, T, C = x.shape
        d = cfg.head_dim
        q = self.q_proj(x).view(B, T, cfg.hq, d).transpose(1, 2)      # (B, HQ, T, d)
        k = self.k_proj(x).view(B, T, cfg.kvh, d).transpose(1, 2)     # (B, KVH, T, d)
        v = self.v_proj(x).view(B, T, cfg.kvh, d).transpose(1, 2)     # (B, KVH, T, d)

        if cfg.pe in ("rope", "ropepp_eh", "ropepp_ec"):
            cos, sin = rope_tables                                    # (T, d) each
            q_rope = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin                        # keys: real rotation only
            if cfg.pe == "rope":
                q = q_rope
            else:
                q_imag = q * sin - rotate_half(q) * cos               # imaginary query
                # stack on a new axis 2 -> head 2h real, 2h+1 imag
                q = torch.stack([q_rope, q_imag], dim=2).reshape(B, 2 * cfg.hq, T, d)
        elif cfg.pe == "partial":
            cos, sin = rope_tables                                    # (T, rot) each
            r = cfg.rot_dim
            q_rot, q_pass = q[..., :r], q[..., r:]
            k_rot, k_pass = k[..., :r], k[..., r:]
            q = torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)
            k = torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)
        elif cfg.pe == "fope":
            Cc, S = self.pos_emb.tables(T)                            # (KVH, T, d) each
            g = cfg.hq // cfg.kvh
            Cq, Sq = Cc.repeat_interleave(g, dim=0), S.repeat_interleave(g, dim=0)   # (HQ, T, d): head h -> h // g
            q = q * Cq + rotate_half(q) * Sq
            k = k * Cc + rotate_half(k) * S
        # nope, alibi: q, k used as projected
        return q, k, v

    def forward(self, x, rope_tables=None):
        cfg = self.cfg
        B, T, C = x.shape
        d = cfg.head_dim
        q, k, v = self.qkv(x, rope_tables)                            # q (B, NA, T, d)
        n_rep = cfg.na // cfg.kvh
        k = repeat_kv(k, n_rep)                                       # (B, NA, T, d)
        v = repeat_kv(v, n_rep)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))        # (B, NA, T, T)
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        if cfg.pe == "alibi":
            dist = (i - j).to(DTYPE)                                  # (T, T), i - j >= 0 where unmasked
            att = att - self.alibi_slopes.view(1, -1, 1, 1) * dist
        att = att.masked_fill(j > i, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v                                                   # (B, NA, T, d)
        y = y.transpose(1, 2).reshape(B, T, cfg.na * d)               # heads-major, interleaved order
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False, dtype=DTYPE)
        self.up_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False, dtype=DTYPE)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False, dtype=DTYPE)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg, layer_idx):
        super().__init__()
        self.self_attn = Attention(cfg, layer_idx)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x, rope_tables=None):
        x = x + self.self_attn(self.input_layernorm(x), rope_tables)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim, dtype=DTYPE)     # N(0, 1)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i) for i in range(cfg.n_layers)])
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)


class RopeppLM(nn.Module):
    """HF LlamaForCausalLM layout: .model (embed_tokens, layers, norm) + untied .lm_head."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False, dtype=DTYPE)

    def rope_tables(self, T):
        if self.cfg.pe in ROPE_LIKE:
            return rope_cos_sin(self.cfg, T)
        return None

    def forward(self, idx, targets=None):
        """idx (B, T) int64 -> logits (B, T, V); loss = mean CE over targets != -1 (None without targets)."""
        B, T = idx.shape
        tables = self.rope_tables(T)
        x = self.model.embed_tokens(idx)                              # (B, T, C)
        for layer in self.model.layers:
            x = layer(x, tables)
        x = self.model.norm(x)
        logits = self.lm_head(x)                                      # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
        return logits, loss


# ----------------------------------------------------------------------------------------------------------
# optimizer and schedules

def is_norm_weight(name):
    return name.endswith("layernorm.weight") or name == "model.norm.weight"


def make_optimizer(model, lr, betas=(0.95, 0.99), eps=1e-8, weight_decay=0.1):
    """torch AdamW; weight decay on every trainable tensor except RMSNorm weights; frozen tensors excluded."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if is_norm_weight(name) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


SCHEDULES = ["constant_with_warmup", "warmup_stable_decay", "cosine"]   # index = fixture header code


def lr_lambda(schedule, W, N=0, D=0):
    """lambda(k) for 0-based optimizer step k; lr_k = lr_peak * lambda(k)."""
    def constant_with_warmup(k):
        return k / W if k < W else 1.0

    def warmup_stable_decay(k):
        if k < W:
            return k / W
        if k < N - D:
            return 1.0
        if k < N:
            return 0.5 * (1.0 + math.cos(math.pi * (k - (N - D)) / D))
        return 0.0

    def cosine(k):
        if k < W:
            return k / W
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (k - W) / (N - W))))

    return {"constant_with_warmup": constant_with_warmup, "warmup_stable_decay": warmup_stable_decay,
            "cosine": cosine}[schedule]


def make_scheduler(optimizer, schedule, W, N=0, D=0):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, W, N, D))


def trainable_parameters(model):
    return [p for p in model.parameters() if p.requires_grad]
