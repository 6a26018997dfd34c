# bench/train/torch_model.py -- the ropepp model as a PyTorch researcher would write it (HF Llama layout), for the
# speed comparisons in bench/train/torch_train.py and bench/decode/torch_decode.py.
#
# Llama block: RMSNorm (HF: statistics in fp32), SwiGLU MLP, untied LM head, no biases, RoPE with rotate_half
# pairs (j, j + d/2), RoPE++ exactly as docs/MATH.md, RoPE++ (the authors' modeling_llama_rope_pp.py):
#   q_imag = q * sin - rotate_half(q) * cos          keys are only real-rotated
#   torch.stack([q_real, q_imag], dim=2).reshape(B, 2*HQ, T, d)   -> attention head 2h real, 2h+1 imaginary
#   ropepp_eh: q_proj C -> (H/2) d, k/v_proj C -> (KV/2) d, H attention heads, o_proj H d -> C
#   ropepp_ec: q_proj C -> H d,     k/v_proj C -> KV d,     2H attention heads, o_proj 2H d -> C
# Attention is torch.nn.functional.scaled_dot_product_attention (flash on a GPU) with native GQA
# (enable_gqa=True; HF repeat_kv where this torch lacks it).  cos/sin are computed in fp32 and cast to the table
# dtype (bf16 in the benchmarks, docs/MATH.md, Frequencies and tables).
#
# State-dict keys equal ref/model.py's (model.embed_tokens.weight, model.layers.{i}.self_attn.q_proj.weight, ...),
# so `python3 bench/train/torch_train.py --check-ref` can load the float64 reference's weights and compare.
import torch
import torch.nn as nn
import torch.nn.functional as F

PES = ("nope", "rope", "ropepp_eh", "ropepp_ec")


class Cfg:
    def __init__(self, vocab, dim, layers, heads, kv_heads, ffn, pe="rope", rope_base=10000.0, norm_eps=1e-5):
        if pe not in PES:
            raise ValueError(f"pe {pe!r} is not one of {PES}")
        if dim % heads or heads % kv_heads:
            raise ValueError("heads must divide dim and kv heads must divide heads")
        if pe == "ropepp_eh" and (heads % 2 or kv_heads % 2):
            raise ValueError("ropepp_eh needs even heads and kv heads")
        self.vocab, self.dim, self.layers, self.heads, self.kv_heads, self.ffn = vocab, dim, layers, heads, kv_heads, ffn
        self.pe, self.rope_base, self.norm_eps = pe, rope_base, norm_eps
        self.hd = dim // heads                                           # head dim, never recomputed for EH/EC
        self.hq = heads // 2 if pe == "ropepp_eh" else heads             # projected q heads
        self.kvh = kv_heads // 2 if pe == "ropepp_eh" else kv_heads      # projected kv heads
        self.na = 2 * heads if pe == "ropepp_ec" else heads              # attention heads
        self.imag = pe in ("ropepp_eh", "ropepp_ec")
        self.qkv = (self.hq + 2 * self.kvh) * self.hd

    def matmul_params(self):
        """Weights that take part in matmuls (everything but the embedding and the norms), as ropepp counts them."""
        C, L, F_ = self.dim, self.layers, self.ffn
        return L * (self.qkv * C + C * self.na * self.hd + 3 * F_ * C) + self.vocab * C

    def num_params(self):
        return self.matmul_params() + self.vocab * self.dim + (2 * self.layers + 1) * self.dim

    def flops_per_token(self, T):
        """ropepp.h model_flops_per_token: 6 per matmul weight + causal attention 6 * L * NA * HD * T."""
        return 6.0 * self.matmul_params() + 6.0 * self.layers * self.na * self.hd * T

    def describe(self):
        return dict(vocab=self.vocab, dim=self.dim, layers=self.layers, heads=self.heads, kv_heads=self.kv_heads,
                    ffn=self.ffn, pe=self.pe, hd=self.hd, hq=self.hq, kvh=self.kvh, na=self.na)


def rotate_half(x):
    """concat(-x[d/2:], x[:d/2]): rotation pairs (j, j + d/2)."""
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(cfg, T, device, dtype):
    """cos, sin (T, d): theta_i = base^(-2i/d) in fp32, halves duplicated, cast to dtype (HF/authors' code)."""
    d = cfg.hd
    ft = torch.float64 if dtype == torch.float64 else torch.float32   # the float64 check tables stay float64
    inv_freq = 1.0 / (cfg.rope_base ** (torch.arange(0, d, 2, dtype=torch.int64, device=device).to(ft) / d))
    pos = torch.arange(T, device=device, dtype=ft)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _sdpa_has_gqa():
    try:
        t = torch.zeros(1, 2, 1, 8)
        F.scaled_dot_product_attention(t, t[:, :1], t[:, :1], enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


SDPA_GQA = _sdpa_has_gqa()   # does this torch's SDPA take enable_gqa (2.5+)?


def sdpa(q, k, v, is_causal=False, attn_mask=None):
    """q (B, NA, Tq, d), k/v (B, KVH, Tk, d); attention head a reads kv head a // (NA / KVH)."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        if SDPA_GQA:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=True)
        k = k.repeat_interleave(rep, dim=1)   # = HF repeat_kv
        v = v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):   # HF LlamaRMSNorm
        dtype = x.dtype
        xf = x.to(torch.promote_types(dtype, torch.float32))
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, d = cfg.dim, cfg.hd
        self.q_proj = nn.Linear(C, cfg.hq * d, bias=False)
        self.k_proj = nn.Linear(C, cfg.kvh * d, bias=False)
        self.v_proj = nn.Linear(C, cfg.kvh * d, bias=False)
        self.o_proj = nn.Linear(cfg.na * d, C, bias=False)

    def project(self, x, cos, sin):
        """x (B, T, C), cos/sin (T, d) for these tokens' positions -> q (B, NA, T, d), k, v (B, KVH, T, d)."""
        cfg = self.cfg
        B, T, _ = x.shape
        d = cfg.hd
        q = self.q_proj(x).view(B, T, cfg.hq, d).transpose(1, 2)
        k = self.k_proj(x).view(B, T, cfg.kvh, d).transpose(1, 2)
        v = self.v_proj(x).view(B, T, cfg.kvh, d).transpose(1, 2)
        if cfg.pe != "nope":
            q_real = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin                                   # keys: real rotation only
            if cfg.imag:
                q_imag = q * sin - rotate_half(q) * cos                          # RoPE at angle p*theta - pi/2
                q = torch.stack([q_real, q_imag], dim=2).reshape(B, 2 * cfg.hq, T, d)   # 2h real, 2h+1 imag
            else:
                q = q_real
        return q, k, v

    def out(self, y):
        """y (B, NA, T, d) -> o_proj over heads-major (interleaved) columns."""
        B, _, T, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.cfg.na * self.cfg.hd))

    def forward(self, x, cos, sin):
        q, k, v = self.project(x, cos, sin)
        return self.out(sdpa(q, k, v, is_causal=True))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.dim)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.layers)])
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)


class LM(nn.Module):
    """HF LlamaForCausalLM layout. forward(idx, targets) -> mean cross-entropy (logits with targets=None)."""

    def __init__(self, cfg, max_T, table_dtype=torch.bfloat16):
        super().__init__()
        self.cfg = cfg
        self.model = Body(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)
        cos, sin = rope_tables(cfg, max_T, self.lm_head.weight.device, table_dtype)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.model.embed_tokens(idx)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def param_groups(self, weight_decay):
        """AdamW groups as ropepp (and ref/model.py): no weight decay on the RMSNorm weights."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if name.endswith("norm.weight") else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_adamw(model, lr=3e-4, fused=True):
    """torch.optim.AdamW(betas (0.95, 0.99), eps 1e-8, wd 0.1 except norms), fused where this torch allows."""
    groups = model.param_groups(0.1)
    kw = dict(lr=lr, betas=(0.95, 0.99), eps=1e-8, weight_decay=0.1)
    if fused:
        try:
            return torch.optim.AdamW(groups, fused=True, **kw), "fused"
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, foreach=True, **kw), "foreach"
