"""Exploration analysis of walker outputs (LAMMPS logs/dumps, extxyz, ASE traj).

Modules: :mod:`.readers` (file formats), :mod:`.cvs` (collective variables), :mod:`.series`
(CV time series of a file), :mod:`.coverage` (multiscale-grid coverage of a 2-D CV space),
:mod:`.acf` (autocorrelation and the sine model), :mod:`.histograms`, :mod:`.states` (states of a
scalar CV by thresholds, e.g. pore states), :mod:`.plots`.
The command line front end is ``ubmd analyze`` (:mod:`ubmd.cli.analyze`).
"""

from .acf import acf, acf_over_runs, fit_sine, model_acf, sine
from .coverage import Coverage, coverage_by_round, coverage_vs_steps, grid_coverage, occupancy
from .cvs import (
    CV,
    angle,
    cell_volume,
    dihedral,
    distance,
    lattice_parameters,
    load_named_cvs,
    n_formula_units,
    parse_cv,
    volume_per_fu,
)
from .histograms import shared_histograms
from .readers import (ThermoLog, detect_format, read_dump_columns, read_frames, read_loop_time,
                      read_thermo_log, read_walker_trace)
from .series import Series, load_series
from .states import classify, state_summary

__all__ = [
    "CV",
    "Coverage",
    "Series",
    "ThermoLog",
    "acf",
    "acf_over_runs",
    "angle",
    "cell_volume",
    "classify",
    "coverage_by_round",
    "coverage_vs_steps",
    "detect_format",
    "dihedral",
    "distance",
    "fit_sine",
    "grid_coverage",
    "lattice_parameters",
    "load_named_cvs",
    "load_series",
    "model_acf",
    "n_formula_units",
    "occupancy",
    "parse_cv",
    "read_dump_columns",
    "read_frames",
    "read_loop_time",
    "read_thermo_log",
    "read_walker_trace",
    "shared_histograms",
    "sine",
    "state_summary",
    "volume_per_fu",
]
