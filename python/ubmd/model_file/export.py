"""Writing the model file: one self-contained TorchScript archive (see docs/model_file.md).

``ExportedModel`` = feature model (one MLIP or an ensemble, with its gradient-feature map) +
:class:`~ubmd.uncertainty.heads.UncertaintyHead` (optional). Metadata goes into ``_extra_files``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from ase.data import chemical_symbols
from torch import Tensor, nn

from .. import keys as K
from ..uncertainty.features import FeatureModel
from ..uncertainty.heads import UncertaintyHead


class ExportedModel(nn.Module):
    """Implements the model-file contract: ``atomic``, ``total_uncertainty``, ``atomic_uncertainty``,
    and the optional ``atomic_parts`` / ``feature_contraction`` pair (cheaper bias gradients)."""

    def __init__(self, features: FeatureModel, head: Optional[UncertaintyHead]):
        super().__init__()
        self.features = features
        self.has_uncertainty = head is not None
        self.head = head if head is not None else UncertaintyHead("posterior", 0)
        self.cutoff = features.cutoff
        self.feature_dim = features.dim if head is not None else 0

    def atomic(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_local: int,
               with_features: bool) -> Tuple[Tensor, Tensor]:
        return self.features.atomic(edge_vec, edge_index, species, n_local,
                                    with_features and self.has_uncertainty)

    @torch.jit.export
    def atomic_parts(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_local: int,
                     atomic_features: bool) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
        return self.features.atomic_parts(edge_vec, edge_index, species, n_local, atomic_features)

    @torch.jit.export
    def feature_contraction(self, parts: List[Tensor], v: Tensor) -> Tensor:
        return self.features.contract(parts, v)

    @torch.jit.export
    def atomic_state(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_local: int,
                     with_features: bool, atomic_features: bool
                     ) -> Tuple[Tensor, Tensor, Tensor, List[Tensor]]:
        return self.features.atomic_state(edge_vec, edge_index, species, n_local,
                                          with_features and self.has_uncertainty,
                                          atomic_features and self.has_uncertainty)

    @torch.jit.export
    def state_gradients(self, state: List[Tensor], v: Tensor) -> Tensor:
        return self.features.state_gradients(state, v)

    def energies_and_gradient(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor,
                              n_local: int) -> Tuple[Tensor, Tensor]:
        """Per-atom energies and their sum's gradient w.r.t. the edge vectors, in closed form
        (Python only: evaluation without autograd)."""
        return self.features.energies_and_gradient(edge_vec, edge_index, species, n_local)

    @torch.jit.export
    def total_uncertainty(self, phi_sum: Tensor, n_atoms: float) -> Tuple[Tensor, Tensor]:
        if not self.has_uncertainty:
            return torch.zeros((), dtype=phi_sum.dtype), torch.zeros_like(phi_sum)
        u, v = self.head.total_uncertainty(phi_sum, n_atoms)
        return u.to(phi_sum.dtype), v.to(phi_sum.dtype)

    @torch.jit.export
    def atomic_uncertainty(self, features: Tensor) -> Tensor:
        if not self.has_uncertainty:
            return torch.zeros(features.shape[0], dtype=features.dtype)
        return self.head.atomic_uncertainty(features).to(features.dtype)

    def forward(self, edge_vec: Tensor, edge_index: Tensor, species: Tensor, n_local: int) -> Tensor:
        return self.atomic(edge_vec, edge_index, species, n_local, False)[0]


def state_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_metadata(model: ExportedModel, dtype: torch.dtype, extra: dict | None = None) -> dict:
    member = model.features.members[0]
    zs = list(member.atomic_numbers)
    kind = model.head.kind if model.has_uncertainty else "none"
    meta = {
        K.META_FORMAT_VERSION: K.MODEL_FORMAT_VERSION,
        K.META_CUTOFF: float(model.cutoff),
        K.META_SPECIES: [chemical_symbols[z] for z in zs],
        K.META_ATOMIC_NUMBERS: zs,
        K.META_DTYPE: str(dtype).replace("torch.", ""),
        K.META_UNITS: "metal",
        K.META_UNCERTAINTY: kind,
        K.META_FEATURE_DIM: int(model.feature_dim),
        K.META_ATOMIC_FEATURE_DIM: int(model.feature_dim),
        K.META_MODEL_HASH: state_hash(model),
        "feature_kind": model.features.kind,
        # short-range ZBL baseline inside the per-atom energies (ubmd.model.repulsion)
        "repulsion": bool(member.use_repulsion),
        "repulsion_range": float(member.repulsion.range_factor),
        "n_members": model.features.n_members,
        "calibration_total": float(model.head.calib_total) if model.has_uncertainty else 1.0,
        "calibration_atomic": float(model.head.calib_atomic) if model.has_uncertainty else 1.0,
    }
    if extra:
        meta.update(extra)
    return meta


def _as_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def export_model(model: ExportedModel, path: str | Path, dtype: torch.dtype = torch.float64,
                 extra_metadata: dict | None = None) -> dict:
    """Script ``model`` in ``dtype`` and write it with its metadata to ``path``. Returns metadata."""
    model = model.to(dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    meta = build_metadata(model, dtype, extra_metadata)
    scripted = torch.jit.script(model)
    files = {k: _as_text(meta[k]) for k in K.META_KEYS if k != K.META_JSON}
    files[K.META_JSON] = json.dumps(meta, indent=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files=files)
    tmp.replace(path)
    return meta
