"""ubmd: uncertainty-biased molecular dynamics for active learning of MLIPs, inside LAMMPS."""

__version__ = "0.1.0"
