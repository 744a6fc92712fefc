"""Labels of a structure: energy (eV), forces (eV/Å), stress (eV/Å^3, ASE sign) or virial (eV),
wherever a file keeps them (calculator results, ``info``, per-atom ``arrays``) and under whatever
names it uses; each label is optional per structure. Errors name the structure and the keys found.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
from ase import Atoms


# Label key names (``get_labels`` keyword arguments) and their defaults. With a default name the
# ASE calculator results and the ``REF_*`` variant (``REF_energy`` ...) are looked at as well; an
# explicitly requested other name is the only one used (so ``energy_key="REF_energy"`` ignores
# an ``energy`` that is also in the file).
LABEL_KEYS = {"energy_key": "energy", "forces_key": "forces", "stress_key": "stress",
              "virial_key": "virial"}
_FALLBACKS = {"energy": ("energy", "free_energy", "REF_energy"), "forces": ("forces", "REF_forces"),
              "stress": ("stress", "REF_stress"), "virial": ("virial", "REF_virial")}


def _find_label(atoms: Atoms, key: str, default: str, per_atom: bool):
    """The value stored under ``key`` (calculator results, then ``atoms.info``, or ``atoms.arrays``
    for per-atom labels); with the default key also under its fallback names. None if absent."""
    names = _FALLBACKS[default] if key == default else (key,)
    results = getattr(atoms.calc, "results", None) or {}
    src = atoms.arrays if per_atom else atoms.info
    for name in names:
        for d in (results, src):
            if d.get(name) is not None:
                return d[name]
    return None


def _tensor3x3(value, what: str) -> np.ndarray:
    """A 3x3 tensor from 9 values, a 3x3 array or Voigt (xx yy zz yz xz xy)."""
    s = np.asarray(value, dtype=float)
    if s.size == 6:
        xx, yy, zz, yz, xz, xy = s.ravel()
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if s.size == 9:
        return s.reshape(3, 3)
    raise ValueError(f"{what} must have 6 (Voigt) or 9 values, got shape {s.shape}")


def get_labels(atoms: Atoms, energy_key: str = "energy", forces_key: str = "forces",
               stress_key: str = "stress", virial_key: str = "virial") -> dict:
    """Energy (eV), forces (eV/Å, [N, 3]) and stress (3x3, eV/Å^3, ASE sign) of a structure, None
    where absent, from the calculator results or ``info``/``arrays`` under the given key names.

    Stress: under ``stress_key``; else from a virial under ``virial_key`` (GAP/MACE convention,
    virial = -stress * volume in eV, which is also this package's ``K.VIRIAL``), converted as
    stress = -virial / volume (periodic cells only). When both are present the explicitly requested
    (non-default) key wins, else the stress. 6 (Voigt xx yy zz yz xz xy) or 9 values, or 3x3."""
    out = {"energy": _find_label(atoms, energy_key, "energy", False),
           "forces": _find_label(atoms, forces_key, "forces", True), "stress": None}
    stress = _find_label(atoms, stress_key, "stress", False)
    virial = _find_label(atoms, virial_key, "virial", False)
    stress_from = f"stress {stress_key!r}"
    if virial is not None and (stress is None or (virial_key != LABEL_KEYS["virial_key"]
                                                  and stress_key == LABEL_KEYS["stress_key"])):
        stress_from = f"virial {virial_key!r}"
        vol = abs(float(np.linalg.det(np.asarray(atoms.get_cell()))))
        stress = -_tensor3x3(virial, f"virial {virial_key!r}") / vol if (
            atoms.pbc.all() and vol > 1e-12) else None
    if stress is not None:
        out["stress"] = _tensor3x3(stress, f"stress {stress_key!r}")
    if out["energy"] is not None:
        out["energy"] = float(np.asarray(out["energy"], dtype=float).reshape(-1)[0])
    if out["forces"] is not None:
        f = np.asarray(out["forces"], dtype=float)
        if f.shape != (len(atoms), 3):
            raise ValueError(f"forces {forces_key!r} of a structure of {len(atoms)} atoms have "
                             f"shape {f.shape}, expected ({len(atoms)}, 3)")
        out["forces"] = f
    # (the stress of a structure that is not periodic in x, y and z is never used: not checked)
    _check_finite({**out, "stress": out["stress"] if atoms.pbc.all() else None},
                  {"energy": f"energy {energy_key!r}", "forces": f"forces {forces_key!r}",
                   "stress": stress_from})
    return out


def _check_finite(labels: dict, keys: dict) -> None:
    """A NaN or inf label is an error naming it (not a NaN loss, or a NaN error metric, later)."""
    for name, value in labels.items():
        if value is None:
            continue
        v = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(v)):
            where = ""
            if name == "forces":
                bad = np.where(~np.isfinite(v).all(axis=1))[0]
                where = f" for atoms {bad[:10].tolist()}"
            raise ValueError(f"non-finite (NaN or inf) label {keys[name]}{where}: fix or drop "
                             "the structure (a structure without the label is left out of it)")


@contextlib.contextmanager
def naming_structure(k: int, atoms: Atoms):
    """Within the block, a ValueError is re-raised with ``structure k (formula): `` in front (k:
    0-based index in the data set or file), so the user knows which structure to fix."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"structure {k} ({atoms.get_chemical_formula()}): {exc}") from exc


def frame_labels(frames: Sequence[Atoms], label_keys: dict | None = None) -> list[dict]:
    """:func:`get_labels` of every frame; an error names the structure (0-based index)."""
    out = []
    for k, atoms in enumerate(frames):
        with naming_structure(k, atoms):
            out.append(get_labels(atoms, **(label_keys or {})))
    return out


def with_standard_labels(atoms: Atoms, label_keys: dict | None = None) -> Atoms:
    """A copy whose labels (read under ``label_keys``) sit in a single-point calculator under the
    standard names (energy, forces, stress in Voigt form): what the AL data sets hold, so that
    user data with other key names and the campaign's own labels are read the same way."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.stress import full_3x3_to_voigt_6_stress

    lab = get_labels(atoms, **(label_keys or {}))
    out = atoms.copy()
    for key in [k for k in (label_keys or {}).values() if k]:
        out.info.pop(key, None)
        if key in out.arrays and key not in ("numbers", "positions"):
            del out.arrays[key]
    stress = None if lab["stress"] is None else full_3x3_to_voigt_6_stress(lab["stress"])
    out.calc = SinglePointCalculator(out, energy=lab["energy"], forces=lab["forces"], stress=stress)
    return out


def describe_keys(frames: Sequence[Atoms], n: int = 3) -> str:
    """The info, per-atom array and calculator-result keys of the first ``n`` frames (for errors)."""
    info, arrays, results = set(), set(), set()
    for a in list(frames)[:n]:
        info |= set(a.info)
        arrays |= set(a.arrays) - {"numbers", "positions"}
        results |= set(getattr(a.calc, "results", None) or {})
    return (f"info keys {sorted(info)}, per-atom array keys {sorted(arrays)}, "
            f"calculator results {sorted(results)}")


def no_labels_message(frames: Sequence[Atoms], label_keys: dict | None = None) -> str:
    """Why a data set with no energy and no forces label is refused, with the keys it has."""
    k = {**LABEL_KEYS, **(label_keys or {})}
    return (f"no structure has an energy or forces label under energy_key={k['energy_key']!r}, "
            f"forces_key={k['forces_key']!r} (default keys also look at the calculator results and "
            f"REF_energy / REF_forces); the first frames have {describe_keys(frames)}: set the "
            "label key names to the ones used in the file")


def label_keys_from(data_cfg) -> dict:
    """Label key names (:func:`get_labels` keywords) from a data config: its fields
    ``energy_key``, ``forces_key``, ``stress_key``, ``virial_key`` where it has them, else the
    defaults (energy, forces, stress, virial)."""
    return {k: getattr(data_cfg, k, default) or default for k, default in LABEL_KEYS.items()}
