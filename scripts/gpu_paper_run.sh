#!/usr/bin/env bash
# The one prepared run for a GPU machine: the device tests, the benchmark, ours_saf and audio_only trained
# at the TAS paper profile (batch 12, 3000 steps, 1 s crops; bfloat16 autocast, the default on a GPU), the
# test clips of split 1 predicted with hop 0.1 s and evaluated, the references scored against themselves,
# the metric suite timed on the device, and the models' training and inference speed in float32 and
# bfloat16; each stage timed.
#
#   OUT=DIR bash scripts/gpu_paper_run.sh [--dry-run]
#     DATA=DIR       a built benchmark folder (default: build the full profile in a scratch folder, which
#                    needs the synthesizers install.sh installs; a machine without them needs DATA)
#     TINY_DATA=DIR  a tiny build for the device tests where none can be built (the tests' TAS_EVAL_TINY_BUILD)
#     DEVICE         cuda (default) or cpu
#     PRECISION      the models' --precision (default auto: bf16 on a GPU)
#     --dry-run      the check the tests make on a CPU: the tiny benchmark, the tiny training profile, small
#                    timing runs
#
# Under OUT (a few files, as a device loan brings back): env.txt (python, torch, device), timings.tsv (stage,
# seconds, exit status), logs.tar (one log per stage) and results.tar (results/<dataset>/split1/ with
# ours_saf, audio_only and ground_truth). Every stage runs even if one before it failed; the exit status is 1
# if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the outputs}"
if [ "${1:-}" = "--dry-run" ]; then
  PROFILE=tiny; TRAIN=tiny; DEVICE=${DEVICE:-cpu}
  SUITE=(--clips 4 --seconds 2 --sizes 2,4 --ref-clips 2)
  SPEED=(--profile tiny --steps 1 --seconds 1)
else
  PROFILE=full; TRAIN=paper; DEVICE=${DEVICE:-cuda}
  SUITE=(--clips 187 --seconds 10 --sizes 16,64,187 --ref-clips 16)
  SPEED=(--profile paper --steps 5 --seconds 2)
fi
PRECISION=${PRECISION:-auto}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
mkdir -p "$work/logs"
export TAS_EVAL_HOME=${TAS_EVAL_HOME:-$work/home} PYTHONUNBUFFERED=1
printf 'stage\tseconds\texit\n' > "$OUT/timings.tsv"
failed=0
stage() {  # stage NAME COMMAND...: run it, keep its output in logs/NAME.log, time it
  local name=$1; shift
  local start=$SECONDS
  "$@" > "$work/logs/$name.log" 2>&1
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
cp "$work/logs/environment.log" "$OUT/env.txt"
# The tests that need the device: inference where the results say, networks moved, bf16 against float32.
stage device_tests env ${TINY_DATA:+TAS_EVAL_TINY_BUILD="$TINY_DATA"} python3 -m pytest -p no:cacheprovider \
  tests/integration/test_run.py -k "device or bf16" tests/integration/test_train_models.py::test_bf16_autocast_trains_and_spatializes_close_to_float32
if [ -z "${DATA:-}" ]; then
  stage build python3 -m tas_eval.cli data build --profile "$PROFILE" --out "$work/data"
  DATA=$work/data
fi
for model in ours_saf audio_only; do
  stage "$model" python3 -m tas_eval.cli run --model "$model" --split 1 --data-root "$DATA" --device "$DEVICE" \
    --train-profile "$TRAIN" --precision "$PRECISION" --results "$work/results"
done
stage ground_truth python3 -m tas_eval.cli evaluate --ground-truth --split 1 --data-root "$DATA" --device "$DEVICE" \
  --results "$work/results"
# The metric suite on the device against its FFT floor (the reference loop stays on the CPU, on a few clips).
stage metric_suite python3 benchmarks/metrics_speed.py --device "$DEVICE" "${SUITE[@]}"
stage model_speed python3 benchmarks/models_speed.py --device "$DEVICE" --models ours_saf,audio_only \
  --precisions fp32,bf16 "${SPEED[@]}"
tar -C "$work" -cf "$OUT/results.tar" results 2>/dev/null || failed=1
tar -C "$work" -cf "$OUT/logs.tar" logs || failed=1
cat "$OUT/timings.tsv"
rm -rf "$work"
exit $failed
