#!/usr/bin/env bash
# pilot_gate.sh — the task pilot gate of compare v3 (docs/TASK_PILOTS.md): before the seeds, one rope run at the
# chosen size must reach --min (0.40) exact match on passkey and single NIAH at its training length T; if it does
# not, the report's task claims are untested at that budget (not evidence either way).
#
#   scripts/pilot_gate.sh decide CSV --length T [--min A] [--tasks LIST] [--pe PE]
#       reads an `eval tasks` CSV (header pe,scaling,task,length,accuracy,ci_low,ci_high,correct,scored,...); for
#       each task of LIST (passkey,niah_single) the row of PE (rope) at scaling none and length T must have
#       accuracy >= A. Prints one line per task, then "pilot gate: pass" or "pilot gate: fail".
#   scripts/pilot_gate.sh run --out DIR [--train PROG] [--eval PROG] [--min A] [--tasks LIST] [--samples N]
#                             -- TRAIN_FLAGS...
#       trains DIR/run (`PROG --pe rope TRAIN_FLAGS`; TRAIN_FLAGS must give --seq T and a --mix that holds the
#       tasks), evaluates `eval tasks --lengths T --samples N (200) --task-bos --mqar-filler blank` into
#       DIR/eval, decides as above and writes DIR/gate.txt (the decision's lines). A second call with the same DIR
#       resumes the run (train --resume) and reuses a finished evaluation. PROG: ./train and ./eval (default) or
#       ./train_gpu and ./eval_gpu.
# Exit status (as grep): 0 the gate passes, 1 it fails (tasks not learned), 2 an error (bad flags, a missing file
# or row, a failed run). Relative paths are taken from the repository root, as in compare.sh.
set -u -o pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "error: $*" >&2; exit 2; }

MIN=0.40; TASKS=passkey,niah_single; PE=rope; LENGTH=""; OUTDIR=""; TRAIN=./train; EVAL=./eval; SAMPLES=200

# decide CSV: the per-task lines and the verdict on stdout; exit 0 pass, 1 fail, 2 a missing row or file
decide() {
    local csv=$1
    [ -r "$csv" ] || die "cannot read the tasks CSV '$csv' (eval tasks --out DIR writes DIR/tasks_PE.csv)"
    awk -F, -v pe="$PE" -v len="$LENGTH" -v min="$MIN" -v tasks="$TASKS" -v csv="$csv" '
        NR == 1 {
            for (i = 1; i <= NF; i++) col[$i] = i
            split("pe scaling task length accuracy ci_low ci_high correct scored", need, " ")
            for (j in need) if (!(need[j] in col)) { printf "error: %s: no column %s in its header\n", csv, need[j] > "/dev/stderr"; bad = 1; exit }
            next
        }
        $col["pe"] == pe && $col["scaling"] == "none" && $col["length"] == len {
            acc[$col["task"]] = $col["accuracy"]; lo[$col["task"]] = $col["ci_low"]; hi[$col["task"]] = $col["ci_high"]
            right[$col["task"]] = $col["correct"]; n[$col["task"]] = $col["scored"]
        }
        END {
            if (bad) exit 2
            nt = split(tasks, t, ",")
            for (i = 1; i <= nt; i++) if (!(t[i] in acc)) { printf "error: %s: no row for pe %s, task %s, length %s at scaling none\n", csv, pe, t[i], len > "/dev/stderr"; exit 2 }
            fail = 0
            for (i = 1; i <= nt; i++) {
                ok = acc[t[i]] + 0 >= min + 0
                if (!ok) fail = 1
                printf "task %s length %s accuracy %.4f ci %.4f %.4f correct %d of %d: %s (needs >= %s)\n", t[i], len, acc[t[i]], lo[t[i]], hi[t[i]], right[t[i]], n[t[i]], ok ? "learned" : "not learned", min
            }
            printf "pilot gate: %s\n", fail ? "fail (the task claims are untested at this budget)" : "pass"
            exit fail
        }' "$csv"
}

[ $# -ge 1 ] || { usage; exit 2; }
MODE=$1; shift
case "$MODE" in
    -h|--help) usage; exit 0 ;;
    decide|run) ;;
    *) die "unknown mode '$MODE' (decide or run; --help)" ;;
esac
CSV=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        --min|--tasks|--pe|--length|--out|--train|--eval|--samples)
            [ $# -ge 2 ] || die "$1 needs a value"
            case "$1" in
                --min) MIN=$2 ;; --tasks) TASKS=$2 ;; --pe) PE=$2 ;; --length) LENGTH=$2 ;; --out) OUTDIR=$2 ;;
                --train) TRAIN=$2 ;; --eval) EVAL=$2 ;; --samples) SAMPLES=$2 ;;
            esac
            shift 2 ;;
        -*) die "unknown flag '$1' (--help)" ;;
        *) [ "$MODE" = decide ] && [ -z "$CSV" ] || die "unexpected argument '$1' (--help)"; CSV=$1; shift ;;
    esac
done
echo "$MIN" | grep -qE '^(0(\.[0-9]+)?|1(\.0+)?)$' || die "--min must be a fraction in [0, 1] (got '$MIN')"
echo "$SAMPLES" | grep -qE '^[1-9][0-9]*$' || die "--samples must be a positive integer (got '$SAMPLES')"
echo "$TASKS" | grep -qE '^[a-z_]+(,[a-z_]+)*$' || die "--tasks must be a comma-separated list of task names (got '$TASKS')"

if [ "$MODE" = decide ]; then
    [ -n "$CSV" ] || die "decide needs the tasks CSV (--help)"
    echo "$LENGTH" | grep -qE '^[1-9][0-9]*$' || die "decide needs --length T, the training length (got '$LENGTH')"
    decide "$CSV"
    exit $?
fi

# run: the training length is the --seq of the training flags
[ -n "$OUTDIR" ] || die "run needs --out DIR"
[ $# -gt 0 ] || die "run needs the training flags after -- (--seq T --mix ... and the shape)"
prev=""; for a in "$@"; do
    [ "$prev" = --seq ] && LENGTH=$a
    [ "$a" = --pe ] && die "run trains rope; leave --pe out of the training flags"
    prev=$a
done
echo "$LENGTH" | grep -qE '^[1-9][0-9]*$' || die "the training flags must give --seq T (got '$LENGTH')"
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
RUN=$OUTDIR/run; EV=$OUTDIR/eval
if [ -f "$RUN/settings.txt" ]; then
    "$TRAIN" --resume "$RUN" > "$OUTDIR/train.log" 2>&1 || die "training (resumed) failed, see $OUTDIR/train.log"
else
    "$TRAIN" --pe rope "$@" --out "$RUN" --sample 0 > "$OUTDIR/train.log" 2>&1 || die "training failed, see $OUTDIR/train.log"
fi
CKPT=$(ls -t "$RUN"/model_*.ckpt 2>/dev/null | head -n 1)
[ -n "$CKPT" ] || die "training wrote no checkpoint in $RUN, see $OUTDIR/train.log"
if [ ! -s "$EV/tasks_rope.csv" ] || [ "$CKPT" -nt "$EV/tasks_rope.csv" ]; then   # evaluate a new checkpoint only
    "$EVAL" tasks --ckpt "$RUN" --tasks "$TASKS" --lengths "$LENGTH" --samples "$SAMPLES" --task-bos --mqar-filler blank \
        --out "$EV" > "$OUTDIR/eval.log" 2>&1 || die "eval tasks failed, see $OUTDIR/eval.log"
fi
decide "$EV/tasks_rope.csv" > "$OUTDIR/gate.txt"
status=$?
cat "$OUTDIR/gate.txt"
exit $status
