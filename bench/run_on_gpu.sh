#!/usr/bin/env bash
# One prepared run of bench/gpu_loading.py on a lent CUDA machine (Python 3.12 with torch and
# transformers, but without bitsandbytes or hqq). Beforehand, here, fetch their wheels into .whl/
# (ignored by git) as the device notes describe, e.g.:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl hqq==0.2.8.post1
# then run this script there with .whl carried. Results: stdout and $OUT/gpu_loading.json.
set -euo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 bench/gpu_loading.py --device cuda --json "${OUT:-/tmp}/gpu_loading.json"
