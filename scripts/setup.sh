#!/usr/bin/env bash
# Create .venv and install ganrt with everything: training/export, serving and test extras.
# torch is pinned first: a bare `torch` requirement would pull a multi-GB CUDA build on a
# machine that has none; the CPU build of the pin installs in seconds where it is cached.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${GANRT_TORCH:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[train,serve,test]"
echo "ganrt installed in $(pwd)/.venv"
