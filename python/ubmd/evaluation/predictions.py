"""A model file on labelled structures, frame by frame through the ASE calculator (what MD runs):
:func:`evaluate_model_file` (``ubmd evaluate``) gives the errors and the quality of the
calibrated uncertainties, and with an output directory writes every structure's predictions
(``predictions.extxyz``), parity plots (``parity.png``), reliability and uncertainty-vs-error
plots and ``evaluation.json``, whose ``units`` and ``explain`` entries give the unit and the
meaning of every number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.units import GPa
from tqdm.auto import tqdm

from ..calculator import UBMDCalculator
from ..data import frame_labels, naming_structure, no_labels_message, write_structures

#: names of the predictions and reference labels in ``predictions.extxyz`` (``info`` for
#: per-structure values, ``arrays`` for per-atom ones)
PRED, REF = "ubmd_", "REF_"

#: unit of every number of :func:`evaluate_model_file`'s result (uncertainty summaries: their
#: errors and uncertainties in the units of ``uncertainty_total``/``uncertainty_atomic``)
UNITS = {"energy_rmse": "eV/atom", "energy_mae": "eV/atom", "forces_rmse": "eV/Å",
         "forces_mae": "eV/Å", "forces_max": "eV/Å", "stress_rmse": "eV/Å^3",
         "stress_rmse_GPa": "GPa", "uncertainty_total": "eV/atom", "uncertainty_atomic": "eV/Å"}

#: what every key means (written to evaluation.json as ``explain``)
EXPLAIN = {
    "n_structures": "structures evaluated",
    "energy_rmse": "root mean square of (predicted - reference energy) / number of atoms, over "
                   "the structures with an energy label (the campaign log shows it in meV/atom)",
    "energy_mae": "mean absolute (predicted - reference energy) / number of atoms",
    "forces_rmse": "root mean square over all force components of atoms with a force label",
    "forces_mae": "mean absolute force component error",
    "forces_max": "largest absolute force component error",
    "stress_rmse": "root mean square over the 9 stress components of fully periodic structures "
                   "with a stress label (ASE sign: positive = tensile)",
    "stress_rmse_GPa": "stress_rmse in GPa",
    "uncertainty_total": "quality of the calibrated total uncertainty u (eV/atom) against the "
                         "absolute energy error per atom, over the structures",
    "uncertainty_atomic": "quality of the calibrated atomic uncertainties u_i (eV/Å) against "
                          "each atom's RMS force error (over its 3 components), over all atoms",
    "n": "number of (u, |error|) pairs",
    "alpha": "miscoverage level: the calibrated u is the half-width of a 1 - alpha interval",
    "interval": "how u is read: conformal (u is the 1 - alpha half-width) or gaussian (u is a "
                "standard deviation)",
    "target_coverage": "1 - alpha",
    "coverage": "fraction of |error| <= u (ideal: target_coverage)",
    "miscalibration_area": "area between the observed and the ideal coverage curve of central "
                           "Gaussian intervals (0 is ideal, 0.5 the worst)",
    "signed_miscalibration_area": "the same, positive when u is too large (over-confident "
                                  "intervals are negative)",
    "spearman": "rank correlation of u and |error| (1: larger u always means larger error)",
    "nll": "mean Gaussian negative log-likelihood of the errors under sigma implied by u",
    "rmse": "root mean square of |error| (the errors u is compared with)",
    "mae": "mean |error|",
    "rmu": "root mean square of u (the size of the uncertainties; conformal u at alpha 0.05 "
           "is about twice rmse when calibrated)",
}


def evaluate_model_file(model_file: str | Path, frames: Sequence[Atoms] | str | Path,
                        alpha: float = 0.05, out_dir: str | Path | None = None,
                        progress: bool = True, label_keys: dict | None = None) -> dict:
    """Energy (eV/atom), force (eV/Å) and stress (eV/Å^3, also GPa) errors and calibration
    metrics of ``model_file`` on the labelled ``frames`` (ASE Atoms, or a file ASE reads);
    ``alpha``: miscoverage level of the coverage metrics; ``units`` (every key's unit) is part of
    the result. With ``out_dir``: ``evaluation.json`` (the result plus ``explain``, what every
    key means), ``predictions.extxyz`` (every structure with the model's predictions
    ``ubmd_energy`` (eV), ``ubmd_stress`` (Voigt, eV/Å^3), ``ubmd_uncertainty`` (eV/atom) in
    ``info``, ``ubmd_forces`` (eV/Å), ``ubmd_atomic_uncertainty`` (eV/Å) per atom, and the
    labels as ``REF_energy``, ``REF_forces``, ``REF_stress``), ``parity.png`` (predicted
    against reference energy per atom, force components, stress components in GPa) and the
    reliability and uncertainty-vs-error plots of the uncertainties.

    ``label_keys``: ``ubmd.data.get_labels`` key names (energy_key, forces_key, ...); frames
    without any energy or force label under them are an error naming the keys they have; a NaN or
    inf label is an error naming the structure. Constraints of the frames (``FixAtoms`` ...) are
    dropped: the labels are raw calculator forces, so the model's raw forces are compared."""
    if isinstance(frames, (str, Path)):
        from ..data import read_structures

        frames = read_structures(frames)
    keys = label_keys or {}
    labels = frame_labels(frames, keys)
    if frames and not any(lab["energy"] is not None or lab["forces"] is not None for lab in labels):
        raise ValueError(no_labels_message(frames, keys))
    calc = UBMDCalculator(model_file)
    rows = [_predict(calc, atoms, k) for k, atoms in enumerate(
        tqdm(frames, desc="evaluate", disable=not progress, leave=False))]
    out, pairs = _metrics(rows, labels, alpha)
    if out_dir is not None:
        _write(Path(out_dir), frames, rows, labels, out, pairs, alpha)
    return out


def _predict(calc: UBMDCalculator, atoms: Atoms, k: int) -> dict:
    """The model's energy, forces, stress and uncertainties of one structure."""
    b = atoms.copy()
    # the model's own forces and stress: the labels are the raw calculator results, so
    # constraints of the file (FixAtoms of a slab's bottom layers, ...) must not zero them
    b.set_constraint()
    b.calc = calc
    with naming_structure(k, b):
        row = {"energy": b.get_potential_energy(), "forces": b.get_forces().copy(),
               "n": len(b), "stress": b.get_stress(voigt=False).copy() if b.pbc.all() else None}
    res = calc.results
    row["u"] = res.get("uncertainty")
    row["u_atomic"] = None if res.get("atomic_uncertainty") is None else \
        np.asarray(res["atomic_uncertainty"], dtype=float).copy()
    return row


def _metrics(rows: list[dict], labels: list[dict], alpha: float) -> tuple[dict, tuple]:
    """The result dict, and the (u, |error|) pairs of the total and atomic uncertainties."""
    de, df, ds, u_tot, r_tot, u_at, r_at = [], [], [], [], [], [], []
    for row, lab in zip(rows, labels):
        if lab["energy"] is not None:
            de.append((row["energy"] - lab["energy"]) / row["n"])
            if row["u"] is not None:
                u_tot.append(row["u"])
                r_tot.append(abs(de[-1]))
        if lab["forces"] is not None:
            err = row["forces"] - np.asarray(lab["forces"])
            df.append(err)
            if row["u_atomic"] is not None:
                u_at.append(row["u_atomic"])
                r_at.append(np.sqrt((err ** 2).mean(axis=1)))
        if lab["stress"] is not None and row["stress"] is not None:
            ds.append(row["stress"] - lab["stress"])
    out: dict = {"n_structures": len(rows)}
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
        out["stress_rmse_GPa"] = out["stress_rmse"] / GPa
    if u_tot or u_at:
        from ..uncertainty.metrics import summary

        if len(u_tot) > 1:
            out["uncertainty_total"] = summary(np.array(u_tot), np.array(r_tot), alpha)
        if u_at:
            out["uncertainty_atomic"] = summary(np.concatenate(u_at), np.concatenate(r_at), alpha)
    out["units"] = {k: v for k, v in UNITS.items() if k in out}
    return out, (u_tot, r_tot, u_at, r_at)


def explain(result: dict) -> dict:
    """What each key of ``result`` (and of its uncertainty summaries) means."""
    keys = set(result)
    for name in ("uncertainty_total", "uncertainty_atomic"):
        keys |= set(result.get(name) or {})
    return {k: v for k, v in EXPLAIN.items() if k in keys}


def _write(out_dir: Path, frames, rows, labels, out: dict, pairs: tuple, alpha: float) -> None:
    from ..uncertainty.plots import plot_reliability, plot_uncertainty_vs_error
    from .plots import plot_parity

    u_tot, r_tot, u_at, r_at = pairs
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {**out, "explain": explain(out)}
    with open(out_dir / "evaluation.json", "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1, ensure_ascii=False)
    write_structures(out_dir / "predictions.extxyz", prediction_frames(frames, rows, labels))
    plot_parity(rows, labels, out_dir / "parity.png")
    if len(u_tot) > 1:
        plot_reliability(np.array(u_tot), np.array(r_tot), out_dir / "reliability_total.png",
                         alpha, title=f"total uncertainty (n = {len(u_tot)} structures)")
        plot_uncertainty_vs_error(np.array(u_tot), np.array(r_tot),
                                  out_dir / "u_vs_error_total.png", unit="eV/atom", alpha=alpha)
    if u_at:
        plot_reliability(np.concatenate(u_at), np.concatenate(r_at),
                         out_dir / "reliability_atomic.png", alpha,
                         title=f"atomic uncertainty (n = {sum(map(len, u_at))} atoms)")
        plot_uncertainty_vs_error(np.concatenate(u_at), np.concatenate(r_at),
                                  out_dir / "u_vs_error_atomic.png", unit="eV/Å", alpha=alpha)


def prediction_frames(frames, rows: list[dict], labels: list[dict]) -> list[Atoms]:
    """Copies of ``frames`` (no calculator) holding the predictions under ``ubmd_*`` and the
    labels under ``REF_*`` (see :func:`evaluate_model_file`)."""
    from ase.stress import full_3x3_to_voigt_6_stress

    out = []
    for atoms, row, lab in zip(frames, rows, labels):
        a = atoms.copy()
        a.calc = None
        a.set_constraint()
        a.info[PRED + "energy"] = float(row["energy"])
        a.arrays[PRED + "forces"] = np.asarray(row["forces"], dtype=float)
        if row["stress"] is not None:
            a.info[PRED + "stress"] = full_3x3_to_voigt_6_stress(row["stress"])
        if row["u"] is not None:
            a.info[PRED + "uncertainty"] = float(row["u"])
        if row["u_atomic"] is not None:
            a.arrays[PRED + "atomic_uncertainty"] = row["u_atomic"]
        if lab["energy"] is not None:
            a.info[REF + "energy"] = float(lab["energy"])
        if lab["forces"] is not None:
            a.arrays[REF + "forces"] = np.asarray(lab["forces"], dtype=float)
        if lab["stress"] is not None:
            a.info[REF + "stress"] = full_3x3_to_voigt_6_stress(np.asarray(lab["stress"]))
        out.append(a)
    return out
