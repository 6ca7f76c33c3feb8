#!/usr/bin/env bash
# The prepared run for a machine with one NVIDIA GPU (under 8 minutes on an H100), through the
# studio's own code. It needs Python 3.11+ with torch, transformers and accelerate; bitsandbytes and
# hqq (and the transformers the project is tested with) come from wheels carried in .whl/ (ignored
# by git) when the machine lacks them. Fetch them here beforehand, e.g.:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl hqq==0.2.8.post1
# Steps (results on stdout and as JSON in $OUT):
#   1. bench/gpu_loading.py: a random TinyLlama-shaped model (1.1B) loaded in FP16 / Q8 / Q4 / Q2
#      on CUDA: load time and VRAM (target: Q4 under 40% of FP16);
#   2. bench/extraction.py: 2,048 samples x 128 tokens, 3 layers x 3 hooks, against a bare forward
#      to the deepest layer on the same card (targets: > 200 samples/s, >= 0.9x the bare forward),
#      and the bytes/s it wrote against the card-to-pinned-memory copy and the disk
#      (bench/io_limits.py);
#   3. bench/gpu_profile.py: the engine with checkpoints, writes, statistics and top-K turned off
#      one by one: what each costs on the card;
#   4. bench/gpu_checks.py: out-of-memory halving with a batch too large for a capped share of the
#      card, cancel within 2 s, and statistics / top-K counted in pieces equal to whole batches.
set -uo pipefail
OUT="${OUT:-/tmp}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__)"
df -h /tmp | tail -1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
status=0
# Each step runs whatever the one before it did; its whole log is in $OUT.
timeout 170 python3 bench/gpu_loading.py --device cuda --json "$OUT/gpu_loading.json" 2>&1 \
  | grep -v "it/s]" | tee "$OUT/gpu_loading.log" || status=1
timeout 150 python3 bench/extraction.py --shape tinyllama --samples 2048 --batch-size 64 --device cuda \
  --skip-memory --io-limits --json "$OUT/gpu_extraction.json" 2>&1 | grep -v "it/s]" \
  | tee "$OUT/gpu_extraction.log" || status=1
timeout 120 python3 bench/gpu_profile.py --json "$OUT/gpu_profile.json" 2>&1 | grep -v "it/s]" \
  | tee "$OUT/gpu_profile.log" || status=1
timeout 120 python3 bench/gpu_checks.py --json "$OUT/gpu_checks.json" 2>&1 | grep -v "it/s]" \
  | tee "$OUT/gpu_checks.log" || status=1
exit $status
