#!/usr/bin/env python3
# bench/cpu/run.py -- CPU training speed: ropepp's ./train against the same model in PyTorch (eager and
# torch.compile; bench/train/torch_model.py, driven by bench/train/torch_train.py in float32) on the same cores,
# at three shapes (SHAPES below). Runs are interleaved: every round runs ours, then PyTorch (eager, then compiled) for
# each shape, so that load from other processes hits both sides alike. Reported: the median over every timed step
# of all rounds.  Writes results.md and results.json (date, CPU, versions, the exact command) into --out.
#
#   make train && python3 bench/cpu/run.py                     # all shapes, 2 rounds (~15 min on 2 cores)
#   python3 bench/cpu/run.py --shapes small --pes rope --rounds 1 --out /tmp/cpu   # one quick line
#
# Needs: torch (pip install torch), a C compiler for torch.compile's CPU code; ./train built (make train).
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# name: (C, L, H, KV, F, V, B, T, position embeddings run by default): small is ./train's default model; c384 a
# wider, deeper one; v50k a GPT-2-sized vocabulary, where the classifier holds most of the parameters
SHAPES = {
    "small": (128, 4, 4, 2, 384, 256, 16, 128, ("rope", "ropepp_eh", "ropepp_ec")),
    "c384": (384, 6, 6, 2, 1024, 256, 8, 256, ("rope",)),
    "v50k": (256, 4, 4, 2, 768, 50304, 4, 256, ("rope",)),
}


def parse_args():
    p = argparse.ArgumentParser(description="ropepp vs PyTorch (eager, torch.compile) training steps on the CPU")
    p.add_argument("--shapes", default="small,c384,v50k", help="comma list of " + ", ".join(SHAPES))
    p.add_argument("--pes", default="", help="comma list of position embeddings for every shape (default: the "
                   "issue's: rope, ropepp_eh, ropepp_ec at small; rope at the others)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (ours, eager, compile) per shape")
    p.add_argument("--threads", type=int, default=2, help="threads for both (OMP_NUM_THREADS; torch reads it too)")
    p.add_argument("--modes", default="eager,compile", help="PyTorch modes")
    p.add_argument("--out", default=HERE, help="folder for results.md and results.json")
    return p.parse_args()


def steps_for(shape):
    """(timed, warm-up) steps per run: ~5 s of timed steps per run on 2 cores"""
    return (20, 3) if shape == "small" else (8, 2)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60, cwd=REPO).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(a):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else ""
    except OSError:
        pass
    import torch
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu or platform.processor(), "cores": os.cpu_count(), "threads": a.threads,
            "torch": torch.__version__, "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
            "python": platform.python_version(), "cc": sh("${CC:-gcc} --version | head -n 1"),
            "ropepp_backend": sh("ldd ./train | grep -i blas | sed -E \"s/.*=> ([^ ]*).*/\\1/\" | head -n 1"),
            "git_commit": sh("git rev-parse --short HEAD"),
            "git_dirty": bool(sh("git status --porcelain --untracked-files=no")),
            "loadavg_start": sh("cat /proc/loadavg"),
            "command": " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv)}


def ensure_shard(V, tmp):
    path = os.path.join(tmp, f"rand_{V}.bin")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(REPO, "bench/train/make_shard.py"), "--vocab", str(V),
                        "--tokens", "400000", "--out", path], check=True, capture_output=True)
    return path


def run_ours(shape, pe, a, tmp, env):
    C, L, H, KV, F, V, B, T, _ = SHAPES[shape]
    steps, warm = steps_for(shape)
    log = os.path.join(tmp, f"ours_{shape}_{pe}.jsonl")
    if os.path.exists(log):
        os.remove(log)
    cmd = ["./train", "--pe", pe, "--dim", str(C), "--layers", str(L), "--heads", str(H), "--kv-heads", str(KV),
           "--ffn", str(F), "--vocab", str(V), "--batch", str(B), "--seq", str(T), "--steps", str(steps + warm),
           "--train", ensure_shard(V, tmp), "--val", "", "--sample", "0", "--ckpt-dir", "", "--log", log]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-500:]}, cmd
    ms = [json.loads(line)["ms"] for line in open(log) if line.startswith("{") and '"ms"' in line]
    return {"ms": ms[warm:]}, cmd


def run_torch(shape, pe, a, env):
    C, L, H, KV, F, V, B, T, _ = SHAPES[shape]
    steps, warm = steps_for(shape)
    cmd = [sys.executable, os.path.join(REPO, "bench/train/torch_train.py"), "--device", "cpu", "--dtype", "fp32",
           "--modes", a.modes, "--pe", pe, "--dim", str(C), "--layers", str(L), "--heads", str(H),
           "--kv-heads", str(KV), "--ffn", str(F), "--vocab", str(V), "--batch", str(B), "--seq", str(T),
           "--steps", str(steps), "--warmup", str(warm), "--tag", shape]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            out[rec.get("mode", "?")] = {"ms": rec["ms"]} if "ms" in rec else {"error": rec.get("error", "")}
    if not out:
        out["eager"] = {"error": (r.stderr.strip() or "no output")[-500:]}
    return out, cmd


def main():
    a = parse_args()
    if not os.path.exists(os.path.join(REPO, "train")):
        sys.exit("error: ./train is missing; run `make train` first")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    envinfo = environment(a)
    runs = []   # (shape, pe)
    for s in a.shapes.split(","):
        if s not in SHAPES:
            sys.exit(f"error: unknown shape {s!r}; use {', '.join(SHAPES)}")
        for pe in (a.pes.split(",") if a.pes else SHAPES[s][8]):
            runs.append((s, pe))
    modes = [m for m in a.modes.split(",") if m]
    times = {(s, pe, impl): [] for s, pe in runs for impl in ["ours"] + modes}
    errors, commands = {}, {}
    with tempfile.TemporaryDirectory(prefix="ropepp_cpu_bench_") as tmp:
        for rnd in range(a.rounds):
            for s, pe in runs:   # interleaved: ours, then PyTorch, for each shape in turn, every round
                res, cmd = run_ours(s, pe, a, tmp, env)
                commands[(s, pe, "ours")] = " ".join(shlex.quote(x) for x in cmd)
                times[(s, pe, "ours")] += res.get("ms", [])
                if "error" in res:
                    errors[(s, pe, "ours")] = res["error"]
                res, cmd = run_torch(s, pe, a, env)
                commands[(s, pe, "torch")] = " ".join(shlex.quote(x) for x in cmd)
                for m, rec in res.items():
                    times.setdefault((s, pe, m), [])
                    times[(s, pe, m)] += rec.get("ms", [])
                    if "error" in rec:
                        errors[(s, pe, m)] = rec["error"]
                med = {k[2]: statistics.median(v) for k, v in times.items() if k[:2] == (s, pe) and v}
                print(f"round {rnd + 1}/{a.rounds} {s:6s} {pe:10s} " +
                      "  ".join(f"{k} {v:8.1f} ms" for k, v in med.items()), flush=True)
                write_results(a, envinfo, runs, modes, times, errors, commands, f"after round {rnd + 1}, {s} {pe}")
    write_results(a, envinfo, runs, modes, times, errors, commands, "complete")


def write_results(a, envinfo, runs, modes, times, errors, commands, progress):
    """results.md and results.json from what has been measured so far (rewritten after every run)"""
    envinfo["loadavg_end"] = open("/proc/loadavg").read().strip()
    envinfo["progress"] = progress
    rows = []
    for s, pe in runs:
        C, L, H, KV, F, V, B, T, _ = SHAPES[s]
        row = {"shape": s, "pe": pe, "dims": dict(C=C, L=L, H=H, KV=KV, F=F, V=V, B=B, T=T)}
        for impl in ["ours"] + modes:
            v = times.get((s, pe, impl), [])
            row[impl] = {"ms_median": statistics.median(v) if v else None, "n_steps": len(v),
                         "ms": [round(x, 2) for x in v], "error": errors.get((s, pe, impl))}
        rows.append(row)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"env": envinfo, "rows": rows,
                   "run_commands": {" ".join(k): v for k, v in commands.items()}}, f, indent=1)
    md = ["# CPU training: ropepp vs PyTorch on the same cores", "",
          f"- date: {envinfo['date_utc']}; CPU: {envinfo['cpu']}, {envinfo['cores']} cores; "
          f"{a.threads} threads for both (OMP_NUM_THREADS)",
          f"- ropepp: git {envinfo['git_commit']}{' (with uncommitted changes)' if envinfo['git_dirty'] else ''}, "
          f"{envinfo['cc']}, matmuls: {envinfo['ropepp_backend'] or 'plain loops'}",
          f"- PyTorch {envinfo['torch']}, float32, eager and torch.compile (bench/train/torch_train.py)",
          f"- command: `{envinfo['command']}`",
          f"- interleaved: {a.rounds} rounds of (ours, eager, compile) per shape; medians over every timed step of "
          f"all rounds (ours {steps_for('small')[0]} / {steps_for('c384')[0]} steps per run after "
          f"{steps_for('small')[1]} / {steps_for('c384')[1]} warm-up, the same for PyTorch). Load average at start "
          f"{envinfo['loadavg_start'].split()[0]}, end {envinfo['loadavg_end'].split()[0]} (other jobs shared "
          f"the cores; interleaving spreads that load over both sides)",
          f"- state of this file: {progress}", "",
          "| shape | pe | ropepp ms/step | PyTorch eager | torch.compile | eager / ours | compile / ours |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["dims"]
        shape = f"C {d['C']}, L {d['L']}, H {d['H']}, KV {d['KV']}, F {d['F']}, V {d['V']}, B {d['B']} x T {d['T']}"
        def cell(impl):
            x = r.get(impl, {}).get("ms_median")
            return f"{x:.1f}" if x else ("failed" if r.get(impl, {}).get("error") else "-")
        def ratio(impl):
            x, o = r.get(impl, {}).get("ms_median"), r["ours"]["ms_median"]
            return f"{x / o:.2f}x" if x and o else "-"
        md.append(f"| {shape} | {r['pe']} | {cell('ours')} | {cell('eager')} | {cell('compile')} | "
                  f"{ratio('eager')} | {ratio('compile')} |")
    md += ["", "Ratios above 1 mean ropepp is faster. Every step: forward, backward, AdamW (PyTorch: fused AdamW, "
           "F.scaled_dot_product_attention; ropepp: the loss read back every step)."]
    for k, e in errors.items():
        md.append(f"- error in {' '.join(k)}: {e[:300]}")
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    if progress == "complete":
        print("\n".join(md))


if __name__ == "__main__":
    main()
