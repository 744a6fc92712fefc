"""The model file, the one contract between Python and C++ (docs/model_file.md): writing it
(:mod:`.export`), loading it (:mod:`.load`) and reading its metadata without torch
(:mod:`.metadata`)."""

from .metadata import ModelInfo, check_model_path, model_info, read_metadata

__all__ = ["ExportedModel", "ModelInfo", "check_model_path", "export_model", "load_model_file",
           "model_info", "read_metadata"]

_LAZY = {"ExportedModel": ".export", "export_model": ".export", "load_model_file": ".load"}


def __getattr__(name: str):
    """``load_model_file``, ``export_model``, ``ExportedModel`` from here too, imported when first
    asked for (they need torch; the metadata reader above does not)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
