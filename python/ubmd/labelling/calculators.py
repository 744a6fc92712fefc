"""Reference ("DFT") calculators for labelling, built from small picklable specs.

A *calculator spec* describes how to build an ASE calculator inside a worker process, so that the
spec (not the calculator, which may hold C handles) travels to the worker:

* ``{"name": "gfn2-xtb", "kwargs": {...}}`` -- a built-in (see :data:`BUILTINS`);
* ``{"import": "package.module:ClassName", "kwargs": {...}}`` -- any importable class or factory;
* ``{"import": "/path/to/file.py:ClassName", "kwargs": {...}}`` -- a class in a Python file;
* a plain string ``"gfn2-xtb"`` is shorthand for ``{"name": "gfn2-xtb"}``;
* a picklable callable (module-level function or class) taking no arguments.

Units follow ASE: energies in eV, forces in eV/Å, stress in eV/Å^3 (positive = tensile).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import InputTypeError, MissingImportError

__all__ = ["BUILTINS", "make_calculator", "normalise_spec", "spec_label", "check_structure"]


def _tblite(method: str) -> Callable[..., Any]:
    def factory(**kwargs):
        try:
            from tblite.ase import TBLite
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingImportError(
                f"the built-in calculator {method!r} needs the 'tblite' package "
                "(pip install 'ubmd[xtb]' or pip install tblite)"
            ) from exc
        kwargs.setdefault("verbosity", 0)
        return TBLite(method=method, **kwargs)

    factory.__doc__ = (
        f"{method} through tblite (molecules and periodic cells, Γ point only; energy, forces, "
        "stress for periodic cells). kwargs go to tblite.ase.TBLite (verbosity defaults to 0)."
    )
    return factory


def _emt(**kwargs):
    """ASE's effective-medium theory (Al, Cu, Ag, Au, Ni, Pd, Pt; plus H, C, N, O toy values)."""
    from ase.calculators.emt import EMT

    return EMT(**kwargs)


def _lj(**kwargs):
    """ASE's Lennard-Jones (kwargs: sigma Å, epsilon eV, rc Å, smooth)."""
    from ase.calculators.lj import LennardJones

    return LennardJones(**kwargs)


def _morse(**kwargs):
    """ASE's Morse pair potential (kwargs: epsilon eV, r0 Å, rho0, rcut1, rcut2)."""
    from ase.calculators.morse import MorsePotential

    return MorsePotential(**kwargs)


#: Built-in calculator names (lower case) -> factory(**kwargs).
BUILTINS: dict[str, Callable[..., Any]] = {
    "gfn2-xtb": _tblite("GFN2-xTB"),
    "gfn1-xtb": _tblite("GFN1-xTB"),
    "ipea1-xtb": _tblite("IPEA1-xTB"),
    "emt": _emt,
    "lj": _lj,
    "morse": _morse,
}
_ALIASES = {"gfn2": "gfn2-xtb", "gfn1": "gfn1-xtb", "xtb": "gfn2-xtb", "lennard-jones": "lj"}
_XTB_NAMES = ("gfn2-xtb", "gfn1-xtb", "ipea1-xtb")


def _builtins_text() -> str:
    return ", ".join(sorted(BUILTINS))


def normalise_spec(spec: Any) -> dict | Callable[[], Any]:
    """Return ``spec`` as a dict with exactly one of ``name``/``import`` and a ``kwargs`` dict.

    Callables are returned unchanged. Raises ``ValueError`` / ``TypeError`` with the list of
    built-ins for anything malformed (checked in the parent, before any job is started).
    """
    if callable(spec) and not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise InputTypeError(
            f"calculator spec must be a dict, a name or a callable, got {type(spec).__name__}; "
            f"built-in names: {_builtins_text()}"
        )
    unknown = set(spec) - {"name", "import", "kwargs"}
    if unknown:
        raise ValueError(f"calculator spec has unknown keys {sorted(unknown)}; "
                         "allowed: 'name' or 'import', and 'kwargs'")
    has_name, has_import = "name" in spec, "import" in spec
    if has_name == has_import:
        raise ValueError(
            "calculator spec needs exactly one of 'name' (built-ins: "
            f"{_builtins_text()}) or 'import' ('package.module:ClassName' or "
            f"'/path/file.py:ClassName'), got {spec!r}"
        )
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise InputTypeError(f"calculator spec 'kwargs' must be a dict, got {type(kwargs).__name__}")
    out = {"kwargs": dict(kwargs)}
    if has_name:
        name = str(spec["name"]).strip().lower()
        name = _ALIASES.get(name, name)
        if name not in BUILTINS:
            raise ValueError(f"unknown calculator name {spec['name']!r}; built-ins: "
                             f"{_builtins_text()}; or give {{'import': 'package.module:Class'}}")
        out["name"] = name
    else:
        target = str(spec["import"])
        if ":" not in target.replace(":\\", ""):  # allow Windows drive letters in paths
            raise ValueError(f"calculator import {target!r} must look like "
                             "'package.module:ClassName' or '/path/to/file.py:ClassName'")
        out["import"] = target
    return out


def _load_object(target: str) -> Any:
    """Import ``module:attr`` or ``/path/file.py:attr`` (attr may be dotted)."""
    module_part, _, attr = target.rpartition(":")
    try:
        if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
            path = Path(module_part).expanduser().resolve()
            if not path.is_file():
                raise MissingImportError(f"no such file {path}")
            mod_name = f"_ubmd_calc_{abs(hash(str(path)))}"
            module = sys.modules.get(mod_name)
            if module is None:
                file_spec = importlib.util.spec_from_file_location(mod_name, path)
                module = importlib.util.module_from_spec(file_spec)
                sys.modules[mod_name] = module
                file_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_part)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, SyntaxError) as exc:
        raise MissingImportError(
            f"cannot import calculator {target!r}: {type(exc).__name__}: {exc}. Built-in names: "
            f"{_builtins_text()}"
        ) from exc
    return obj


def make_calculator(spec: Any):
    """Build a fresh ASE calculator from a spec (see the module docstring).

    Examples: ``make_calculator("emt")``, ``make_calculator({"name": "gfn2-xtb",
    "kwargs": {"accuracy": 0.1}})``, ``make_calculator({"import": "ase.calculators.lj:LennardJones",
    "kwargs": {"sigma": 2.5}})``.
    """
    spec = normalise_spec(spec)
    if callable(spec):
        return spec()
    if "name" in spec:
        return BUILTINS[spec["name"]](**spec["kwargs"])
    factory = _load_object(spec["import"])
    if not callable(factory):
        raise InputTypeError(f"calculator import {spec['import']!r} is not callable")
    return factory(**spec["kwargs"])


def spec_label(spec: Any) -> str:
    """Short human-readable name of a spec (for logs and ``info['label_method']``)."""
    spec = normalise_spec(spec)
    if callable(spec):
        return getattr(spec, "__qualname__", repr(spec))
    return spec.get("name") or spec["import"]


def check_structure(spec: Any, atoms) -> None:
    """Raise ``ValueError`` for structures a calculator would silently mislabel.

    tblite sums ``initial_charges`` into the total charge, so partial charges (e.g. from a CIF)
    that do not add up to an integer would change the electron count; give ``kwargs={"charge": q}`` or clear the charges.
    """
    spec = normalise_spec(spec)
    if callable(spec) or spec.get("name") not in _XTB_NAMES or "charge" in spec["kwargs"]:
        return
    q = float(atoms.get_initial_charges().sum())
    if abs(q - round(q)) > 1e-6:
        raise ValueError(
            f"structure has fractional initial_charges (sum {q:.4f}): tblite would use their sum "
            "as the total charge. Clear them (atoms.set_initial_charges(None)) or pass "
            "kwargs={'charge': <integer total charge>}"
        )
