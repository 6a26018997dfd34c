#!/usr/bin/env bash
# test_corpus.sh — data/docs2shards, the long-document corpus builder: the same files listed in another order give
# byte-identical shards and hashes; every document starts with the BOS token 0 and holds its file's bytes; ~1/N
# held out by path hash; binary files are skipped and listed; a missing file is an error with nothing written.
# Run from the repository root (make test).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
T=tests/tmp/test_corpus.$$
mkdir -p "$T/src"
trap 'rm -rf "$T"' EXIT
for i in $(seq 1 40); do printf 'file %d\n%s\n' $i "$(head -c $((i * 37)) ropepp.h)" > "$T/src/f$i.txt"; done
printf 'a\0b' > "$T/src/binary.txt"
ls "$T"/src/* | sort > "$T/list1"
ls "$T"/src/* | sort -r > "$T/list2"
./data/docs2shards --list "$T/list1" --out "$T/a" --val-every 4 > "$T/a.log" 2>&1 || bad "docs2shards failed: $(cat "$T/a.log")"
./data/docs2shards --list - --out "$T/b" --val-every 4 < "$T/list2" > "$T/b.log" 2>&1 || bad "docs2shards from stdin failed"
cmp -s "$T/a_train.bin" "$T/b_train.bin" && cmp -s "$T/a_val.bin" "$T/b_val.bin" && [ "$(grep hash "$T/a.log")" = "$(grep hash "$T/b.log")" ] &&
  ok "the same files in another order give identical shards and hashes" || bad "order changed the output"
ntrain=$(awk -F'\t' '$1 == "train"' "$T/a_files.tsv" | wc -l); nval=$(awk -F'\t' '$1 == "val"' "$T/a_files.tsv" | wc -l)
[ $((ntrain + nval)) -eq 40 ] && [ "$nval" -ge 3 ] && [ "$nval" -le 20 ] && ok "40 text files: $ntrain train, $nval held out (about 1/4 with --val-every 4)" || bad "split $ntrain / $nval"
grep -qP '^skipped-binary\t3\t.*binary.txt$' "$T/a_files.tsv" && ok "the file with a NUL byte is skipped and listed" || bad "binary file not listed as skipped"
# the shards: header 256 int32, then uint16 tokens; count the BOS tokens (0) and check the first document's bytes
bos=$(od -An -v -tu2 -j1024 -w2 "$T/a_train.bin" | awk '$1 == 0' | wc -l)
[ "$bos" -eq "$ntrain" ] && ok "the train shard has one BOS token per document ($bos)" || bad "BOS count $bos, documents $ntrain"
first=$(awk -F'\t' '$1 == "train" { print $3; exit }' "$T/a_files.tsv")
want=$( (printf '0\n'; od -An -v -tu1 -w1 "$first") | awk '{ print $1 }' | tr '\n' ' ')
got=$(od -An -v -tu2 -j1024 -w2 "$T/a_train.bin" | head -n $(( $(wc -c < "$first") + 1 )) | awk '{ print $1 }' | tr '\n' ' ')
[ "$want" = "$got" ] && ok "the first document is BOS then the bytes of $(basename "$first") (sorted first)" || bad "first document differs"
echo "$T/src/missing.txt" >> "$T/list1"
out=$(./data/docs2shards --list "$T/list1" --out "$T/c" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "cannot open" && [ ! -e "$T/c_train.bin" ] && [ ! -e "$T/c_files.tsv" ] && ok "a missing file is an error and nothing is written" || bad "missing file: rc $rc $out"
finish test_corpus
