"""The model file, the one contract between Python and C++ (docs/model_file.md): writing it
(:mod:`.export`), loading it (:mod:`.load`) and reading its metadata without torch
(:mod:`.metadata`)."""

from .metadata import ModelInfo, check_model_path, model_info, read_metadata

__all__ = ["ModelInfo", "check_model_path", "model_info", "read_metadata"]
