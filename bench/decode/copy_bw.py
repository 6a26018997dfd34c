#!/usr/bin/env python3
# bench/decode/copy_bw.py -- the GPU's achievable memory bandwidth, for the decoding floor of bench/decode/run.sh:
# a device-to-device copy of --gib GiB (torch's copy_, the cudaMemcpy path), timed with CUDA events over --reps
# copies after 3 warm-up ones; bandwidth = (bytes read + bytes written) / time. One JSON line.
#   python3 bench/decode/copy_bw.py [--gib 2] [--reps 20]
import argparse
import json

import torch

p = argparse.ArgumentParser(description="device-to-device copy bandwidth")
p.add_argument("--gib", type=float, default=2.0)
p.add_argument("--reps", type=int, default=20)
a = p.parse_args()
n = int(a.gib * 2**30)
x = torch.empty(n, dtype=torch.uint8, device="cuda").fill_(1)
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
e0.record()
for _ in range(a.reps):
    y.copy_(x)
e1.record()
e1.synchronize()
ms = e0.elapsed_time(e1) / a.reps
print(json.dumps({"impl": "copy", "bytes": n, "ms": ms, "bw_bytes_s": 2 * n / (ms * 1e-3),
                  "device": torch.cuda.get_device_name()}), flush=True)
