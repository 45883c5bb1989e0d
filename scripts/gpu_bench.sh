#!/usr/bin/env bash
# The GPU pass, for a machine with an NVIDIA GPU and CUDA torch: the CUDA tests, the GPU rows
# of the inference benchmarks, the training-step benchmarks (which train on the GPU) and the
# HTTP service benchmark (its "auto" backend picks the GPU).
# Usage: scripts/gpu_bench.sh [OUT]   (default .benchmarks/gpu; PYTHON=... picks the interpreter)
# Writes OUT/env.txt, OUT/run.log, OUT/inference.json, OUT/training.json, OUT/service.json; then
#   python -m bench report OUT/*.json --out docs/benchmarks-gpu.md
# Each stage has a time limit (scaled by GANRT_GPU_TIME, default 1) so one stuck stage cannot
# eat the others; a failing stage is logged and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-.benchmarks/gpu}
SCALE=${GANRT_GPU_TIME:-1}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
log="$OUT/run.log"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  "$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  "$PY" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
  "$PY" -c 'from infer.runners import available_backends; print("ganrt backends:", available_backends())'
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 seconds
  seconds=$(awk "BEGIN {print int($2 * $SCALE)}")
  shift 2
  echo "=== $name (limit ${seconds} s) ===" | tee -a "$log"
  local t0=$SECONDS
  timeout "$seconds" "$@" 2>&1 | tee -a "$log"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s ===" | tee -a "$log"
}

stage "CUDA tests" 90 "$PY" -m pytest -q -p no:cacheprovider -rs -m gpu tests/test_runners.py tests/test_export.py
stage "inference benchmarks (GPU rows)" 300 "$PY" -m pytest -q -p no:cacheprovider -rs -m gpu \
  bench/bench_inference.py --benchmark-only --benchmark-json="$OUT/inference.json"
stage "training-step benchmarks" 120 "$PY" -m pytest -q -p no:cacheprovider -rs \
  bench/bench_training.py --benchmark-only --benchmark-json="$OUT/training.json"
stage "HTTP service benchmark" 150 "$PY" -m pytest -q -p no:cacheprovider -rs \
  bench/bench_service.py --benchmark-only --benchmark-json="$OUT/service.json"
