#!/usr/bin/env bash
# Every GPU measurement of docs/gpu.md, in one run on a lent device's bare
# image: its own python3 (torch with CUDA and most of the project's packages), the project
# on PYTHONPATH, and the packages the image lacks installed from benchmarks/device_wheels/
# into a temporary folder (no network there). From the repository root:
#
#   bash benchmarks/gpu_device_check.sh            # every part, most valuable first
#   PARTS="train_bumps sampling" bash benchmarks/gpu_device_check.sh
#
# Parts, each under its own time cap (CAP_<part>, seconds), so a slow one cannot starve
# the rest; written budget on an H100 (FLOPs and passes per part against its measured rate):
#   train_bumps   paper-bumps training, 3 loops x 6 windows x 100 steps at batch 128   cap 150 s
#   train_shapes  paper-shapes training, the same                                      cap 150 s
#   sampling      the paper-bumps store, forks and the information estimate           cap 120 s
#   resume        the bit-exact resume test                                            cap  60 s
#   total with the preflight and start-up: <= 8 min (480 s).
# Results, at most 8 files, in $OUT (default gpu-check-results/): summary.txt (one line a
# part), device.txt, logs.tar.gz (every part's log). The exit status is the sum of 2^i over
# the parts that failed or ran out of time (i: the part's place in PARTS); 64 when the
# preflight fails, before any part runs.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-gpu-check-results}
PARTS=${PARTS:-train_bumps train_shapes sampling resume}
PYTHON=${PYTHON:-python3}
WHEELS="$ROOT/benchmarks/device_wheels"
CARRIED=$(mktemp -d)
LOGS=$(mktemp -d)
trap 'rm -rf "$CARRIED" "$LOGS"' EXIT
export PYTHONPATH="$ROOT/src:$CARRIED${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
: > "$OUT/summary.txt"

# --- preflight: the interpreter, CUDA (unless DEVICE_CHECK_CPU=1: the CPU rehearsal), every import
"$PYTHON" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" --target "$CARRIED" \
  jsonschema jsonschema-specifications referencing rpds-py > "$LOGS/carried.log" 2>&1 \
  || { echo "error: the carried wheels do not install for $("$PYTHON" -V 2>&1) (see $OUT/logs.tar.gz)" | tee -a "$OUT/summary.txt"; tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .; exit 64; }
if ! "$PYTHON" - > "$OUT/device.txt" 2> "$LOGS/preflight.log" <<'PY'
import importlib, os, sys
missing = []
for name in ("torch", "numpy", "pandas", "pyarrow", "yaml", "tqdm", "safetensors", "scipy", "sklearn",
             "matplotlib", "PIL", "pytest", "xdist", "jsonschema", "latent_abstractions.pipeline.params"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # any failure to import is a missing package here
        missing.append(f"{name} ({type(exc).__name__})")
if missing:
    sys.exit(f"error: missing on this interpreter and not among the carried wheels: {', '.join(missing)}")
import torch
if not torch.cuda.is_available() and os.environ.get("DEVICE_CHECK_CPU") != "1":
    sys.exit("error: no CUDA device: torch.cuda.is_available() is False; nothing was measured")
print(sys.version.split()[0], torch.__version__, torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (rehearsal)")
PY
then
  tail -n 1 "$LOGS/preflight.log" | tee -a "$OUT/summary.txt"
  tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
  exit 64
fi

run_part() {  # run_part NAME COMMAND...: under CAP_NAME seconds; a line in summary.txt
  local name=$1; shift
  local cap_variable="CAP_$name" started=$SECONDS
  local cap=${!cap_variable:-$1}; shift
  timeout --kill-after=10 "$cap" "$@" > "$LOGS/$name.log" 2>&1
  local status=$?
  local said="exit $status"
  [ "$status" -eq 124 ] || [ "$status" -eq 137 ] && said="out of time (cap $cap s)"
  echo "$name: $said, $((SECONDS - started)) s, $(tail -n 1 "$LOGS/$name.log")" | tee -a "$OUT/summary.txt"
  return $status
}

failed=0
index=0
for part in $PARTS; do
  case $part in
    train_bumps) run_part train_bumps 150 env MODELS=paper-bumps "$PYTHON" "$ROOT/benchmarks/gpu_train.py" ;;
    train_shapes) run_part train_shapes 150 env MODELS=paper-shapes "$PYTHON" "$ROOT/benchmarks/gpu_train.py" ;;
    sampling) run_part sampling 120 "$PYTHON" "$ROOT/benchmarks/gpu_sampling.py" ;;
    resume) run_part resume 60 env RESUME_ON_GPU=1 "$PYTHON" -m pytest -q -n0 -p no:cacheprovider "$ROOT/tests/test_resume.py" -k bit_exact ;;
    *) echo "unknown part $part (train_bumps train_shapes sampling resume)" | tee -a "$OUT/summary.txt"; false ;;
  esac || failed=$((failed + (1 << index)))
  index=$((index + 1))
done
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
exit $failed
