"""Fit the uncertainty state on the training split and calibrate it on the validation split."""

from __future__ import annotations

import numpy as np
import torch

from .. import keys as K
from ..config import UncertaintyConfig
from ..keys import ENSEMBLE_FEATURES
from ..data import GraphDataset
from ..prediction import edge_vectors, forces_from_edge_grad, to_dtype
from .calibration import Calibration, atomic_residuals, total_residuals
from .features import FeatureModel
from .heads import HEAD_KINDS, UncertaintyHead, feature_scale, posterior_transform, reduce_rows


def build_feature_model(members, unc: UncertaintyConfig) -> FeatureModel:
    """The feature map of the members for an uncertainty section: the members' atomic energies
    for ensemble uncertainty, else ``unc.features`` (last layer or sketched gradients)."""
    unc = getattr(unc, "uncertainty", unc)  # a whole TrainRunConfig works too
    kind = ENSEMBLE_FEATURES if unc.kind == "ensemble" else unc.features
    return FeatureModel(list(members), kind, unc.n_sketch, unc.sketch_seed)


def dataset_features(fm: FeatureModel, data: GraphDataset, batch_size: int = 32,
                     with_forces: bool = True) -> dict:
    """Detached structure features [B,K], atom features [N,K], atom counts, predictions (on
    the CPU; computed on the feature model's device, without autograd: its ``atomic_state``)."""
    param = fm.members[0].desc_mean
    dtype, device = param.dtype, param.device
    out = {"phi": [], "phi_atoms": [], "n_atoms": [], "energy": [], "forces": []}
    for batch in data.batches(batch_size):
        batch = to_dtype(batch, dtype, device)
        ev = edge_vectors(batch)
        n = batch[K.POSITIONS].shape[0]
        nb = batch[K.N_ATOMS].shape[0]
        with torch.no_grad():
            e_at, _, phi, state = fm.atomic_state(ev, batch[K.EDGE_INDEX], batch[K.SPECIES], n,
                                                  True, True)
            energy = torch.zeros(nb, dtype=e_at.dtype, device=device).index_add(
                0, batch[K.BATCH], e_at)
            if with_forces:
                g = fm.state_gradients(state, e_at[:0])[0]
                out["forces"].append(forces_from_edge_grad(g, batch[K.EDGE_INDEX], n).cpu())
        s = torch.zeros(nb, phi.shape[1], dtype=phi.dtype, device=device).index_add(
            0, batch[K.BATCH], phi)
        if fm.kind != ENSEMBLE_FEATURES:
            s = s / batch[K.N_ATOMS].to(phi.dtype).unsqueeze(-1)
        out["phi"].append(s.cpu())
        out["phi_atoms"].append(phi.cpu())
        out["n_atoms"].append(batch[K.N_ATOMS].cpu())
        out["energy"].append(energy.cpu())
    return {k: (torch.cat(v) if v else None) for k, v in out.items()}


def fit_head(fm: FeatureModel, train: GraphDataset, cfg: UncertaintyConfig) -> UncertaintyHead:
    """Uncertainty state from training-split features only (uncalibrated: c = 1)."""
    kind = cfg.kind
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown uncertainty kind {kind!r}: choose posterior, distance or "
                         "ensemble (or none for no uncertainty, which has no head to fit)")
    if kind == "ensemble" and fm.kind != ENSEMBLE_FEATURES:
        raise ValueError("ensemble uncertainty needs features 'energies' (an ensemble's member energies)")
    if kind == "ensemble" and fm.n_members < 2:
        raise ValueError("ensemble uncertainty needs training.n_models >= 2")
    f = dataset_features(fm, train, with_forces=False)
    phi, phi_at = f["phi"].double(), f["phi_atoms"].double()
    if kind == "posterior":
        a, a_at = feature_scale(phi), feature_scale(phi_at)
        return UncertaintyHead(kind, fm.dim, a, a_at, transform=posterior_transform(phi, a),
                               atomic_transform=posterior_transform(phi_at, a_at))
    if kind == "distance":
        a, a_at = feature_scale(phi), feature_scale(phi_at)
        return UncertaintyHead(kind, fm.dim, a, a_at, train_features=phi * a,
                               train_atomic_features=reduce_rows(phi_at * a_at, cfg.max_train_atoms))
    return UncertaintyHead("ensemble", fm.dim)


def raw_uncertainties(fm: FeatureModel, head: UncertaintyHead, data: GraphDataset) -> dict:
    """Uncalibrated total/atomic u and the residuals they should explain, on ``data``.

    ``u_total``/``n_atoms`` (per structure) and ``u_atomic`` (per atom) cover every structure;
    ``r_total`` and ``r_atomic`` only those with an energy (forces) label, paired with
    ``u_total_labelled`` and ``u_atomic_labelled`` (the same as ``u_total``/``u_atomic`` when all
    are labelled). No residual key where no structure has the label."""
    if len(data) == 0:
        raise ValueError("no structures to compute uncertainties on (empty split)")
    f = dataset_features(fm, data, with_forces=True)
    has_e = np.array([K.ENERGY in g for g in data.graphs])
    has_f = np.concatenate([np.full(len(g[K.POSITIONS]), K.FORCES in g) for g in data.graphs])
    with torch.no_grad():
        ht = head.to(torch.float64)
        u_tot = ht.raw_total(f["phi"].double(), f["n_atoms"].double()).numpy()
        u_at = ht.raw_atomic(f["phi_atoms"].double()).numpy()
    n_atoms = f["n_atoms"].numpy()
    res = {"u_total": u_tot, "u_atomic": u_at, "n_atoms": n_atoms}
    if has_e.any():
        ref_e = torch.cat([g[K.ENERGY] for g in data.graphs if K.ENERGY in g]).double().numpy()
        res["r_total"] = total_residuals(f["energy"].double().numpy()[has_e], ref_e,
                                         n_atoms[has_e])
        res["u_total_labelled"] = u_tot[has_e]
    if has_f.any():
        ref_f = torch.cat([g[K.FORCES] for g in data.graphs if K.FORCES in g]).double().numpy()
        res["r_atomic"] = atomic_residuals(f["forces"].double().numpy()[has_f], ref_f)
        res["u_atomic_labelled"] = u_at[has_f]
    return res


def calibrate(fm: FeatureModel, head: UncertaintyHead, valid: GraphDataset,
              cfg: UncertaintyConfig, raw: dict | None = None) -> Calibration:
    """Fit calibration constants on the validation split and store them in ``head``.

    ``raw``: :func:`raw_uncertainties` of ``valid`` if the caller already has them."""
    if len(valid) == 0:
        raise ValueError("calibration needs a non-empty validation split (data.valid_fraction > 0)")
    r = raw if raw is not None else raw_uncertainties(fm, head, valid)
    if "r_total" not in r:
        raise ValueError("calibration needs reference energies in the validation data")
    cal = Calibration.fit(r["u_total_labelled"], r["r_total"], r.get("u_atomic_labelled"),
                          r.get("r_atomic"), method=cfg.calibration, alpha=cfg.alpha)
    head.calib_total = float(cal.total)
    head.calib_atomic = float(cal.atomic) if "r_atomic" in r else 1.0
    return cal
