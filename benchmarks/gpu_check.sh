#!/usr/bin/env bash
# The CUDA backend on a real GPU, in one call (a lent device has ~15 minutes in all), the
# correctness first:
#   1. the device and the software it has (nvidia-smi, numba-cuda, PyTorch, cuDNN);
#   2. pytest tests_cuda on the GPU, verbose (a cut-off run still names what passed):
#      the gated cells' and layers' path first (it has never run on a GPU), then every
#      recurrence form of the tanh cell;
#   3. cuda_microbench.py: launch cost, shared-memory opt-in, fastrnn's products vs cuBLAS;
#   4. cuda_vs_cudnn.py at the issue's two sizes, float32, every form that fits.
# Steps 2-4 take at most 240 + 120 + 150 s.
# Everything is written under $OUT (default /tmp/gpu_check) and tee'd, so partial output comes
# back even when a step runs past its time limit. The project is used from this checkout
# (PYTHONPATH), with whatever numba-cuda and PyTorch the machine has: nothing is installed.
#
# The lent H200's image (2026-12) has numpy 2.5, which its numba-cuda 0.30.4 cannot import:
# carry numpy 2.4.6 as a wheel in .whl/ (ignored by git; `carry: [".whl"]`), fetched here with
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl numpy==2.4.6
#
# Dry run without a GPU (tiny sizes, Numba's simulator):
#   NUMBA_ENABLE_CUDASIM=1 GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh
#
# Usage: bash benchmarks/gpu_check.sh [-h|--help]; it takes no other argument (the environment
# variables OUT, PYTHON and GPU_CHECK_TINY above are its settings).
set -uo pipefail
usage() {  # this header comment, without its "# "
    sed -n '2,/^set /{/^#/{s/^# \{0,1\}//;p}}' "$0"
}
if [ $# -eq 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; }; then
    usage
    exit 0
elif [ $# -gt 0 ]; then
    echo "gpu_check.sh: unexpected argument(s) $(printf "'%s' " "$@")(it takes none but" \
         "-h/--help, which prints what it runs)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
# Wheels carried in .whl/ (e.g. a numpy that the machine's numba-cuda can import: numba-cuda
# 0.30.4 fails on numpy 2.5, which removed np.row_stack) go first on the path.
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
        --format=csv 2>&1 || true
    $PY - <<'EOF'
import importlib.metadata as m
for name in ("numba", "numba-cuda", "numpy", "torch", "cuda-python", "cuda-bindings"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "not installed")
try:
    import torch
    print("cudnn", torch.backends.cudnn.version(), "cuda available", torch.cuda.is_available())
except Exception as e:
    print("torch:", e)
EOF
} 2>&1 | tee "$OUT/env.txt"

if [ -n "${GPU_CHECK_TINY:-}" ]; then
    micro=(--tiny); sizes=(--sizes 2,6,3 --torch-device cpu --chunks 2 --repeats 1 --without-torch)
    tests=(tests_cuda/test_cuda_kernels.py -k "matmul and float32")
else
    micro=(); sizes=(--chunks 5 --repeats 3)
    tests=(tests_cuda/test_cuda_cells.py tests_cuda/test_cuda_kernels.py)
fi

echo "== tests_cuda" | tee "$OUT/tests.log"
timeout 240 $PY -m pytest "${tests[@]}" -v -p no:cacheprovider -rfE --durations=5 2>&1 \
    | tee -a "$OUT/tests.log"

echo "== microbenchmarks" | tee "$OUT/micro.log"
timeout 120 $PY benchmarks/cuda_microbench.py "${micro[@]}" --json "$OUT/micro.json" 2>&1 \
    | tee -a "$OUT/micro.log"

echo "== cuda_vs_cudnn" | tee "$OUT/bench.log"
timeout 150 $PY benchmarks/cuda_vs_cudnn.py "${sizes[@]}" --json "$OUT/bench.json" 2>&1 \
    | tee -a "$OUT/bench.log"
