#!/usr/bin/env bash
# One prepared run of the TAS paper profile on a GPU: the benchmark, ours_saf and audio_only trained at
# the paper's settings (batch 12, 3000 steps, 1 s crops), the test clips of split 1 predicted with hop
# 0.1 s and evaluated, the references scored against themselves; each stage timed.
#
#   OUT=DIR bash scripts/gpu_paper_run.sh [--dry-run]
#     DATA=DIR    a built benchmark folder (default: build the full profile under OUT, which needs the
#                 synthesizers install.sh installs; a machine without them needs DATA)
#     DEVICE      cuda (default) or cpu
#     --dry-run   the check the tests make on a CPU: the tiny benchmark, the tiny training profile, the CPU
#
# Under OUT: env.txt (python, torch, device), one log per stage, timings.tsv (stage, seconds, exit status)
# and results/ (the results files of ours_saf, audio_only and the references). Every stage runs even if one
# before it failed; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the outputs}"
if [ "${1:-}" = "--dry-run" ]; then
  PROFILE=tiny; TRAIN=tiny; DEVICE=${DEVICE:-cpu}
else
  PROFILE=full; TRAIN=paper; DEVICE=${DEVICE:-cuda}
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export TAS_EVAL_HOME=${TAS_EVAL_HOME:-$OUT/home} PYTHONUNBUFFERED=1
printf 'stage\tseconds\texit\n' > "$OUT/timings.tsv"
failed=0
stage() {  # stage NAME COMMAND...: run it, keep its output in OUT/NAME.log, time it
  local name=$1; shift
  local start=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%d\t%d\n' "$name" $((SECONDS - start)) $rc >> "$OUT/timings.tsv"
  echo "gpu_paper_run: $name: exit $rc after $((SECONDS - start)) s"
  [ $rc -eq 0 ] || failed=1
}

stage environment python3 -c "
import platform, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| threads', torch.get_num_threads())
print('cuda', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')
"
cp "$OUT/environment.log" "$OUT/env.txt"
if [ -z "${DATA:-}" ]; then
  stage build python3 -m tas_eval.cli data build --profile "$PROFILE" --out "$OUT/data"
  DATA=$OUT/data
fi
for model in ours_saf audio_only; do
  stage "$model" python3 -m tas_eval.cli run --model "$model" --split 1 --data-root "$DATA" --device "$DEVICE" \
    --train-profile "$TRAIN" --results "$OUT/results"
done
stage ground_truth python3 -m tas_eval.cli evaluate --ground-truth --split 1 --data-root "$DATA" --device "$DEVICE" \
  --results "$OUT/results"
cat "$OUT/timings.tsv"
exit $failed
