#!/usr/bin/env python3
# ref/tokenize_hf.py -- tokenize text with a Hugging Face tokenizer (default: Llama-3) into llm.c uint32 shards.
#
# How to run (needs `pip install transformers` and the tokenizer files, i.e. network access or a local copy;
# .jsonl.zst input also needs `pip install zstandard`; not run by the tests):
#   python3 ref/tokenize_hf.py --input corpus.txt --out_dir data/llama3 --prefix corpus
#   python3 ref/tokenize_hf.py --input shard0.jsonl.zst shard1.jsonl.zst --field text \
#       --out_dir data/dclm --prefix dclm --min_tokens 512 --val_tokens 1000000
#   --tokenizer meta-llama/Meta-Llama-3-8B (default; gated on the Hub: `huggingface-cli login` first)
#     or a local folder holding tokenizer.json.
#
# Output: docs/FORMATS.md token shards, magic 20240801 (uint32 tokens), version 1: 256 x int32 header then the
# tokens.  The first --val_tokens tokens go to <prefix>_val_000000.bin, the rest to <prefix>_train_NNNNNN.bin
# (each at most --shard_tokens tokens).  As in the authors' data loader (docs/MATH.md, Data) every document
# starts with BOS (128000 for Llama-3) and gets no EOS; documents shorter than --min_tokens (counting the BOS;
# the authors use 512) are dropped.
# Documents: a .txt file is one document, or one per blank-line-separated block with --txt_split blankline;
# .jsonl / .jsonl.zst files give one document per line (the --field value).

import argparse
import io
import json
import os
import sys

import numpy as np

MAGIC_U32 = 20240801
VERSION = 1


def iter_documents(paths, field, txt_split):
    for path in paths:
        if path.endswith(".jsonl") or path.endswith(".jsonl.zst"):
            if path.endswith(".zst"):
                import zstandard
                fh = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8")
            else:
                fh = open(path, encoding="utf-8")
            with fh:
                for line in fh:
                    line = line.strip()
                    if line:
                        yield json.loads(line)[field]
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            if txt_split == "blankline":
                for block in text.split("\n\n"):
                    if block.strip():
                        yield block
            else:
                yield text


class ShardWriter:
    def __init__(self, out_dir, prefix, shard_tokens, val_tokens):
        self.out_dir, self.prefix = out_dir, prefix
        self.shard_tokens, self.val_left = shard_tokens, val_tokens
        self.buf, self.train_index, self.written = [], 0, []
        os.makedirs(out_dir, exist_ok=True)

    def _write(self, name, tokens):
        h = np.zeros(256, dtype="<i4")
        h[0], h[1], h[2] = MAGIC_U32, VERSION, len(tokens)
        path = os.path.join(self.out_dir, name)
        with open(path, "wb") as f:
            f.write(h.tobytes())
            f.write(np.asarray(tokens, dtype="<u4").tobytes())
        self.written.append((path, len(tokens)))

    def add(self, tokens):
        self.buf.extend(tokens)
        if self.val_left > 0 and len(self.buf) >= self.val_left:
            self._write(f"{self.prefix}_val_000000.bin", self.buf[:self.val_left])
            self.buf = self.buf[self.val_left:]
            self.val_left = 0
        while self.val_left == 0 and len(self.buf) >= self.shard_tokens:
            self._flush_train(self.buf[:self.shard_tokens])
            self.buf = self.buf[self.shard_tokens:]

    def _flush_train(self, tokens):
        self._write(f"{self.prefix}_train_{self.train_index:06d}.bin", tokens)
        self.train_index += 1

    def close(self):
        if self.val_left > 0 and self.buf:
            self._write(f"{self.prefix}_val_000000.bin", self.buf)   # everything fit in the val budget
            self.buf = []
        if self.buf:
            self._flush_train(self.buf)
            self.buf = []


def main(argv=None):
    ap = argparse.ArgumentParser(description="Tokenize text with a HF tokenizer into llm.c uint32 shards.")
    ap.add_argument("--input", nargs="+", required=True, help=".txt, .jsonl or .jsonl.zst files")
    ap.add_argument("--out_dir", required=True)
    ap.add_argument("--prefix", default="data")
    ap.add_argument("--tokenizer", default="meta-llama/Meta-Llama-3-8B", help="Hub name or local folder")
    ap.add_argument("--field", default="text", help="JSON field holding the document text")
    ap.add_argument("--txt_split", choices=["file", "blankline"], default="file")
    ap.add_argument("--min_tokens", type=int, default=0, help="drop documents shorter than this (authors: 512)")
    ap.add_argument("--shard_tokens", type=int, default=100_000_000)
    ap.add_argument("--val_tokens", type=int, default=0, help="tokens for <prefix>_val_000000.bin (0: none)")
    ap.add_argument("--batch_docs", type=int, default=256)
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    bos = tok.bos_token_id
    if bos is None:
        print("tokenize_hf.py: the tokenizer has no BOS token", file=sys.stderr)
        return 1
    writer = ShardWriter(args.out_dir, args.prefix, args.shard_tokens, args.val_tokens)
    n_docs = n_dropped = 0

    def flush(batch):
        nonlocal n_docs, n_dropped
        for ids in tok(batch, add_special_tokens=False)["input_ids"]:
            ids = [bos] + ids
            if len(ids) < args.min_tokens:
                n_dropped += 1
                continue
            n_docs += 1
            writer.add(ids)

    batch = []
    for doc in iter_documents(args.input, args.field, args.txt_split):
        batch.append(doc)
        if len(batch) == args.batch_docs:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    writer.close()
    for path, n in writer.written:
        print(f"{path}: {n:,} tokens")
    print(f"{n_docs:,} documents kept, {n_dropped:,} dropped (< {args.min_tokens} tokens); vocab {len(tok):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
