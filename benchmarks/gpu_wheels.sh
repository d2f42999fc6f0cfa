#!/usr/bin/env bash
# Wheels of this environment's dependency versions for a GPU machine that has Python, torch and CUDA
# but not this project's environment: benchmarks/gpu_pipeline.sh installs them there from .whl/.
# Left out is what such a machine has built for its own Python (torch and its CUDA libraries, numpy,
# matplotlib and the imaging stack, pytest); a package published only as source is built into a
# wheel here (pure Python, so it installs anywhere).
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION (3.12)] [DEST (.whl)]
set -euo pipefail
cd "$(dirname "$0")/.."
pyver=${1:-3.12}
dest=${2:-.whl}
mkdir -p "$dest"
skip='^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|numpy|matplotlib|pillow|fonttools|contourpy|kiwisolver|sympy|mpmath|networkx|pytest|pluggy|iniconfig|pygments)=='
reqs=$(.venv/bin/pip freeze --exclude-editable | grep -v -i -E "$skip" | grep '==')
n=0
for req in $reqs; do
  n=$((n + 1))
  if ! .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
       -d "$dest" "$req" 2>/dev/null; then
    .venv/bin/pip wheel -q --no-deps -w "$dest" "$req"
  fi
done
echo "$n requirements, $(ls "$dest"/*.whl | wc -l) wheels in $dest (for CPython $pyver)"
