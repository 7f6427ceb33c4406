#!/usr/bin/env bash
# Every GPU measurement of the GPU section of the README, in one run on a lent device,
# each part's output kept under $OUT (default: gpu-check-results/). From the repository
# root, after `make install` (or with a CUDA build of torch in .venv):
#
#   bash benchmarks/gpu_device_check.sh                 # training, sampling, resume (~8 min)
#   PARTS=study bash benchmarks/gpu_device_check.sh     # the gpu-check study end to end (<= 6 min)
#
# PARTS picks from: train sampling resume study (default: the first three).
set -uo pipefail
OUT=${OUT:-gpu-check-results}
PARTS=${PARTS:-train sampling resume}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.csv" 2>&1
"$PYTHON" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" > "$OUT/torch.txt" 2>&1

timed() {  # timed NAME COMMAND...: its output in $OUT/NAME.log, its wall time in $OUT/NAME.seconds
  local name=$1; shift
  local started=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  local status=$?
  echo $((SECONDS - started)) > "$OUT/$name.seconds"
  echo "$name: exit $status, $((SECONDS - started)) s, $(tail -n 1 "$OUT/$name.log")"
}

for part in $PARTS; do
  case $part in
    train) timed gpu_train "$PYTHON" benchmarks/gpu_train.py ;;
    sampling) timed gpu_sampling "$PYTHON" benchmarks/gpu_sampling.py ;;
    resume) RESUME_ON_GPU=1 timed resume_on_gpu "$PYTHON" -m pytest -q -n0 tests/test_resume.py -k bit_exact ;;
    study)
      cp params.yaml "$OUT/params.yaml.before"
      cp workflow/configs/gpu-check.yaml params.yaml
      timed study bash -c "make dvc.yaml && make run"
      mkdir -p "$OUT/study"
      cp data/findings.md "$OUT/study/" 2>/dev/null
      for file in data/*/*metrics*.json; do cp "$file" "$OUT/study/$(dirname "$file" | tr / _)_$(basename "$file")"; done
      cp "$OUT/params.yaml.before" params.yaml ;;
    *) echo "unknown part $part (train sampling resume study)"; exit 2 ;;
  esac
done
