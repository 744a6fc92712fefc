"""Evaluate a model file on labelled structures: errors, uncertainty quality, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from .calculator import UBMDCalculator
from .data import frame_labels, naming_structure, no_labels_message


def evaluate_model_file(model_file: str | Path, frames: Sequence[Atoms], alpha: float = 0.05,
                        out_dir: str | Path | None = None, progress: bool = True,
                        label_keys: dict | None = None) -> dict:
    """Energy (eV/atom), force (eV/Å) and stress (eV/Å^3) errors and calibration metrics.

    ``label_keys``: ``ubmd.data.get_labels`` key names (energy_key, forces_key, ...); frames
    without any energy or force label under them are an error naming the keys they have; a NaN or
    inf label is an error naming the structure. Constraints of the frames (``FixAtoms`` ...) are
    dropped: the labels are raw calculator forces, so the model's raw forces are compared."""
    keys = label_keys or {}
    labels = frame_labels(frames, keys)
    if frames and not any(lab["energy"] is not None or lab["forces"] is not None for lab in labels):
        raise ValueError(no_labels_message(frames, keys))
    calc = UBMDCalculator(model_file)
    de, df, ds, u_tot, r_tot, u_at, r_at = [], [], [], [], [], [], []
    for k, (atoms, lab) in enumerate(tqdm(zip(frames, labels), total=len(frames),
                                          desc="evaluate", disable=not progress, leave=False)):
        b = atoms.copy()
        # the model's own forces and stress: the labels are the raw calculator results, so
        # constraints of the file (FixAtoms of a slab's bottom layers, ...) must not zero them
        b.set_constraint()
        b.calc = calc
        with naming_structure(k, b):
            e = b.get_potential_energy()
            f = b.get_forces()
        n = len(b)
        if lab["energy"] is not None:
            de.append((e - lab["energy"]) / n)
            if "uncertainty" in calc.results:
                u_tot.append(calc.results["uncertainty"])
                r_tot.append(abs(e - lab["energy"]) / n)
        if lab["forces"] is not None:
            err = f - np.asarray(lab["forces"])
            df.append(err)
            if "atomic_uncertainty" in calc.results:
                u_at.append(calc.results["atomic_uncertainty"])
                r_at.append(np.sqrt((err ** 2).mean(axis=1)))
        if lab["stress"] is not None and b.pbc.all():
            s = b.get_stress(voigt=False)
            ds.append(s - lab["stress"])
    out: dict = {"n_structures": len(frames)}
    if de:
        e = np.array(de)
        out.update(energy_rmse=float(np.sqrt((e ** 2).mean())), energy_mae=float(np.abs(e).mean()))
    if df:
        f = np.concatenate(df)
        out.update(forces_rmse=float(np.sqrt((f ** 2).mean())), forces_mae=float(np.abs(f).mean()),
                   forces_max=float(np.abs(f).max()))
    if ds:
        s = np.array(ds)
        out.update(stress_rmse=float(np.sqrt((s ** 2).mean())))
    if u_tot or u_at:
        from .uncertainty.metrics import summary

        if len(u_tot) > 1:
            out["uncertainty_total"] = summary(np.array(u_tot), np.array(r_tot), alpha)
        if u_at:
            out["uncertainty_atomic"] = summary(np.concatenate(u_at), np.concatenate(r_at), alpha)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "evaluation.json", "w") as fh:
            json.dump(out, fh, indent=1)
        from .uncertainty.plots import plot_reliability, plot_uncertainty_vs_error

        if len(u_tot) > 1:
            plot_reliability(np.array(u_tot), np.array(r_tot), out_dir / "reliability_total.png", alpha)
            plot_uncertainty_vs_error(np.array(u_tot), np.array(r_tot),
                                      out_dir / "u_vs_error_total.png", unit="eV/atom", alpha=alpha)
        if u_at:
            plot_reliability(np.concatenate(u_at), np.concatenate(r_at),
                             out_dir / "reliability_atomic.png", alpha)
            plot_uncertainty_vs_error(np.concatenate(u_at), np.concatenate(r_at),
                                      out_dir / "u_vs_error_atomic.png", unit="eV/Å", alpha=alpha)
    return out
