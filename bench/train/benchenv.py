# bench/train/benchenv.py -- the machine a benchmark ran on (date, GPU, driver, CUDA, PyTorch, git), for the
# results files of bench/train and bench/decode.  No third-party imports besides an optional torch.
import datetime
import json
import os
import platform
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def sh(cmd):
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30, cwd=REPO)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def collect_env():
    env = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "host_cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "python": platform.python_version()}
    smi = sh("nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader")
    if smi:
        parts = [p.strip() for p in smi.splitlines()[0].split(",")]
        env.update(gpu=parts[0], driver=parts[1] if len(parts) > 1 else "",
                   gpu_memory=parts[2] if len(parts) > 2 else "", gpu_max_sm_clock=parts[3] if len(parts) > 3 else "")
    else:
        env.update(gpu="none (CPU run)", driver="")
    nv = sh("nvcc --version")
    env["nvcc"] = nv.splitlines()[-2].strip() if nv.count("\n") >= 1 else ""
    try:
        import torch
        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda or ""
        env["cudnn"] = str(torch.backends.cudnn.version() or "")
    except Exception as e:  # noqa: BLE001 -- torch missing or broken: the C side still reports
        env["torch"] = f"unavailable ({type(e).__name__})"
    env["git_commit"] = sh("git rev-parse --short HEAD") or "n/a"
    dirty = sh("git status --porcelain --untracked-files=no")
    env["git_dirty"] = bool(dirty) if env["git_commit"] != "n/a" else None
    return env


def env_lines(env):
    """Markdown bullet lines describing env."""
    git = env.get("git_commit", "n/a") + (" (with uncommitted changes)" if env.get("git_dirty") else "")
    return [f"- date: {env.get('date_utc')}",
            f"- GPU: {env.get('gpu')} (driver {env.get('driver') or 'n/a'}, {env.get('gpu_memory', '')}), "
            f"CPU: {env.get('cpu_count')} cores",
            f"- CUDA: {env.get('nvcc') or 'n/a'} (nvcc), PyTorch {env.get('torch')} (CUDA {env.get('torch_cuda', 'n/a')}, "
            f"cuDNN {env.get('cudnn', 'n/a')}), Python {env.get('python')}",
            f"- code: git {git}"]


if __name__ == "__main__":
    print(json.dumps(collect_env(), indent=1))


def load_jsonl(path):
    """The JSON objects of a log file, one per line starting with '{'; a missing file or a torn line gives fewer."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out
