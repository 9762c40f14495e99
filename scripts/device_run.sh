#!/usr/bin/env bash
# The prepared run for a GPU machine: the tests that need the device, `tas-eval run --model ours_saf`
# on it, and the speed of the trained baselines at the paper's settings. It writes under $OUT:
#   env.txt           python, torch and the device
#   device_tests.txt  the device tests of tests/integration/test_run.py (inference on the device the results name)
#   run_ours_saf.txt  the run's summary
#   results.tar       the run's results folder (<dataset>/split1/ours_saf and _reference)
#   speed.txt         benchmarks/models_speed.py: training steps/s, real-time factor, batched windows vs a loop
# Every step runs even if one before it failed; the exit status is 1 if any failed.
#
#   OUT=DIR DATA=DIR bash scripts/device_run.sh
#     DATA           a built benchmark folder: a GPU machine has no synthesizers to build one
#     DEVICE         cuda (default) or cpu
#     TRAIN_PROFILE  the model's training profile (default small: the paper's 3000 steps of the paper-size
#                    network do not fit a short loan)
#     DRY_RUN=1      the CPU dry run the tests make: tiny training profile, one timed step, a 1 s clip
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the outputs}" "${DATA:?set DATA to a built benchmark folder}"
DEVICE=${DEVICE:-cuda}
if [ "${DRY_RUN:-0}" = 1 ]; then
  TRAIN_PROFILE=${TRAIN_PROFILE:-tiny}; SPEED=(--profile tiny --steps 1 --seconds 1 --models ours_saf,audio_only)
else
  TRAIN_PROFILE=${TRAIN_PROFILE:-small}
  SPEED=(--profile paper --steps 3 --seconds 2 --models ours_saf,audio_only,mono2binaural_text,mono2binaural_visual)
fi
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
work=$(mktemp -d)
failed=0
step() {  # step NAME FILE COMMAND...: run, keep its output in $OUT/FILE, remember a failure
  local name=$1 file=$2; shift 2
  local start=$SECONDS
  "$@" >"$OUT/$file" 2>&1
  local rc=$?
  echo "device_run: $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/$file"
  [ $rc -eq 0 ] || failed=1
}

step environment env.txt python3 -c "
import platform, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| threads', torch.get_num_threads())
print('cuda available', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')
"
step device-tests device_tests.txt env TAS_EVAL_TINY_BUILD="$DATA" python3 -m pytest -q -p no:cacheprovider \
  tests/integration/test_run.py::test_spatialize_runs_on_the_device_the_results_record \
  tests/integration/test_run.py::test_a_trained_baseline_moves_its_networks_to_the_device
step run run_ours_saf.txt env TAS_EVAL_HOME="$work/home" \
  python3 -m tas_eval.cli run --model ours_saf --split 1 --data-root "$DATA" --device "$DEVICE" \
  --train-profile "$TRAIN_PROFILE" --results "$work/results"
tar -C "$work" -cf "$OUT/results.tar" results || failed=1
step speed speed.txt python3 benchmarks/models_speed.py --device "$DEVICE" "${SPEED[@]}"
rm -rf "$work"
exit $failed
