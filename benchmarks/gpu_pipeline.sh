#!/usr/bin/env bash
# benchmarks/gpu_pipeline.py on a CUDA machine that has Python, torch and CUDA but not this project's
# environment: the project's other dependencies travel as wheels in .whl/ (the versions of the
# project's .venv, for the machine's Python), installed into /tmp/site; the machine's torch is used.
#   bash benchmarks/gpu_pipeline.sh [--scale 0.005] [--budget-s 560]   (results under $OUT)
set -u
cd "$(dirname "$0")/.."
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
# The machine's transformers (imported by diffusers through peft) pins huggingface_hub below 2:
# keep the machine's own huggingface_hub rather than the carried one.
rm -rf /tmp/site/huggingface_hub /tmp/site/huggingface_hub-*
# The repository root stands in for the editable install of the project's venv: the suite's
# subprocesses run stage scripts by path, from other folders.
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
if ! command -v python >/dev/null; then
  mkdir -p /tmp/bin && ln -sf "$(command -v python3)" /tmp/bin/python && export PATH=/tmp/bin:$PATH
fi
echo "wheels installed in $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m benchmarks.gpu_pipeline --out "${OUT:-/tmp/gpu_pipeline}" "$@"
