"""One config schema (dataclasses + YAML) for training, uncertainty, bias and AL campaigns.

:mod:`.schema` is the machinery (typed conversion, checks with the key's name in every error,
paths relative to the config file, YAML in and out); :mod:`.training` holds the sections of
``ubmd train`` configs. The MD settings live in :mod:`ubmd.md.settings` and the campaign's own
sections in :mod:`ubmd.al.config`, each built on this machinery. Every key: docs/config.md.
"""

from ..keys import CALIBRATION_METHODS
from .schema import (check, coerce, from_dict, join_key, load_yaml, merge, nested,
                     parse_overrides, require_files, resolve_path, resolve_paths, save_yaml, setting, to_dict,
                     unknown_key_message)
from .training import (DataConfig, ModelConfig, TrainingConfig, TrainRunConfig, UncertaintyConfig,
                       check_device, check_ensemble, dtype_names, load_train_config)

__all__ = ["CALIBRATION_METHODS", "DataConfig", "ModelConfig", "TrainRunConfig", "TrainingConfig",
           "UncertaintyConfig", "check", "check_device", "check_ensemble", "coerce", "dtype_names", "from_dict",
           "join_key", "load_train_config", "load_yaml", "merge", "nested", "parse_overrides",
           "require_files", "resolve_path", "resolve_paths", "save_yaml", "setting", "to_dict",
           "unknown_key_message"]
