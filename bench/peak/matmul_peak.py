"""bench/peak/matmul_peak.py — the bf16 matmul rate this GPU sustains (cuBLAS through PyTorch), the peak that
train_gpu's MFU is measured against (its --peak-tflops / ROPEPP_PEAK_TFLOPS default).
Run on the GPU machine: python3 bench/peak/matmul_peak.py   (needs torch with CUDA; about 20 s)
Method: C = A @ B for n x n bf16 matrices of random normals (n 4096, 8192, 16384), 10 warm-up products, then the
median of 5 timed groups of 20 products (CUDA events), FLOPs = 2 n^3 per product."""
import json, statistics, subprocess, torch

def rate(n):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(10):
        c = a @ b
    torch.cuda.synchronize()
    groups = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(20):
            c = a @ b
        e.record()
        torch.cuda.synchronize()
        groups.append(20 * 2 * n ** 3 / (s.elapsed_time(e) / 1e3) / 1e12)
    return statistics.median(groups), groups

gpu = torch.cuda.get_device_name(0)
driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
out = {"gpu": gpu, "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda, "tflops": {}}
for n in (4096, 8192, 16384):
    med, groups = rate(n)
    out["tflops"][n] = {"median": round(med, 1), "groups": [round(g, 1) for g in groups]}
    print(f"{gpu}: bf16 {n}^3 matmul {med:.1f} TFLOP/s (groups {', '.join(f'{g:.0f}' for g in groups)})")
print(json.dumps(out))
