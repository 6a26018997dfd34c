#!/usr/bin/env python3
# bench/train/make_shard.py -- a shard of random tokens in llm.c's format (docs/FORMATS.md), for speed runs:
# 256 int32 header (magic 20240520 = uint16 tokens, version 1, token count), then the tokens as uint16.
#   python3 bench/train/make_shard.py --vocab 50304 --tokens 2000000 --out /tmp/rand_50304.bin
import argparse
import random
import struct
import sys
from array import array


def main():
    p = argparse.ArgumentParser(description="write a uint16 token shard of uniformly random tokens < vocab")
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    if not 2 <= a.vocab <= 65536 or not 1 <= a.tokens < 2**31:
        sys.exit("error: vocab must be in [2, 65536] (uint16 shard) and tokens in [1, 2^31)")
    raw = random.Random(a.seed).getrandbits(32 * a.tokens).to_bytes(4 * a.tokens, "little")
    toks = array("H", (x % a.vocab for x in array("I", raw)))   # 32 random bits mod vocab: bias < 2e-5
    if sys.byteorder != "little":
        toks.byteswap()
    header = struct.pack("<256i", 20240520, 1, a.tokens, *([0] * 253))
    with open(a.out, "wb") as f:
        f.write(header)
        f.write(toks.tobytes())
    print(f"wrote {a.out}: {a.tokens} random tokens < {a.vocab}")


if __name__ == "__main__":
    main()
