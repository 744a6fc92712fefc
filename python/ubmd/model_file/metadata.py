"""The metadata of a model file, read without torch: the archive is a zip file whose
``<name>/extra/metadata.json`` holds every metadata entry (docs/model_file.md).

Reading a model's species, cutoff or uncertainty kind this way costs a zip directory lookup,
not a TorchScript load (a distance model carries up to 20 000 x K training features).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import keys as K


def check_model_path(path: str | Path) -> Path:
    """``path`` as a :class:`Path` when it exists and is not a directory; otherwise an error that
    says what to give (a run directory names its ``model.pt``)."""
    path = Path(path)
    if path.is_dir():
        model = path / "model.pt"
        hint = (f"did you mean {model}?" if model.is_file() else
                "give the model file written by `ubmd train` / `ubmd export` (RUN_DIR/model.pt)")
        raise ValueError(f"{path} is a directory, not a model file: {hint}")
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path} (write one with `ubmd export`)")
    return path


def check_version(meta: dict, path: str | Path) -> dict:
    """``meta`` if its format version is the one this ubmd reads; else a ValueError naming the fix."""
    version = int(meta.get(K.META_FORMAT_VERSION, -1))
    if version != K.MODEL_FORMAT_VERSION:
        raise ValueError(f"{path}: model format version {version} is not supported (this ubmd "
                         f"reads version {K.MODEL_FORMAT_VERSION}); re-export it with `ubmd export`")
    return meta


def read_metadata(path: str | Path) -> dict:
    """The metadata dict of a model file (``metadata.json``), version-checked, without torch."""
    path = check_model_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if n.endswith(f"/extra/{K.META_JSON}") and n.count("/") == 2]
            if not names:
                raise ValueError(f"{path} has no ubmd metadata; write it with `ubmd export`")
            meta = json.loads(archive.read(names[0]).decode())
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a ubmd model file ({exc.__class__.__name__}); "
                         "write one with `ubmd export`") from exc
    return check_version(meta, path)


@dataclass(frozen=True)
class ModelInfo:
    """What callers usually need of a model file's metadata."""

    path: str
    species: tuple[str, ...]  # element symbols, in the model's species order (pair_coeff order)
    atomic_numbers: tuple[int, ...]
    cutoff: float  # Å
    uncertainty: str  # one of keys.UNCERTAINTY_KINDS
    dtype: str
    metadata: dict

    @property
    def has_uncertainty(self) -> bool:
        return self.uncertainty != "none"


def model_info(path: str | Path) -> ModelInfo:
    """:class:`ModelInfo` of a model file (torch-free, see :func:`read_metadata`)."""
    meta = read_metadata(path)
    species, numbers = (v.split() if isinstance(v, str) else list(v)
                        for v in (meta[K.META_SPECIES], meta[K.META_ATOMIC_NUMBERS]))
    return ModelInfo(path=str(path), species=tuple(str(s) for s in species),
                     atomic_numbers=tuple(int(z) for z in numbers),
                     cutoff=float(meta[K.META_CUTOFF]), uncertainty=str(meta[K.META_UNCERTAINTY]),
                     dtype=str(meta[K.META_DTYPE]), metadata=meta)
