#!/usr/bin/env python3
# ref/convert.py -- HF-style checkpoint <-> ropepp .ckpt (docs/FORMATS.md), both directions.
#
# How to run:
#   python3 ref/convert.py hf2ckpt HF_DIR out.ckpt [--pe PE] [--dtype fp32|fp64] [--tokenizer 0|1|2]
#   python3 ref/convert.py ckpt2hf in.ckpt HF_DIR [--dtype float32|float64|bfloat16|float16] [--format safetensors|bin]
#                                                 [--template config.json]
#   python3 ref/convert.py info in.ckpt
# HF_DIR holds config.json plus model.safetensors, a sharded model.safetensors.index.json, pytorch_model.bin or
# pytorch_model.bin.index.json.  Needs torch and safetensors (numpy comes with torch).
# Importable: read_ckpt / write_ckpt / state_to_table / table_to_state / config_from_hf / hf_config /
# load_hf_dir / save_hf_dir.
#
# Mapping (docs/FORMATS.md parameter table):
#   wte = model.embed_tokens.weight; lmw = lm_head.weight; lnfw = model.norm.weight
#   per layer i (stacked on a leading L axis):
#     ln1w = input_layernorm.weight, ln2w = post_attention_layernorm.weight
#     qkvw = cat(q_proj, k_proj, v_proj) rows, attprojw = o_proj
#     fcw  = cat(gate_proj, up_proj) rows,   fcprojw  = down_proj
#     fope_cos / fope_sin = self_attn.pos_emb.cos_coef / sin_coef (KVH, M, P)   [fope only]
#   ALiBi slopes (self_attn.alibi_slopes) are recomputed, not stored in the .ckpt; ckpt2hf writes them back.
# Which position embedding a HF folder holds (first rule that applies):
#   --pe; config "position_embedding" (written by ckpt2hf); config "fourier" true or *.pos_emb.sin_coef keys -> fope;
#   config "alibi" true, "alibi" in architectures, or *.alibi_slopes keys -> alibi;
#   rope_config.imag true -> imag_mode imag1 = ropepp_eh, imag2 = ropepp_ec; partial_rotary_factor < 1 -> partial;
#   otherwise rope.  See ref/README.md.

import sys

sys.dont_write_bytecode = True   # keep ref/ free of __pycache__

import argparse
import json
import os
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import PE_NAMES, ROPE_LIKE, ModelConfig, alibi_slopes  # noqa: E402

CKPT_MAGIC = 20251207
CKPT_VERSION = 2   # 2: an 8-byte trailer (CRC-32 of every byte before it, then the magic); 1: none
HEADER_INTS = 256
N_TENSORS = 11
TABLE_NAMES = ["wte", "ln1w", "qkvw", "attprojw", "ln2w", "fcw", "fcprojw", "lnfw", "lmw", "fope_cos", "fope_sin"]
TOKENIZERS = {0: "bytes", 1: "gpt2", 2: "llama3"}
LLAMA3_VOCAB = 128256


class ConvertError(Exception):
    pass


# ----------------------------------------------------------------------------------------------------------
# parameter table

def table_shapes(cfg):
    """[(name, shape)] in checkpoint order."""
    V, C, L, F, d = cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.ffn_dim, cfg.head_dim
    M, P = cfg.fope_M, cfg.fope_P
    fope_shape = (L, cfg.kvh, M, P) if cfg.pe == "fope" else (0,)
    return [
        ("wte", (V, C)),
        ("ln1w", (L, C)),
        ("qkvw", (L, (cfg.hq + 2 * cfg.kvh) * d, C)),
        ("attprojw", (L, C, cfg.na * d)),
        ("ln2w", (L, C)),
        ("fcw", (L, 2 * F, C)),
        ("fcprojw", (L, C, F)),
        ("lnfw", (C,)),
        ("lmw", (V, C)),
        ("fope_cos", fope_shape),
        ("fope_sin", fope_shape),
    ]


def num_params(cfg):
    return sum(int(np.prod(s)) for _, s in table_shapes(cfg))


def hf_expected_shapes(cfg):
    """{HF key: shape} of every tensor the model owns (parameters; alibi slopes excluded)."""
    C, F, d = cfg.dim, cfg.ffn_dim, cfg.head_dim
    out = {"model.embed_tokens.weight": (cfg.vocab_size, C), "model.norm.weight": (C,),
           "lm_head.weight": (cfg.vocab_size, C)}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = (C,)
        out[p + "post_attention_layernorm.weight"] = (C,)
        out[p + "self_attn.q_proj.weight"] = (cfg.hq * d, C)
        out[p + "self_attn.k_proj.weight"] = (cfg.kvh * d, C)
        out[p + "self_attn.v_proj.weight"] = (cfg.kvh * d, C)
        out[p + "self_attn.o_proj.weight"] = (C, cfg.na * d)
        out[p + "mlp.gate_proj.weight"] = (F, C)
        out[p + "mlp.up_proj.weight"] = (F, C)
        out[p + "mlp.down_proj.weight"] = (C, F)
        if cfg.pe == "fope":
            out[p + "self_attn.pos_emb.cos_coef"] = (cfg.kvh, cfg.fope_M, cfg.fope_P)
            out[p + "self_attn.pos_emb.sin_coef"] = (cfg.kvh, cfg.fope_M, cfg.fope_P)
    return out


def check_state_shapes(sd, cfg):
    exp = hf_expected_shapes(cfg)
    missing = [k for k in exp if k not in sd]
    if missing:
        raise ConvertError(f"state dict lacks {len(missing)} tensors for pe '{cfg.pe}', first: {missing[0]} "
                           f"(wrong --pe, or an incomplete checkpoint)")
    for k, shape in exp.items():
        if tuple(sd[k].shape) != tuple(shape):
            raise ConvertError(f"{k} has shape {tuple(sd[k].shape)}, expected {tuple(shape)} for pe '{cfg.pe}' "
                               f"(check num_attention_heads / num_key_value_heads / rope_config / --pe)")


def state_to_table(sd, cfg):
    """HF state dict (torch tensors) -> list of 11 torch tensors in table order (dtype kept)."""
    check_state_shapes(sd, cfg)
    L = cfg.n_layers

    def per_layer(fn):
        return torch.stack([fn(f"model.layers.{i}.") for i in range(L)], dim=0)

    t = {}
    t["wte"] = sd["model.embed_tokens.weight"]                                            # (V, C)
    t["ln1w"] = per_layer(lambda p: sd[p + "input_layernorm.weight"])                      # (L, C)
    t["qkvw"] = per_layer(lambda p: torch.cat([sd[p + "self_attn.q_proj.weight"],          # (L, (HQ+2KVH)d, C)
                                               sd[p + "self_attn.k_proj.weight"],
                                               sd[p + "self_attn.v_proj.weight"]], dim=0))
    t["attprojw"] = per_layer(lambda p: sd[p + "self_attn.o_proj.weight"])                 # (L, C, NA*d)
    t["ln2w"] = per_layer(lambda p: sd[p + "post_attention_layernorm.weight"])             # (L, C)
    t["fcw"] = per_layer(lambda p: torch.cat([sd[p + "mlp.gate_proj.weight"],              # (L, 2F, C)
                                              sd[p + "mlp.up_proj.weight"]], dim=0))
    t["fcprojw"] = per_layer(lambda p: sd[p + "mlp.down_proj.weight"])                     # (L, C, F)
    t["lnfw"] = sd["model.norm.weight"]                                                    # (C,)
    t["lmw"] = sd["lm_head.weight"]                                                        # (V, C)
    if cfg.pe == "fope":
        t["fope_cos"] = per_layer(lambda p: sd[p + "self_attn.pos_emb.cos_coef"])          # (L, KVH, M, P)
        t["fope_sin"] = per_layer(lambda p: sd[p + "self_attn.pos_emb.sin_coef"])
    else:
        t["fope_cos"] = torch.zeros(0, dtype=t["wte"].dtype)
        t["fope_sin"] = torch.zeros(0, dtype=t["wte"].dtype)
    return [t[n] for n in TABLE_NAMES]


def table_to_state(tables, cfg, with_alibi=True):
    """list of 11 tensors in table order -> HF state dict (same dtype). ALiBi slopes added as buffers
    (fp64 for an fp64 table, else fp32 as the authors register them)."""
    t = dict(zip(TABLE_NAMES, tables))
    for (name, shape) in table_shapes(cfg):
        if tuple(t[name].shape) != tuple(shape):
            raise ConvertError(f"table tensor {name} has shape {tuple(t[name].shape)}, expected {shape}")
    d = cfg.head_dim
    # row split points of qkvw and fcw
    nq, nk = cfg.hq * d, cfg.kvh * d
    F = cfg.ffn_dim
    slope_dtype = torch.float64 if t["wte"].dtype == torch.float64 else torch.float32
    sd = {"model.embed_tokens.weight": t["wte"]}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = t["ln1w"][i]
        sd[p + "self_attn.q_proj.weight"] = t["qkvw"][i, :nq]
        sd[p + "self_attn.k_proj.weight"] = t["qkvw"][i, nq:nq + nk]
        sd[p + "self_attn.v_proj.weight"] = t["qkvw"][i, nq + nk:]
        sd[p + "self_attn.o_proj.weight"] = t["attprojw"][i]
        if cfg.pe == "fope":
            sd[p + "self_attn.pos_emb.cos_coef"] = t["fope_cos"][i]
            sd[p + "self_attn.pos_emb.sin_coef"] = t["fope_sin"][i]
        if cfg.pe == "alibi" and with_alibi:
            # the authors register an fp32 buffer; an fp64 model keeps fp64
            sd[p + "self_attn.alibi_slopes"] = torch.tensor(alibi_slopes(cfg.na), dtype=slope_dtype)
        sd[p + "post_attention_layernorm.weight"] = t["ln2w"][i]
        sd[p + "mlp.gate_proj.weight"] = t["fcw"][i, :F]
        sd[p + "mlp.up_proj.weight"] = t["fcw"][i, F:]
        sd[p + "mlp.down_proj.weight"] = t["fcprojw"][i]
    sd["model.norm.weight"] = t["lnfw"]
    sd["lm_head.weight"] = t["lmw"]
    return {k: v.contiguous() for k, v in sd.items()}


# ----------------------------------------------------------------------------------------------------------
# .ckpt file

def _put_double(h, slot, x):
    h[slot:slot + 2] = np.frombuffer(np.float64(x).tobytes(), dtype="<i4")


def _get_double(h, slot):
    return float(np.frombuffer(h[slot:slot + 2].astype("<i4").tobytes(), dtype="<f8")[0])


def _put_int64(h, slot, x):
    h[slot:slot + 2] = np.frombuffer(np.int64(x).tobytes(), dtype="<i4")


def _get_int64(h, slot):
    return int(np.frombuffer(h[slot:slot + 2].astype("<i4").tobytes(), dtype="<i8")[0])


def default_tokenizer(vocab_size):
    if vocab_size == 256:
        return 0
    if vocab_size in (50257, 50304):
        return 1
    if vocab_size >= 128000:
        return 2
    return 0


def write_ckpt(path, cfg, tables, bytes_per=4, tokenizer=None, init=0):
    """Write the .ckpt (version 2): header + every table tensor, as fp32 (bytes_per 4) or fp64 (8), + trailer."""
    if bytes_per not in (4, 8):
        raise ConvertError("bytes_per must be 4 (fp32) or 8 (fp64)")
    if tokenizer is None:
        tokenizer = default_tokenizer(cfg.vocab_size)
    h = np.zeros(HEADER_INTS, dtype="<i4")
    h[0], h[1], h[2] = CKPT_MAGIC, CKPT_VERSION, bytes_per
    h[3], h[4], h[5], h[6], h[7], h[8] = cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.ffn_dim
    h[9] = PE_NAMES.index(cfg.pe)
    h[10], h[11], h[12] = cfg.train_seq, cfg.yarn_orig_len, tokenizer
    h[13], h[14], h[15] = cfg.fope_M, cfg.fope_P, init
    _put_int64(h, 16, num_params(cfg))
    h[18] = N_TENSORS
    _put_double(h, 32, cfg.rope_base)
    _put_double(h, 34, cfg.rotary_frac)
    _put_double(h, 36, cfg.pi_factor)
    _put_double(h, 38, cfg.yarn_factor)
    _put_double(h, 40, cfg.ntk_factor)
    _put_double(h, 42, cfg.norm_eps)
    np_dtype = "<f4" if bytes_per == 4 else "<f8"
    shapes = table_shapes(cfg)
    with open(path, "wb") as f:
        f.write(h.tobytes())
        crc = zlib.crc32(h.tobytes())
        for (name, shape), t in zip(shapes, tables):
            if tuple(t.shape) != tuple(shape):
                raise ConvertError(f"{name}: shape {tuple(t.shape)} != expected {shape}")
            a = t.detach().to(torch.float64).cpu().numpy().astype(np_dtype)
            f.write(a.tobytes())
            crc = zlib.crc32(a.tobytes(), crc)
        f.write(np.array([crc, CKPT_MAGIC], dtype="<u4").tobytes())


def read_ckpt(path):
    """-> (ModelConfig, tables (list of float64 or float32 torch tensors), info dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < HEADER_INTS * 4:
        raise ConvertError(f"{path}: file is {len(raw)} bytes, shorter than the 1024-byte header")
    h = np.frombuffer(raw[:HEADER_INTS * 4], dtype="<i4").copy()
    if h[0] != CKPT_MAGIC:
        raise ConvertError(f"{path}: bad magic {h[0]} (expected {CKPT_MAGIC}); not a ropepp .ckpt")
    if h[1] not in (1, CKPT_VERSION):
        raise ConvertError(f"{path}: unsupported version {h[1]} (expected 1 or {CKPT_VERSION}), or a corrupt file")
    trailer = 8 if h[1] == CKPT_VERSION else 0
    if trailer:
        crc, end = np.frombuffer(raw[-8:], dtype="<u4") if len(raw) >= HEADER_INTS * 4 + 8 else (None, None)
        if crc != zlib.crc32(raw[:-8]) or end != CKPT_MAGIC:
            raise ConvertError(f"{path} is corrupt: its bytes do not match the CRC-32 in its trailer")
    bytes_per = int(h[2])
    if bytes_per not in (4, 8):
        raise ConvertError(f"{path}: bytes per parameter {bytes_per} must be 4 or 8")
    if not (0 <= h[9] < len(PE_NAMES)):
        raise ConvertError(f"{path}: position embedding code {h[9]} out of range 0..{len(PE_NAMES) - 1}")
    if h[18] != N_TENSORS:
        raise ConvertError(f"{path}: table has {h[18]} tensors, expected {N_TENSORS}")
    pe = PE_NAMES[h[9]]
    # rotary_frac is meaningful for partial only: other PEs write 1 and it is ignored when read, as ropepp.h does
    # (files written before that rule hold the trainer's default 0.25 there for every PE)
    rotary_frac = _get_double(h, 34) if pe == "partial" else 1.0
    cfg = ModelConfig(vocab_size=int(h[3]), dim=int(h[4]), n_layers=int(h[5]), n_heads=int(h[6]),
                      n_kv_heads=int(h[7]), ffn_dim=int(h[8]), pe=pe, train_seq=int(h[10]),
                      yarn_orig_len=int(h[11]), rope_base=_get_double(h, 32), rotary_frac=rotary_frac,
                      pi_factor=_get_double(h, 36), yarn_factor=_get_double(h, 38), ntk_factor=_get_double(h, 40),
                      norm_eps=_get_double(h, 42))
    if (int(h[13]), int(h[14])) != (cfg.fope_M, cfg.fope_P):
        raise ConvertError(f"{path}: FoPE M,P = {h[13]},{h[14]} in the header but {cfg.fope_M},{cfg.fope_P} "
                           f"follow from head_dim/rope_base/train_seq")
    n = _get_int64(h, 16)
    if n != num_params(cfg):
        raise ConvertError(f"{path}: header says {n} parameters, the shapes give {num_params(cfg)}")
    if len(raw) != HEADER_INTS * 4 + n * bytes_per + trailer:
        raise ConvertError(f"{path}: file is {len(raw)} bytes, expected {HEADER_INTS * 4 + n * bytes_per + trailer} "
                           f"(truncated or corrupted)")
    np_dtype = "<f4" if bytes_per == 4 else "<f8"
    data = np.frombuffer(raw, dtype=np_dtype, offset=HEADER_INTS * 4, count=n)
    tables, off = [], 0
    for name, shape in table_shapes(cfg):
        k = int(np.prod(shape))
        tables.append(torch.from_numpy(data[off:off + k].copy().reshape(shape)))
        off += k
    info = {"bytes_per": bytes_per, "tokenizer": int(h[12]), "init": int(h[15]), "num_params": n}
    return cfg, tables, info


# ----------------------------------------------------------------------------------------------------------
# HF config.json

def detect_pe(hf, state_keys=()):
    if hf.get("position_embedding"):
        return hf["position_embedding"]
    if hf.get("fourier") or any(k.endswith("pos_emb.sin_coef") for k in state_keys):
        return "fope"
    archs = " ".join(hf.get("architectures") or []).lower()
    if hf.get("alibi") or hf.get("use_alibi") or "alibi" in archs or any(k.endswith("alibi_slopes") for k in state_keys):
        return "alibi"
    rc = hf.get("rope_config") or {}
    if rc.get("imag"):
        mode = rc.get("imag_mode")
        if mode == "imag1":
            return "ropepp_eh"
        if mode == "imag2":
            return "ropepp_ec"
        raise ConvertError(f"rope_config.imag_mode '{mode}' is not supported (only imag1 = EH, imag2 = EC)")
    prf = hf.get("partial_rotary_factor", 1.0)
    if prf is not None and float(prf) < 1.0:
        return "partial"
    return "rope"


def config_from_hf(hf, state_keys=(), pe=None):
    """config.json dict -> ModelConfig (+ tokenizer/init hints)."""
    pe = pe or detect_pe(hf, state_keys)
    if pe not in PE_NAMES:
        raise ConvertError(f"unknown position embedding '{pe}', expected one of {PE_NAMES}")
    need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"]
    for k in need:
        if k not in hf:
            raise ConvertError(f"config.json lacks '{k}'")
    C, H = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    if hf.get("head_dim") not in (None, C // H):
        raise ConvertError(f"config head_dim {hf['head_dim']} != hidden_size/num_attention_heads {C // H}; unsupported")
    if hf.get("rope_scaling"):
        raise ConvertError("HF 'rope_scaling' is not supported; the authors' code uses rope_config (yarn/factor)")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ConvertError("attention_bias / mlp_bias are not supported (the authors' models have no biases)")
    if hf.get("tie_word_embeddings"):
        raise ConvertError("tied embeddings are not supported (the .ckpt keeps an untied lm_head)")
    rc = hf.get("rope_config") or {}
    pi = yarn = ntk = 1.0
    yarn_orig_len = 0
    if pe in ROPE_LIKE:
        if rc.get("yarn"):
            yarn = float(rc["factor"])
            # the authors hard-code 4096 as the original window; our extension key overrides it
            yarn_orig_len = int(rc.get("yarn_orig_len", 4096))
        elif "factor" in rc:
            pi = float(rc["factor"])
        if "scaling_factor" in rc:
            ntk = float(rc["scaling_factor"])
    rotary_frac = 1.0
    if pe == "partial":
        rotary_frac = float(hf.get("partial_rotary_factor", 1.0))
    cfg = ModelConfig(vocab_size=int(hf["vocab_size"]), dim=C, n_layers=int(hf["num_hidden_layers"]), n_heads=H,
                      n_kv_heads=int(hf.get("num_key_value_heads", H)), ffn_dim=int(hf["intermediate_size"]), pe=pe,
                      train_seq=int(hf.get("max_position_embeddings", 4096)), yarn_orig_len=yarn_orig_len,
                      rope_base=float(hf.get("rope_theta", 10000.0)), rotary_frac=rotary_frac, pi_factor=pi,
                      yarn_factor=yarn, ntk_factor=ntk, norm_eps=float(hf.get("rms_norm_eps", 1e-6)))
    hints = {"tokenizer": hf.get("ropepp_tokenizer"), "init": hf.get("ropepp_init", 0)}
    return cfg, hints


# Every FoPE key the authors' FourierEmbedding (modeling_llama_fope.py) reads, with the values of their train_fope.py
# (docs/MATH.md, FoPE), except init_device: "cuda" there, "cpu" here so the folder loads on any machine (it only
# says where the frequency tables are first built). fourier_dim is set to the head_dim per model.
FOPE_CONFIG = {
    "fourier": True, "fourier_dim": 0, "fourier_init": "eye_xavier_norm", "fourier_init_norm_gain": 0.3,
    "fourier_separate_basis": True, "fourier_separate_head": True, "fourier_learnable": False, "fourier_norm": False,
    "fourier_ignore_zero": True, "rope_init_distribution": "exponential", "rope_no_pos": False,
    "rope_no_rotary": False, "rope_no_repetition": False, "rope_full_precision": True, "rope_learnable": False,
    "rope_include_neg_freq": False, "rope_init_upper_freq": 1.0, "rope_init_floor_freq": 0.0,
    "rope_floor_freq_ratio": 1.0, "rope_upper_freq_ratio": 1.0, "rope_clamp_floor_freq": True,
    "rope_clamp_floor_to_zero": True, "rope_clamp_upper_freq": False, "rope_clamp_upper_to_zero": True,
    "rope_zero_freq_ratio": -1.0, "rope_clamp_to_linear": False, "rope_clamp_to_linear_mode": "ceil",
    "len_extra": False, "init_device": "cpu",
}


def hf_config(cfg, tokenizer=None, init=0, torch_dtype="float32", template=None):
    """ModelConfig -> config.json dict (Llama fields + rope_config + our explicit keys)."""
    hf = dict(template or {})
    rc = {"imag": cfg.pe in ("ropepp_eh", "ropepp_ec")}
    if cfg.pe == "ropepp_eh":
        rc["imag_mode"] = "imag1"
    elif cfg.pe == "ropepp_ec":
        rc["imag_mode"] = "imag2"
    if cfg.yarn_factor != 1.0:
        rc["yarn"] = True
        rc["factor"] = cfg.yarn_factor
        rc["yarn_orig_len"] = cfg.yarn_len
    elif cfg.pi_factor != 1.0:
        rc["factor"] = cfg.pi_factor
    if cfg.ntk_factor != 1.0:
        rc["scaling_factor"] = cfg.ntk_factor
    hf.update({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_base,
        "partial_rotary_factor": cfg.rotary_frac,
        "max_position_embeddings": cfg.train_seq,
        "rope_scaling": None,
        "rope_config": rc,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "torch_dtype": torch_dtype,
        "position_embedding": cfg.pe,
        "ropepp_tokenizer": default_tokenizer(cfg.vocab_size) if tokenizer is None else tokenizer,
        "ropepp_init": init,
    })
    # every official class reads ignore_index (the label its loss skips; the authors set their EOS id). The .ckpt
    # has no such field and ropepp's loss skips no token id, which is PyTorch's -100; a --template keeps its own.
    hf.setdefault("ignore_index", -100)
    for k in FOPE_CONFIG:
        hf.pop(k, None)
    if cfg.pe == "fope":
        hf.update(FOPE_CONFIG)
        hf["fourier_dim"] = cfg.head_dim   # the authors' 128 is their head_dim: no extra frequencies
    for k in ("alibi", "use_alibi"):
        hf.pop(k, None)
    if cfg.pe == "alibi":
        hf.update({"alibi": True, "use_alibi": True})   # use_alibi: the key train_alibi.py sets
    return hf


# ----------------------------------------------------------------------------------------------------------
# HF folder I/O

def load_hf_dir(path):
    """-> (config dict, state dict of torch tensors)."""
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise ConvertError(f"{path}: no config.json (expected a HF checkpoint folder)")
    with open(cfg_path) as f:
        hf = json.load(f)
    sd = {}
    st, st_index = os.path.join(path, "model.safetensors"), os.path.join(path, "model.safetensors.index.json")
    pt, pt_index = os.path.join(path, "pytorch_model.bin"), os.path.join(path, "pytorch_model.bin.index.json")
    if os.path.isfile(st) or os.path.isfile(st_index):
        from safetensors.torch import load_file
        files = [st] if os.path.isfile(st) else \
            sorted({os.path.join(path, v) for v in json.load(open(st_index))["weight_map"].values()})
        for fn in files:
            sd.update(load_file(fn))
    elif os.path.isfile(pt) or os.path.isfile(pt_index):
        files = [pt] if os.path.isfile(pt) else \
            sorted({os.path.join(path, v) for v in json.load(open(pt_index))["weight_map"].values()})
        for fn in files:
            sd.update(torch.load(fn, map_location="cpu", weights_only=True))
    else:
        raise ConvertError(f"{path}: no model.safetensors / pytorch_model.bin (or their .index.json) found")
    return hf, sd


def save_hf_dir(path, hf, sd, fmt="safetensors"):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf, f, indent=2, sort_keys=True)
        f.write("\n")
    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(sd, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    elif fmt == "bin":
        torch.save(sd, os.path.join(path, "pytorch_model.bin"))
    else:
        raise ConvertError(f"unknown format '{fmt}' (safetensors or bin)")


DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf2ckpt(hf_dir, out_path, pe=None, bytes_per=4, tokenizer=None, verbose=True):
    hf, sd = load_hf_dir(hf_dir)
    cfg, hints = config_from_hf(hf, sd.keys(), pe)
    known = set(hf_expected_shapes(cfg))
    for k in sd:
        if k in known:
            continue
        if k.endswith("alibi_slopes") and cfg.pe == "alibi":
            want = torch.tensor(alibi_slopes(cfg.na), dtype=torch.float64)
            got = sd[k].to(torch.float64)
            if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-2, atol=0):
                raise ConvertError(f"{k} = {got.tolist()} differs from the recomputed slopes {want.tolist()}")
            continue
        if verbose:
            print(f"hf2ckpt: ignoring unknown tensor {k} {tuple(sd[k].shape)}", file=sys.stderr)
    tables = state_to_table(sd, cfg)
    if tokenizer is None:
        tokenizer = hints["tokenizer"]
    write_ckpt(out_path, cfg, tables, bytes_per=bytes_per, tokenizer=tokenizer, init=int(hints["init"] or 0))
    if verbose:
        print(f"hf2ckpt: {hf_dir} -> {out_path}: pe {cfg.pe}, V {cfg.vocab_size} C {cfg.dim} L {cfg.n_layers} "
              f"H {cfg.n_heads} KV {cfg.n_kv_heads} F {cfg.ffn_dim}, {num_params(cfg):,} params, fp{bytes_per * 8}")
    return cfg


def ckpt2hf(ckpt_path, hf_dir, dtype=None, fmt="safetensors", template=None, verbose=True):
    cfg, tables, info = read_ckpt(ckpt_path)
    if dtype is None:
        dtype = "float32" if info["bytes_per"] == 4 else "float64"
    tdt = DTYPES[dtype]
    sd = table_to_state([t.to(tdt) for t in tables], cfg)
    tmpl = None
    if template:
        with open(template) as f:
            tmpl = json.load(f)
    hf = hf_config(cfg, tokenizer=info["tokenizer"], init=info["init"], torch_dtype=dtype, template=tmpl)
    save_hf_dir(hf_dir, hf, sd, fmt)
    if verbose:
        print(f"ckpt2hf: {ckpt_path} -> {hf_dir}: pe {cfg.pe}, {info['num_params']:,} params, {dtype}, {fmt}")
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert between HF-style checkpoints and ropepp .ckpt files "
                                             "(docs/FORMATS.md).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("hf2ckpt", help="HF folder -> .ckpt")
    a.add_argument("hf_dir")
    a.add_argument("out")
    a.add_argument("--pe", choices=PE_NAMES, help="override the detected position embedding")
    a.add_argument("--dtype", choices=["fp32", "fp64"], default="fp32", help="stored parameter type (default fp32)")
    a.add_argument("--tokenizer", type=int, choices=sorted(TOKENIZERS),
                   help="header tokenizer: 0 bytes, 1 gpt2, 2 llama3 (default: from vocab size)")
    b = sub.add_parser("ckpt2hf", help=".ckpt -> HF folder")
    b.add_argument("ckpt")
    b.add_argument("hf_dir")
    b.add_argument("--dtype", choices=sorted(DTYPES), help="tensor type written (default: the .ckpt's fp32/fp64)")
    b.add_argument("--format", choices=["safetensors", "bin"], default="safetensors")
    b.add_argument("--template", help="config.json whose other keys (bos_token_id, ...) are copied over")
    c = sub.add_parser("info", help="print a .ckpt header")
    c.add_argument("ckpt")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "hf2ckpt":
            hf2ckpt(args.hf_dir, args.out, pe=args.pe, bytes_per=4 if args.dtype == "fp32" else 8,
                    tokenizer=args.tokenizer)
        elif args.cmd == "ckpt2hf":
            ckpt2hf(args.ckpt, args.hf_dir, dtype=args.dtype, fmt=args.format, template=args.template)
        else:
            cfg, tables, info = read_ckpt(args.ckpt)
            print(cfg)
            print(info)
            for (name, shape), t in zip(table_shapes(cfg), tables):
                print(f"  {name:9s} {str(tuple(shape)):24s} rms {t.double().pow(2).mean().sqrt().item() if t.numel() else 0:.4g}")
    except (ConvertError, ValueError) as e:
        print(f"convert.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
