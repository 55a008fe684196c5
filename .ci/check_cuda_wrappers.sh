#!/usr/bin/env bash
# The torch-side CUDA wrappers (csrc/cuda/) only build where torch has CUDA. Without one, check
# them with the host compiler against the CPU torch's headers and the CUDA toolkit's headers.
# The CPU wheel lacks one generated c10 header; an empty stand-in is enough to parse.
set -euo pipefail
python=${1:-python3}
cuda_include=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")/include
[ -f "$cuda_include/cuda_runtime_api.h" ] || cuda_include=$(ls -d /usr/local/cuda*/include | head -n 1)
torch_include=$("$python" -c "import torch.utils.cpp_extension as c; print(' '.join('-I' + p for p in c.include_paths()))")
py_include=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
stub=$(mktemp -d)
trap 'rm -rf "$stub"' EXIT
mkdir -p "$stub/c10/cuda/impl"
touch "$stub/c10/cuda/impl/cuda_cmake_macros.h"
for f in csrc/cuda/*.cpp; do
  echo "syntax check: $f"
  g++ -fsyntax-only -std=c++20 -DFASTADV_WITH_CUDA -I"$stub" $torch_include -I"$cuda_include" \
    -I"$py_include" "$f"
done
