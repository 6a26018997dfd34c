#!/usr/bin/env python3
# ref/test_ref.py -- self-checks of the PyTorch float64 reference (no C involved).
#
# How to run (from the repository root; needs torch, numpy, safetensors):
#   python3 ref/test_ref.py            # exits non-zero if any check fails
#   python3 ref/test_ref.py -k alibi   # only checks whose name contains "alibi"
#
# Checks: converter round trips (HF -> ckpt -> HF lossless for every PE, ckpt -> HF -> ckpt byte-identical,
# bf16 and pytorch_model.bin paths, PE detection from the authors' config keys); the imaginary-query identities
# of docs/MATH.md, RoPE++; RoPE++ head order / GQA mapping in the model against explicit per-head formulas;
# EH/EC parameter counts (docs/MATH.md, Parameter counts); ALiBi slopes (ALiBi); FoPE M/P/init (FoPE); YaRN
# ramp counts (section 1.9); LR schedules (section 7.3); and, when tests/fixtures/*.fix exist, that they
# re-derive from their .ckpt.

import sys

sys.dont_write_bytecode = True   # keep ref/ free of __pycache__

import argparse
import math
import os
import tempfile
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert  # noqa: E402
import make_fixtures  # noqa: E402
from model import (PE_NAMES, ModelConfig, RopeppLM, alibi_slopes, fope_frequencies, lr_lambda,  # noqa: E402
                   rope_cos_sin, rope_inv_freq, rotate_half, FourierEmbedding)

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def close(a, b, tol, what):
    a = torch.as_tensor(np.array(a) if isinstance(a, np.ndarray) else a, dtype=torch.float64)
    b = torch.as_tensor(np.array(b) if isinstance(b, np.ndarray) else b, dtype=torch.float64)
    err = (a - b).abs().max().item() if a.numel() else 0.0
    expect(a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
    expect(err <= tol, f"{what}: max abs error {err:.3e} > {tol:.1e}")


def tiny_model(pe, seed=0):
    cfg, _, _ = make_fixtures.fixture_spec(pe)
    torch.manual_seed(seed)
    return cfg, RopeppLM(cfg)


def same_state(a, b, what):
    expect(set(a) == set(b), f"{what}: key sets differ: {sorted(set(a) ^ set(b))[:4]}")
    for k in a:
        expect(a[k].dtype == b[k].dtype, f"{what}: {k} dtype {a[k].dtype} vs {b[k].dtype}")
        expect(torch.equal(a[k], b[k]), f"{what}: {k} differs")


# ----------------------------------------------------------------------------------------------------------
# converter

@check
def converter_roundtrip_every_pe():
    for pe in PE_NAMES:
        cfg, model = tiny_model(pe)
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        with tempfile.TemporaryDirectory() as tmp:
            hf1, hf2 = os.path.join(tmp, "hf1"), os.path.join(tmp, "hf2")
            c1, c2 = os.path.join(tmp, "a.ckpt"), os.path.join(tmp, "b.ckpt")
            convert.save_hf_dir(hf1, convert.hf_config(cfg, torch_dtype="float64"), sd)
            cfg_a = convert.hf2ckpt(hf1, c1, bytes_per=8, verbose=False)
            expect(cfg_a == cfg, f"{pe}: hf2ckpt config {cfg_a} != {cfg}")
            convert.ckpt2hf(c1, hf2, verbose=False)
            conf1, sd1 = convert.load_hf_dir(hf1)
            conf2, sd2 = convert.load_hf_dir(hf2)
            same_state(sd1, sd2, f"{pe} HF->ckpt->HF")
            expect(conf1 == conf2, f"{pe}: config.json changed in the round trip")
            expect(convert.config_from_hf(conf2, sd2.keys())[0] == cfg, f"{pe}: config differs after round trip")
            # ckpt -> HF -> ckpt is byte-identical
            convert.hf2ckpt(hf2, c2, bytes_per=8, verbose=False)
            expect(open(c1, "rb").read() == open(c2, "rb").read(), f"{pe}: ckpt->HF->ckpt not byte-identical")
            # the converted HF state dict loads strictly into a fresh model and gives identical logits
            m2 = RopeppLM(cfg)
            m2.load_state_dict(sd2, strict=True)
            idx = torch.randint(0, cfg.vocab_size, (2, 7), generator=torch.Generator().manual_seed(3))
            expect(torch.equal(model(idx)[0], m2(idx)[0]), f"{pe}: logits differ after conversion")


@check
def converter_fp32_bf16_and_bin_paths():
    for pe in ["ropepp_eh", "fope", "alibi"]:
        cfg, model = tiny_model(pe)
        sd16 = {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}
        if pe == "alibi":   # the authors' buffer is fp32 (bf16 under DeepSpeed)
            sd16 = {k: (v if not k.endswith("alibi_slopes") else v.to(torch.float32)) for k, v in sd16.items()}
        with tempfile.TemporaryDirectory() as tmp:
            hf1, hf2 = os.path.join(tmp, "hf1"), os.path.join(tmp, "hf2")
            c1, c2 = os.path.join(tmp, "a.ckpt"), os.path.join(tmp, "b.ckpt")
            convert.save_hf_dir(hf1, convert.hf_config(cfg, torch_dtype="bfloat16"), sd16, fmt="bin")
            convert.hf2ckpt(hf1, c1, bytes_per=4, verbose=False)                 # bf16 -> fp32 is exact
            expect(os.path.getsize(c1) == 1024 + 4 * convert.num_params(cfg), f"{pe}: fp32 ckpt size")
            convert.ckpt2hf(c1, hf2, dtype="bfloat16", verbose=False)
            _, a = convert.load_hf_dir(hf1)
            _, b = convert.load_hf_dir(hf2)
            same_state(a, b, f"{pe} bf16 .bin -> fp32 ckpt -> bf16 safetensors")
            convert.hf2ckpt(hf2, c2, bytes_per=4, verbose=False)
            expect(open(c1, "rb").read() == open(c2, "rb").read(), f"{pe}: fp32 ckpt round trip not byte-identical")


@check
def converter_detects_pe_from_authors_keys():
    """Strip our explicit keys; what is left is what the authors' checkpoints carry."""
    for pe in ["rope", "ropepp_eh", "ropepp_ec", "fope", "alibi", "partial"]:
        cfg, model = tiny_model(pe)
        hf = convert.hf_config(cfg)
        for k in ["position_embedding", "ropepp_tokenizer", "ropepp_init", "head_dim"]:
            hf.pop(k)
        hf.pop("alibi", None)      # ALiBi: detected from the alibi_slopes buffers alone
        hf.pop("use_alibi", None)
        if pe != "partial":
            hf.pop("partial_rotary_factor")
        if pe == "rope":           # yarn in the authors' keys: no yarn_orig_len -> their hard-coded 4096
            hf["rope_config"].pop("yarn_orig_len")
        keys = convert.table_to_state(convert.state_to_table(model.state_dict(), cfg), cfg).keys()
        got, _ = convert.config_from_hf(hf, keys)
        want = ModelConfig(**{**cfg.__dict__, "yarn_orig_len": 4096}) if pe == "rope" else cfg
        expect(got == want, f"{pe}: detected {got} != {want}")
    # the override wins
    cfg, _ = tiny_model("rope")
    hf = convert.hf_config(cfg)
    hf.pop("position_embedding")
    expect(convert.config_from_hf(hf, (), pe="nope")[0].pe == "nope", "--pe override ignored")


def _ckpt_slot34(path, value):
    """Overwrite header slots 34-35 (rotary_frac) of a .ckpt with a double."""
    with open(path, "r+b") as f:
        f.seek(34 * 4)
        f.write(np.float64(value).tobytes())


@check
def converter_takes_trainer_checkpoints():
    """./train used to store its default rotary_frac 0.25 for every PE; docs/FORMATS.md: partial only. Such files
    convert (the value is ignored unless pe is partial, as ropepp.h's reader does), and the files ./train writes now
    hold 1 there. ckpt2hf and info both run through the CLI."""
    import subprocess
    cli = [sys.executable, os.path.join(HERE, "convert.py")]
    for pe in PE_NAMES:
        cfg, model = tiny_model(pe)
        with tempfile.TemporaryDirectory() as tmp:
            c = os.path.join(tmp, "old.ckpt")
            convert.write_ckpt(c, cfg, convert.state_to_table(model.state_dict(), cfg), bytes_per=4)
            if pe != "partial":
                _ckpt_slot34(c, 0.25)
            got, _, _ = convert.read_ckpt(c)
            expect(got == cfg, f"{pe}: a file with rotary_frac 0.25 reads as {got}, want {cfg}")
            for args in (["info", c], ["ckpt2hf", c, os.path.join(tmp, "hf")]):
                r = subprocess.run(cli + args, capture_output=True, text=True)
                expect(r.returncode == 0, f"{pe}: convert.py {args[0]} on a trainer-style file failed: {r.stderr.strip()}")
    train = os.path.join(HERE, "..", "train")
    if not os.path.isfile(train):
        print("      (./train not built: run make for the part that trains with it)")
        return
    for pe in ["ropepp_ec", "rope", "partial"]:
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([train, "--pe", pe, "--steps", "2", "--dim", "32", "--layers", "1", "--heads", "2",
                                "--kv-heads", "2", "--ffn", "64", "--seq", "32", "--batch", "1", "--val", "",
                                "--sample", "0", "--log", "", "--ckpt-dir", tmp], capture_output=True, text=True,
                               cwd=os.path.join(HERE, ".."))
            expect(r.returncode == 0, f"./train --pe {pe} --steps 2 failed: {r.stderr.strip()[-300:]}")
            c = os.path.join(tmp, "model_00000002.ckpt")
            raw = np.frombuffer(open(c, "rb").read(1024), dtype="<f8")
            want = 0.25 if pe == "partial" else 1.0
            expect(raw[17] == want, f"./train --pe {pe} stored rotary_frac {raw[17]}, want {want}")
            for args in (["info", c], ["ckpt2hf", c, os.path.join(tmp, "hf")]):
                r = subprocess.run(cli + args, capture_output=True, text=True)
                expect(r.returncode == 0, f"{pe}: convert.py {args[0]} on ./train's checkpoint failed: {r.stderr.strip()}")


# The config attributes the authors' classes read with no default (modeling_llama_{rope_pp,fope,alibi,pythia}.py,
# attribute reads outside comments, beyond LlamaConfig's own fields), and which class each PE loads in. NoPE has no
# class of theirs.
OFFICIAL_KEYS = {
    "rope_pp": ["ignore_index", "rope_config", "partial_rotary_factor"],
    "fope": ["ignore_index", "fourier", "fourier_dim", "fourier_ignore_zero", "fourier_init", "fourier_init_norm_gain",
             "fourier_learnable", "fourier_norm", "fourier_separate_basis", "fourier_separate_head", "init_device",
             "len_extra", "rope_clamp_floor_freq", "rope_clamp_floor_to_zero", "rope_clamp_to_linear",
             "rope_clamp_to_linear_mode", "rope_clamp_upper_freq", "rope_clamp_upper_to_zero",
             "rope_floor_freq_ratio", "rope_full_precision", "rope_include_neg_freq", "rope_init_distribution",
             "rope_init_floor_freq", "rope_init_upper_freq", "rope_learnable", "rope_no_pos", "rope_no_repetition",
             "rope_no_rotary", "rope_upper_freq_ratio", "rope_zero_freq_ratio"],
    "alibi": ["ignore_index"],
    "pythia": ["ignore_index", "partial_rotary_factor"],
}
OFFICIAL_CLASS = {"rope": "rope_pp", "ropepp_eh": "rope_pp", "ropepp_ec": "rope_pp", "fope": "fope",
                  "alibi": "alibi", "partial": "pythia"}
# train_fope.py's settings (docs/MATH.md, FoPE) for a head_dim-128 model
AUTHORS_FOPE = {"fourier": True, "fourier_dim": 128, "fourier_init": "eye_xavier_norm", "fourier_init_norm_gain": 0.3,
                "fourier_separate_basis": True, "fourier_separate_head": True, "fourier_learnable": False,
                "fourier_norm": False, "fourier_ignore_zero": True, "rope_init_distribution": "exponential",
                "rope_no_pos": False, "rope_no_rotary": False, "rope_no_repetition": False,
                "rope_full_precision": True, "rope_learnable": False, "rope_include_neg_freq": False,
                "rope_init_upper_freq": 1.0, "rope_init_floor_freq": 0.0, "rope_floor_freq_ratio": 1.0,
                "rope_upper_freq_ratio": 1.0, "rope_clamp_floor_freq": True, "rope_clamp_floor_to_zero": True,
                "rope_clamp_upper_freq": False, "rope_clamp_upper_to_zero": True, "rope_zero_freq_ratio": -1.0,
                "rope_clamp_to_linear": False, "rope_clamp_to_linear_mode": "ceil", "len_extra": False}


@check
def converter_config_has_official_keys():
    """A folder written by ckpt2hf without --template carries every key the authors' class for its PE reads:
    ignore_index everywhere (-100: ropepp's loss skips no token id), the FoPE settings of train_fope.py, ALiBi's
    use_alibi; a --template's own ignore_index (the authors': their EOS id) is kept."""
    for pe in PE_NAMES:
        cfg, model = tiny_model(pe)
        with tempfile.TemporaryDirectory() as tmp:
            c, hf_dir = os.path.join(tmp, "a.ckpt"), os.path.join(tmp, "hf")
            convert.write_ckpt(c, cfg, convert.state_to_table(model.state_dict(), cfg), bytes_per=4)
            convert.ckpt2hf(c, hf_dir, verbose=False)
            hf, _ = convert.load_hf_dir(hf_dir)
            expect(hf.get("ignore_index") == -100, f"{pe}: ignore_index {hf.get('ignore_index')}, want -100")
            if pe in OFFICIAL_CLASS:
                missing = [k for k in OFFICIAL_KEYS[OFFICIAL_CLASS[pe]] if k not in hf]
                expect(not missing, f"{pe}: config lacks {missing}, read by the authors' {OFFICIAL_CLASS[pe]} class")
            if pe == "fope":
                for k, v in AUTHORS_FOPE.items():
                    want = cfg.head_dim if k == "fourier_dim" else v
                    expect(hf[k] == want and type(hf[k]) is type(want), f"fope: {k} = {hf[k]!r}, want {want!r}")
            else:
                expect(not any(k in hf for k in AUTHORS_FOPE), f"{pe}: FoPE keys in a non-FoPE config")
            expect(bool(hf.get("use_alibi")) == (pe == "alibi"), f"{pe}: use_alibi {hf.get('use_alibi')}")
            tmpl = os.path.join(tmp, "template.json")
            with open(tmpl, "w") as f:
                f.write('{"ignore_index": 128001, "eos_token_id": 128001, "bos_token_id": 128000}')
            convert.ckpt2hf(c, os.path.join(tmp, "hf2"), template=tmpl, verbose=False)
            hf2, _ = convert.load_hf_dir(os.path.join(tmp, "hf2"))
            expect(hf2["ignore_index"] == 128001 and hf2["bos_token_id"] == 128000,
                   f"{pe}: the template's ignore_index / bos_token_id not kept: {hf2.get('ignore_index')}")
            expect(convert.config_from_hf(hf2, ())[0] == cfg, f"{pe}: config from the templated folder differs")


@check
def converter_rejects_bad_files():
    cfg, model = tiny_model("rope")
    with tempfile.TemporaryDirectory() as tmp:
        c = os.path.join(tmp, "x.ckpt")
        convert.write_ckpt(c, cfg, convert.state_to_table(model.state_dict(), cfg), bytes_per=4)
        raw = open(c, "rb").read()
        for name, bad in [("truncated", raw[:-4]), ("magic", b"\0\0\0\0" + raw[4:])]:
            open(c, "wb").write(bad)
            try:
                convert.read_ckpt(c)
            except convert.ConvertError:
                continue
            raise AssertionError(f"read_ckpt accepted a {name} file")
        # wrong PE for the tensors -> clear shape error
        sd = {k: v for k, v in model.state_dict().items()}
        try:
            convert.state_to_table(sd, ModelConfig(**{**cfg.__dict__, "pe": "ropepp_ec", "yarn_factor": 1.0,
                                                      "yarn_orig_len": 0}))
        except convert.ConvertError:
            pass
        else:
            raise AssertionError("state_to_table accepted rope tensors as ropepp_ec")


@check
def converter_cli_help():
    import subprocess
    r = subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), "--help"], capture_output=True, text=True)
    expect(r.returncode == 0 and "hf2ckpt" in r.stdout, "convert.py --help failed")


# ----------------------------------------------------------------------------------------------------------
# RoPE++ math (docs/MATH.md, RoPE++ and Head layouts)

def rope_rotate(x, cos, sin):
    return x * cos + rotate_half(x) * sin


@check
def imaginary_query_identities():
    g = torch.Generator().manual_seed(11)
    d, base = 16, 10000.0
    h = d // 2
    theta = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)           # (d/2,)
    for trial in range(20):
        q = torch.randn(d, generator=g, dtype=torch.float64)
        k = torch.randn(d, generator=g, dtype=torch.float64)
        t, s = int(torch.randint(0, 5000, (1,), generator=g)), int(torch.randint(0, 5000, (1,), generator=g))
        ang_t, ang_s = torch.cat([t * theta] * 2), torch.cat([s * theta] * 2)           # (d,)
        c, sn = ang_t.cos(), ang_t.sin()
        code = q * sn - rotate_half(q) * c                                            # the code's form
        form1 = rope_rotate(q, (ang_t - math.pi / 2).cos(), (ang_t - math.pi / 2).sin())  # angle shifted by -pi/2
        form2 = rope_rotate(-rotate_half(q), c, sn)                                   # RoPE of (b, -a) per pair
        a, b = q[:h], q[h:]
        explicit = torch.cat([a * sn[:h] + b * c[:h], b * sn[:h] - a * c[:h]])
        close(code, form1, 1e-12, "imag form 1 (shifted angle)")
        close(code, form2, 1e-15, "imag form 2 (-rotate_half then RoPE)")
        close(code, explicit, 1e-15, "imag per-pair formula")
        # scores against a real-rotated key, versus the expanded formulas
        k_rot = rope_rotate(k, ang_s.cos(), ang_s.sin())
        q_rot = rope_rotate(q, c, sn)
        delta = (t - s) * theta                                                       # (d/2,)
        ak, bk = k[:h], k[h:]
        dot = a * ak + b * bk
        cross = a * bk - b * ak
        real_score = (dot * delta.cos() + cross * delta.sin()).sum()
        imag_score = (dot * delta.sin() - cross * delta.cos()).sum()
        close(q_rot @ k_rot, real_score, 1e-11, "real score formula")
        close(code @ k_rot, imag_score, 1e-11, "imag score formula")
        # k = q: imag score = sum_j |q_pair_j|^2 sin(theta_j * delta)
        q_as_key = rope_rotate(q, ang_s.cos(), ang_s.sin())
        close(code @ q_as_key, ((a * a + b * b) * delta.sin()).sum(), 1e-11, "k=q imag score")


@check
def ropepp_head_order_and_gqa_in_model():
    """Model q/k versus explicit per-head formulas: head 2h real, 2h+1 imag of projected head h; kv head a//group."""
    for pe in ["ropepp_eh", "ropepp_ec", "rope"]:
        cfg, model = tiny_model(pe)
        attn = model.model.layers[1].self_attn
        B, T, d = 2, 9, cfg.head_dim
        x = torch.randn(B, T, cfg.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        cos, sin = rope_cos_sin(cfg, T)                                               # (T, d)
        q_att, k_att, v = attn.qkv(x, (cos, sin))
        expect(q_att.shape == (B, cfg.na, T, d), f"{pe}: q shape {tuple(q_att.shape)}")
        q_raw = (x @ attn.q_proj.weight.T).view(B, T, cfg.hq, d)                      # (B, T, HQ, d)
        k_raw = (x @ attn.k_proj.weight.T).view(B, T, cfg.kvh, d)
        group = cfg.na // cfg.kvh
        theta, mscale = rope_inv_freq(cfg)
        hh = d // 2
        for a_head in range(cfg.na):
            h = a_head // 2 if pe != "rope" else a_head
            imag = pe != "rope" and a_head % 2 == 1
            gkv = a_head // group
            expect(gkv == h // (cfg.hq // cfg.kvh), f"{pe}: kv head of attention head {a_head}")
            for ti in range(T):
                for si in range(ti + 1):
                    qa, qb = q_raw[0, ti, h, :hh], q_raw[0, ti, h, hh:]
                    ka, kb = k_raw[0, si, gkv, :hh], k_raw[0, si, gkv, hh:]
                    delta = (ti - si) * theta
                    dot, cross = qa * ka + qb * kb, qa * kb - qb * ka
                    if imag:
                        want = (dot * delta.sin() - cross * delta.cos()).sum()
                    else:
                        want = (dot * delta.cos() + cross * delta.sin()).sum()
                    got = q_att[0, a_head, ti] @ k_att[0, gkv, si]
                    close(got, want * mscale ** 2, 1e-10, f"{pe} head {a_head} score ({ti},{si})")


# ----------------------------------------------------------------------------------------------------------
# sizes, slopes, FoPE, YaRN, schedules

@check
def eh_ec_parameter_counts():
    want = {"rope": 1_572_864, "ropepp_eh": 1_081_344, "ropepp_ec": 2_162_688}
    for pe, n in want.items():
        cfg = ModelConfig(vocab_size=8, dim=768, n_layers=1, n_heads=12, n_kv_heads=4, ffn_dim=8, pe=pe)
        torch.manual_seed(0)
        m = RopeppLM(cfg)
        got = sum(p.numel() for p in m.model.layers[0].self_attn.parameters())
        expect(got == n, f"{pe}: attention params {got:,} != {n:,}")
        expect((cfg.na, cfg.kvh) == {"rope": (12, 4), "ropepp_eh": (12, 2), "ropepp_ec": (24, 4)}[pe],
               f"{pe}: heads {cfg.na}/{cfg.kvh}")


@check
def shipped_config_totals():
    """The authors' shipped configs' whole-model totals via the .ckpt table shapes."""
    shapes = {"376M": (1024, 3584, 8, 8, 4), "776M": (1536, 5376, 12, 12, 6), "1.5B": (2048, 7168, 16, 16, 4)}
    want = {("376M", "rope"): 375_931_904, ("376M", "ropepp_eh"): 367_543_296, ("376M", "ropepp_ec"): 384_320_512,
            ("776M", "rope"): 776_246_784, ("776M", "ropepp_eh"): 747_935_232, ("776M", "ropepp_ec"): 804_558_336,
            ("1.5B", "rope"): 1_397_819_392, ("1.5B", "ropepp_eh"): 1_347_487_744,
            ("1.5B", "ropepp_ec"): 1_464_928_256}
    for (size, pe), n in want.items():
        C, F, L, H, K = shapes[size]
        cfg = ModelConfig(vocab_size=128256, dim=C, n_layers=L, n_heads=H, n_kv_heads=K, ffn_dim=F, pe=pe)
        expect(convert.num_params(cfg) == n, f"{size} {pe}: {convert.num_params(cfg):,} != {n:,}")
    for size, extra in [("376M", 11_776), ("776M", 17_664)]:
        C, F, L, H, K = shapes[size]
        base = dict(vocab_size=128256, dim=C, n_layers=L, n_heads=H, n_kv_heads=K, ffn_dim=F)
        fope = ModelConfig(pe="fope", **base)
        expect((fope.fope_M, fope.fope_P) == (46, 32), f"{size}: FoPE M,P {fope.fope_M},{fope.fope_P}")
        diff = convert.num_params(fope) - convert.num_params(ModelConfig(pe="rope", **base))
        expect(diff == extra * L, f"{size}: FoPE adds {diff} != {extra} per layer")


@check
def alibi_slopes_8_and_12():
    close(alibi_slopes(8), [2.0 ** -(i + 1) for i in range(8)], 0, "8-head slopes")
    want12 = [2.0 ** -(i + 1) for i in range(8)] + [2.0 ** -0.5, 2.0 ** -1.5, 2.0 ** -2.5, 2.0 ** -3.5]
    close(alibi_slopes(12), want12, 1e-15, "12-head slopes")
    # the fixture's 6 heads: 4 power-of-two slopes (2^-2 ... 2^-8) then even entries of the 8-head list
    close(alibi_slopes(6), [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3], 1e-15, "6-head slopes")


@check
def alibi_bias_in_model():
    cfg, model = tiny_model("alibi")
    attn = model.model.layers[0].self_attn
    B, T, d = 1, 5, cfg.head_dim
    x = torch.randn(B, T, cfg.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        q, k, v = attn.qkv(x)
    group = cfg.na // cfg.kvh
    slopes = alibi_slopes(cfg.na)
    y = torch.zeros(B, T, cfg.na, d, dtype=torch.float64)
    for hd in range(cfg.na):
        for i in range(T):
            logits = torch.tensor([q[0, hd, i] @ k[0, hd // group, j] / math.sqrt(d) - slopes[hd] * (i - j)
                                   for j in range(i + 1)])
            w = torch.softmax(logits, 0)
            y[0, i, hd] = (w[:, None] * v[0, hd // group, :i + 1]).sum(0)
    with torch.no_grad():
        close(attn(x), attn.o_proj(y.reshape(B, T, -1)), 1e-13, "alibi attention vs explicit loop")


@check
def fope_frequencies_and_init():
    cfg = ModelConfig(vocab_size=8, dim=1024, n_layers=1, n_heads=8, n_kv_heads=4, ffn_dim=8, pe="fope")
    om = fope_frequencies(cfg)
    expect(len(om) == 46 and abs(om[-1].item() - 1.5399e-3) < 1e-7, f"M = {len(om)}, last {om[-1].item()}")
    torch.manual_seed(0)
    fe = FourierEmbedding(cfg)
    eye = fe.step_eye()
    expect(eye.sum().item() == 4 * 23, f"step identity has {eye.sum().item()} ones, expected 4*23")
    expect(all(eye[0, 2 * p, p] == 1 for p in range(23)), "step identity positions [g, 2p, p]")
    noise = fe.sin_coef - eye
    std = 0.3 * math.sqrt(2.0 / (46 * 32 + 4 * 32))
    expect(abs(noise.std().item() / std - 1) < 0.05, f"xavier std {noise.std().item():.5f} vs {std:.5f}")
    expect(not fe.sin_coef.requires_grad and not fe.cos_coef.requires_grad, "FoPE coefficients must be frozen")
    # tiny fixture config: d = 12, train_seq 64 -> M = 2, P = 2; padded slots are exactly 1
    tcfg, tmodel = tiny_model("fope")
    expect((tcfg.fope_M, tcfg.fope_P) == (2, 2), f"fixture FoPE M,P = {tcfg.fope_M},{tcfg.fope_P}")
    Cc, S = tmodel.model.layers[0].self_attn.pos_emb.tables(9)
    expect(bool((Cc[..., 2:6] == 1).all() and (S[..., 8:] == 1).all()), "FoPE padded slots must be 1")
    names = [n for n, p in tmodel.named_parameters() if p.requires_grad]
    expect(not any("coef" in n for n in names), "FoPE coefficients listed as trainable")


@check
def fope_and_partial_rotation_explicit():
    """FoPE and partial rotary in the model versus element-by-element formulas."""
    B, T = 1, 9
    x = torch.randn(B, T, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    # FoPE: q head h uses coefficient group g = h // (HQ/KVH); pair (j, j+d/2)
    cfg, model = tiny_model("fope")
    attn = model.model.layers[1].self_attn
    d, hh, M, P = cfg.head_dim, cfg.head_dim // 2, cfg.fope_M, cfg.fope_P
    with torch.no_grad():
        q_att, k_att, _ = attn.qkv(x)
        q_raw = (x @ attn.q_proj.weight.T).view(B, T, cfg.hq, d)
        k_raw = (x @ attn.k_proj.weight.T).view(B, T, cfg.kvh, d)
    om = [10000.0 ** (-2.0 * m / d) for m in range(M)]
    cs, sn = attn.pos_emb.cos_coef, attn.pos_emb.sin_coef
    for kind, raw, out, nheads in [("q", q_raw, q_att, cfg.hq), ("k", k_raw, k_att, cfg.kvh)]:
        for h in range(nheads):
            g = h // (cfg.hq // cfg.kvh) if kind == "q" else h
            for t in range(T):
                for j in range(hh):
                    if j < P:
                        S = sum(math.sin(om[m] * t) * sn[g, m, j].item() for m in range(M))
                        Cc = sum(math.cos(om[m] * t) * cs[g, m, j].item() for m in range(M))
                    else:
                        S = Cc = 1.0
                    a, b = raw[0, t, h, j].item(), raw[0, t, h, j + hh].item()
                    close(out[0, h, t, j], a * Cc - b * S, 1e-13, f"fope {kind} head {h} t {t} j {j}")
                    close(out[0, h, t, j + hh], b * Cc + a * S, 1e-13, f"fope {kind} head {h} t {t} j+d/2")
    # partial: pairs (i, i + rot/2) inside the first rot dims, the rest passes through
    cfg, model = tiny_model("partial")
    attn = model.model.layers[0].self_attn
    d, r = cfg.head_dim, cfg.rot_dim
    with torch.no_grad():
        q_att, _, _ = attn.qkv(x, rope_cos_sin(cfg, T))
        q_raw = (x @ attn.q_proj.weight.T).view(B, T, cfg.hq, d)
    for h in range(cfg.hq):
        for t in range(T):
            for i in range(r // 2):
                th = 10000.0 ** (-2.0 * i / r)
                a, b = q_raw[0, t, h, i].item(), q_raw[0, t, h, i + r // 2].item()
                c, s = math.cos(t * th), math.sin(t * th)
                close(q_att[0, h, t, i], a * c - b * s, 1e-13, "partial rotated dim")
                close(q_att[0, h, t, i + r // 2], b * c + a * s, 1e-13, "partial rotated dim + rot/2")
            close(q_att[0, h, t, r:], q_raw[0, t, h, r:], 0, "partial pass-through dims")


@check
def yarn_ramp_counts():
    cfg = ModelConfig(vocab_size=8, dim=1024, n_layers=1, n_heads=8, n_kv_heads=4, ffn_dim=8, pe="rope",
                      yarn_factor=32.0, yarn_orig_len=4096)
    theta0 = 1.0 / 10000.0 ** (torch.arange(0, 128, 2, dtype=torch.float64) / 128)
    theta, mscale = rope_inv_freq(cfg)
    kept = int((theta == theta0).sum())
    interp = int(torch.isclose(theta, theta0 / 32, rtol=1e-14, atol=0).sum())
    expect((kept, interp, 64 - kept - interp) == (21, 18, 25), f"yarn kept/interp/ramp = {kept}/{interp}/{64 - kept - interp}")
    expect(abs(mscale - 1.3466) < 1e-4, f"mscale {mscale}")
    # element by element, the fixture's setting (d 12, Lorig 1024, s 4)
    c1 = make_fixtures.fixture_spec("rope")[0]
    want = []
    for i in range(6):
        th = 10000.0 ** (-2.0 * i / 12)
        gam = min(max((1024 * th / (2 * math.pi) - 1) / 31, 0.0), 1.0)
        want.append((1 - gam) * th / 4 + gam * th)
    close(rope_inv_freq(c1)[0], want, 1e-16, "yarn theta (fixture setting)")
    close(rope_inv_freq(c1)[1], 0.1 * math.log(4) + 1, 1e-16, "yarn mscale (fixture setting)")
    # train_seq is the default original length
    c2 = ModelConfig(vocab_size=8, dim=1024, n_layers=1, n_heads=8, n_kv_heads=4, ffn_dim=8, pe="rope",
                     yarn_factor=32.0, train_seq=4096)
    expect(torch.equal(rope_inv_freq(c2)[0], theta), "yarn_orig_len 0 must mean train_seq")
    # PI and NTK
    c3 = ModelConfig(vocab_size=8, dim=1024, n_layers=1, n_heads=8, n_kv_heads=4, ffn_dim=8, pe="rope", pi_factor=8.0)
    close(rope_inv_freq(c3)[0], theta0 / 8, 1e-18, "linear PI")
    c4 = ModelConfig(vocab_size=8, dim=1024, n_layers=1, n_heads=8, n_kv_heads=4, ffn_dim=8, pe="rope", ntk_factor=4.0)
    close(rope_inv_freq(c4)[0], 1.0 / 40000.0 ** (torch.arange(0, 128, 2, dtype=torch.float64) / 128), 1e-18, "ntk")
    # partial: theta over the rotary dims only
    c5 = ModelConfig(vocab_size=8, dim=1024, n_layers=1, n_heads=8, n_kv_heads=4, ffn_dim=8, pe="partial",
                     rotary_frac=0.25)
    close(rope_inv_freq(c5)[0], 1.0 / 10000.0 ** (torch.arange(0, 32, 2, dtype=torch.float64) / 32), 1e-18, "partial")


@check
def lr_schedules():
    f = lr_lambda("constant_with_warmup", 3)
    close([f(k) for k in range(5)], [0, 1 / 3, 2 / 3, 1, 1], 1e-15, "constant_with_warmup")
    f = lr_lambda("warmup_stable_decay", 2, 10, 4)
    want = [0, .5, 1, 1, 1, 1, 1, .5 * (1 + math.cos(math.pi / 4)), .5, .5 * (1 + math.cos(3 * math.pi / 4)), 0, 0]
    close([f(k) for k in range(12)], want, 1e-15, "warmup_stable_decay")
    f = lr_lambda("cosine", 2, 10)
    close([f(k) for k in range(11)], [0, .5] + [.5 * (1 + math.cos(math.pi * (k - 2) / 8)) for k in range(2, 11)],
          1e-15, "cosine")
    # the HF decay phase of docs/MATH.md, Learning-rate schedules (W 0, stable 1, D 9999): lambda(0) = 1, lambda(k) = cos ramp of k - 1
    f = lr_lambda("warmup_stable_decay", 0, 10000, 9999)
    close([f(0), f(1), f(5000)], [1, 1, .5 * (1 + math.cos(math.pi * 4999 / 9999))], 1e-15, "HF decay phase")


@check
def token_shard_writer():
    """tokenize_hf.py's shard writer (the tokenizer itself needs transformers + network; not exercised)."""
    import tokenize_hf
    with tempfile.TemporaryDirectory() as tmp:
        w = tokenize_hf.ShardWriter(tmp, "t", shard_tokens=7, val_tokens=5)
        w.add([128000, 1, 2, 3])
        w.add([128000, 4, 5, 6, 7, 8, 9, 10, 11, 12, 128255])
        w.close()
        names = sorted(os.path.basename(p) for p, _ in w.written)
        expect(names == ["t_train_000000.bin", "t_train_000001.bin", "t_val_000000.bin"], f"shards {names}")
        toks = []
        for name in ["t_val_000000.bin", "t_train_000000.bin", "t_train_000001.bin"]:
            raw = open(os.path.join(tmp, name), "rb").read()
            h = np.frombuffer(raw[:1024], dtype="<i4")
            expect(h[0] == 20240801 and h[1] == 1 and len(raw) == 1024 + 4 * h[2], f"{name}: header/size")
            toks += np.frombuffer(raw[1024:], dtype="<u4").tolist()
        expect(toks == [128000, 1, 2, 3, 128000, 4, 5, 6, 7, 8, 9, 10, 11, 12, 128255], "token order")


# ----------------------------------------------------------------------------------------------------------
# fixtures on disk

@check
def fixtures_rederive_from_ckpt():
    fdir = make_fixtures.DEFAULT_OUT
    found = [pe for pe in PE_NAMES if os.path.isfile(os.path.join(fdir, f"{pe}.fix"))]
    expect(found, f"no fixtures in {fdir}; run python3 ref/make_fixtures.py")
    for pe in found:
        fx = make_fixtures.read_fix(os.path.join(fdir, f"{pe}.fix"))
        cfg, tables, info = convert.read_ckpt(os.path.join(fdir, f"{pe}.ckpt"))
        spec_cfg, train, seed = make_fixtures.fixture_spec(pe)
        expect(cfg == spec_cfg and info["bytes_per"] == 8, f"{pe}: ckpt config/dtype mismatch")
        expect(fx["num_params"] == info["num_params"], f"{pe}: num_params fix {fx['num_params']} != ckpt")
        expect((fx["targets"] == -1).sum() == 1, f"{pe}: expected exactly one ignored target")
        model = RopeppLM(cfg)
        model.load_state_dict(convert.table_to_state(tables, cfg), strict=True)
        inputs = torch.from_numpy(fx["inputs"].astype(np.int64))
        targets = torch.from_numpy(fx["targets"].astype(np.int64))
        logits, loss = model(inputs, targets)
        loss.backward()
        close(logits.detach(), torch.from_numpy(fx["logits"].copy()), 1e-12, f"{pe}: logits")
        close(loss.item(), fx["loss"], 1e-12, f"{pe}: loss")
        grads = make_fixtures.grad_state_dict(model)
        g = torch.cat([t.reshape(-1) for t in convert.state_to_table(grads, cfg)])
        close(g, torch.from_numpy(fx["grads"].copy()), 1e-12, f"{pe}: gradients")
        if pe == "fope":
            n_frozen = sum(t.numel() for t in tables[9:])
            expect(n_frozen > 0 and not fx["grads"][-n_frozen:].any(), "fope: frozen gradients must be zero")
        expect(fx["losses"][0] == fx["loss"] and fx["losses"][-1] < fx["losses"][0], f"{pe}: loss curve")
        sched = lr_lambda(fx["schedule"], fx["W"], fx["N"], fx["D"])
        close(fx["lrs"], [fx["lr"] * sched(k) for k in range(fx["n_steps"])], 1e-18, f"{pe}: lr per step")
        # rerunning the whole 10-step reference reproduces the per-step losses
        res = make_fixtures.run_reference(spec_cfg, train, seed)
        close(res["losses"], fx["losses"], 1e-12, f"{pe}: per-step losses")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Self-checks of the float64 PyTorch reference.")
    ap.add_argument("-k", default="", help="run only checks whose name contains this")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    passed = failed = 0
    for fn in CHECKS:
        if args.k not in fn.__name__:
            continue
        try:
            fn()
            passed += 1
            print(f"ok    {fn.__name__}")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL  {fn.__name__}: {e}")
            if not isinstance(e, AssertionError):
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
