"""Loading a model file (TorchScript) with its metadata, validated; see :mod:`.metadata` for
reading only the metadata, without torch."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import keys as K
from .metadata import check_model_path, check_version


def load_model_file(path: str | Path, device: str = "cpu"):
    """Load a model file: returns ``(scripted_module, metadata_dict)``; validates the version."""
    path = check_model_path(path)
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this torch ({torch.__version__}) sees "
                         "no CUDA device; use device='cpu' or a CUDA build of torch on a GPU node")
    files = {k: "" for k in K.META_KEYS}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=files)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path} is not a ubmd model file ({exc.__class__.__name__}); "
                         "write one with `ubmd export`") from exc
    if not files[K.META_JSON]:
        raise ValueError(f"{path} has no ubmd metadata; write it with `ubmd export`")
    return module, check_version(json.loads(files[K.META_JSON]), path)
