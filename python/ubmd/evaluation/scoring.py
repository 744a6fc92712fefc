"""A run's trained members (``members.pt``, e.g. an AL round's ``train/``) on a test set:
:func:`score_members`, batched in float64, overall and per group of frames (``info["kind"]``: a
state, a region, a temperature), optionally checked against the run's model file; built on
:func:`predict_members` and :func:`error_table`.

Units: energies per atom in meV/atom (``*_meV_atom``), forces in eV/Å, stresses in GPa
(``*_GPa``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.units import GPa

from .. import keys as K
from ..data import GraphDataset, frame_labels
from ..io import RunFiles
from ..model import load_members
from ..prediction import predict
from .predictions import evaluate_model_file


def predict_members(members_file: str | Path, frames: Sequence[Atoms], stress: bool = False,
                    batch_size: int = 50):
    """(energies [n] eV, forces: one [n_atoms, 3] array (eV/Å) per frame, stresses [n, 3, 3]
    (eV/Å^3, ASE sign: positive = tensile) or None) of ``frames`` from the trained members in
    ``members_file``: float64, batched; an ensemble gives the member mean, as its model file."""
    members = load_members(members_file, dtype=torch.float64)
    species = {int(z): k for k, z in enumerate(members[0].atomic_numbers)}
    data = GraphDataset(frames, float(members[0].cutoff), species, dtype=torch.float64)
    energies, forces, stresses = [], [], []
    for batch in data.batches(batch_size):
        e_sum, f_sum, s_sum = 0.0, 0.0, 0.0
        for m in members:
            pred = predict(m, batch, forces=True, virial=stress)
            e_sum = e_sum + pred[K.ENERGY].detach()
            f_sum = f_sum + pred[K.FORCES].detach()
            if stress:
                s_sum = s_sum + pred[K.STRESS].detach()
        energies.append((e_sum / len(members)).numpy())
        counts = batch[K.N_ATOMS].tolist()
        forces.extend(np.split((f_sum / len(members)).numpy(), np.cumsum(counts)[:-1]))
        if stress:
            stresses.append((s_sum / len(members)).numpy())
    return (np.concatenate(energies), forces,
            np.concatenate(stresses).reshape(-1, 3, 3) if stress else None)


def error_table(groups, n_atoms, e_pred, e_ref, f_pred, f_ref, s_pred=None, s_ref=None) -> dict:
    """Errors over all frames (``"all"``) and per group (in the order the groups first appear;
    a group named ``"all"`` is all frames):
    ``energy_rmse_meV_atom``, ``forces_rmse`` and ``forces_max`` (largest |component error|,
    eV/Å), with stresses (eV/Å^3) ``stress_rmse_GPa`` over all 9 components, and ``n``.

    ``groups``: one label per frame; ``n_atoms`` per frame; energies (eV) per frame; forces and
    stresses one array per frame."""
    groups = np.asarray(groups)
    n_atoms = np.asarray(n_atoms, dtype=float)
    de = (np.asarray(e_pred, dtype=float) - np.asarray(e_ref, dtype=float)) / n_atoms
    df = [np.asarray(p, dtype=float) - np.asarray(r, dtype=float) for p, r in zip(f_pred, f_ref)]
    ds = None
    if s_pred is not None:
        ds = (np.asarray(s_pred, dtype=float) - np.asarray(s_ref, dtype=float)).reshape(len(de), 9)
    out = {}
    for key in ["all"] + [g for g in dict.fromkeys(groups.tolist()) if g != "all"]:
        idx = np.arange(len(de)) if key == "all" else np.flatnonzero(groups == key)
        f = np.concatenate([df[i] for i in idx])
        row = {"energy_rmse_meV_atom": 1000 * float(np.sqrt(np.mean(de[idx] ** 2))),
               "forces_rmse": float(np.sqrt(np.mean(f ** 2))), "forces_max": float(np.abs(f).max())}
        if ds is not None:
            row["stress_rmse_GPa"] = float(np.sqrt(np.mean(ds[idx] ** 2))) / GPa
        out[key] = {**row, "n": int(len(idx))}
    return out


def score_members(run_dir: str | Path, frames: Sequence[Atoms], group_key: str | None = None,
                  stress: bool = False, check_model_file: int = 0) -> dict:
    """:func:`error_table` of the members of a training run (``run_dir/members.pt``) on the
    labelled ``frames``, grouped by ``frames[i].info[group_key]`` (None: ``"all"`` only; frames
    without the key: group ``"?"``); ``stress``: also stress errors (periodic frames with stress
    labels).

    ``check_model_file`` > 0: the first that many frames are also run through the run's model
    file (``run_dir/model.pt``, :func:`evaluate_model_file`); ``"check_model_file"`` then holds
    both RMSEs of each quantity (``*_batched``, ``*_model_file``), which agree unless the export
    broke something (to the model file's dtype)."""
    run_dir = Path(run_dir)
    labels = frame_labels(frames)
    e_pred, f_pred, s_pred = predict_members(RunFiles(run_dir).members, frames, stress=stress)
    refs = ([lab["energy"] for lab in labels], [lab["forces"] for lab in labels],
            [lab["stress"] for lab in labels] if stress else None)
    groups = [a.info.get(group_key, "?") if group_key else "all" for a in frames]
    res = error_table(groups, [len(a) for a in frames], e_pred, refs[0], f_pred, refs[1],
                      s_pred, refs[2])
    if check_model_file > 0:
        k = min(int(check_model_file), len(frames))
        mine = error_table(["x"] * k, [len(a) for a in frames[:k]], e_pred[:k], refs[0][:k],
                           f_pred[:k], refs[1][:k], None if s_pred is None else s_pred[:k],
                           None if refs[2] is None else refs[2][:k])["all"]
        ref = evaluate_model_file(RunFiles(run_dir).model, frames[:k], progress=False)
        check = {"energy_rmse_meV_atom_batched": mine["energy_rmse_meV_atom"],
                 "energy_rmse_meV_atom_model_file": 1000 * ref["energy_rmse"],
                 "forces_rmse_batched": mine["forces_rmse"],
                 "forces_rmse_model_file": ref["forces_rmse"]}
        if stress:
            check.update(stress_rmse_GPa_batched=mine["stress_rmse_GPa"],
                         stress_rmse_GPa_model_file=ref.get("stress_rmse", np.nan) / GPa)
        res["check_model_file"] = check
    return res
