"""The machinery of ubmd's one config schema: dataclass sections read from YAML, checked up front.

Unknown keys are errors (with the list of valid keys), so a typo never silently does nothing.
Values are converted to the type of their field (YAML 1.1 reads ``1e-3`` as a string), choice
fields and numeric ranges are checked up front (``check``), and every error names the key.
Relative paths in a config file are relative to the file (``load_train_config``); the resolved
config, with absolute paths, is written next to every model and every AL round (``config.yaml``).
Reference of every key: docs/config.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import os
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Union

import yaml

def setting(default: Any = dataclasses.MISSING, *, choices: tuple | Callable | None = None,
            ge: float | None = None, gt: float | None = None, lt: float | None = None,
            path: bool | str = False, factory: Callable | None = None):
    """A dataclass field with the checks of :func:`check`: ``choices`` (a tuple, or a function
    returning one), bounds ``ge``/``gt``/``lt`` (applied to every element of a list; None passes
    for Optional fields), ``path`` (made absolute by :func:`resolve_paths`; ``"calculator"``: the
    file of an ``import: file.py:Class`` calculator spec)."""
    meta = {k: v for k, v in (("choices", choices), ("ge", ge), ("gt", gt), ("lt", lt),
                              ("path", path)) if v is not None and v is not False}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------------- typed conversion
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def join_key(where: str, name: str) -> str:
    """``section.key`` (``key`` at the top level), as error messages name a key."""
    return f"{where}.{name}" if where else name


def _is_list_type(tp) -> bool:
    return tp is list or typing.get_origin(tp) is list


def coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` converted to the annotation ``tp`` (int, float, bool, str, Optional[...],
    Union[...], list[...], dict[...]); raises ValueError naming the key ``name``."""
    if tp is Any or tp is object:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        # a list value takes a list branch, a scalar the first scalar branch that converts it
        is_list = isinstance(value, (list, tuple))
        ordered = sorted(options, key=lambda a: _is_list_type(a) != is_list)
        errors = []
        for option in ordered:
            try:
                return coerce(value, option, name)
            except ValueError as exc:
                errors.append(exc)
        if is_list and _is_list_type(ordered[0]):
            raise errors[0]  # the list's own error names the bad element
        raise ValueError(f"{name} must be {' or '.join(_describe(o) for o in options)}, "
                         f"got {value!r}")
    if value is None:
        raise ValueError(f"{name} must not be null (give a value or delete the key)")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE + _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _number(value, name, "an integer")
        if not float(number).is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(number)
    if tp is float:
        return float(_number(value, name, "a number"))
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike) or (isinstance(value, (int, float))
                                              and not isinstance(value, bool)):
            return str(value)
        raise ValueError(f"{name} must be a string, got {value!r}")
    if _is_list_type(tp):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {value!r}")
        (item,) = args or (Any,)
        return [coerce(v, item, f"{name}[{k}]") for k, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a mapping, got {value!r}")
        key_tp, value_tp = args or (Any, Any)
        return {coerce(k, key_tp, name): coerce(v, value_tp, f"{name}.{k}")
                for k, v in value.items()}
    return value


def _describe(tp) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    return "a list" if _is_list_type(tp) else "a mapping" if _is_container(tp) else str(tp)


def _number(value, name: str, what: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be {what}, got {value!r}") from None
    return value


# ------------------------------------------------------------------------- building, checking
def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from a dict, recursively: unknown keys are errors, values are
    converted to their field types, null sections mean all defaults; then :func:`check`."""
    return check(_build(cls, data, where), where)


def unknown_key_message(key: str, valid: list[str], where: str = "") -> str:
    """``unknown config key walkers.temprature; did you mean walkers.temperature? (valid keys
    of walkers: ...)``: the closest valid keys by spelling, else by prefix or substring."""
    import difflib

    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if not close:  # e.g. `batch` for `batch_size`
        low = key.lower()
        close = [f for f in valid if low and (f.startswith(low) or low in f)][:3]
    hint = f"; did you mean {' or '.join(join_key(where, c) for c in close)}?" if close else ""
    return (f"unknown config key {join_key(where, key)}{hint} (valid keys of "
            f"{where or 'the top level'}: {', '.join(sorted(valid))})")


def _build(cls, data, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__} must be a mapping of keys to values, "
                         f"got {data!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ValueError(unknown_key_message(str(key), list(names), where))
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = join_key(where, name)
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = value if isinstance(value, tp) else _build(tp, value, key)
        elif value is None and _is_container(tp):
            continue  # an empty `key:` (entries commented out): the default
        else:
            kwargs[name] = coerce(value, tp, key)
    return cls(**kwargs)


def _is_container(tp) -> bool:
    return _is_list_type(tp) or tp is dict or typing.get_origin(tp) is dict


def check(obj, where: str = ""):
    """Convert and check every field of a config dataclass in place, recursively: types, choices,
    numeric bounds, then the section's own ``_check``; returns ``obj`` or raises ValueError."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        key = join_key(where, f.name)
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            if not dataclasses.is_dataclass(value):
                value = _build(hints[f.name], value, key)
                setattr(obj, f.name, value)
            check(value, key)
            continue
        if value is None and _is_container(hints[f.name]):
            value = (f.default if f.default_factory is dataclasses.MISSING  # as if not given
                     else f.default_factory())
        value = coerce(value, hints[f.name], key)
        setattr(obj, f.name, value)
        _check_value(value, f.metadata, key)
    own = getattr(obj, "_check", None)
    if own is not None:
        own(where)
    return obj


_BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "lt": (operator.lt, "<")}


def _check_value(value, meta, key: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None:
        allowed = tuple(choices() if callable(choices) else choices)
        if value not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    for item in (value if isinstance(value, list) else [value]):
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        if math.isnan(item):
            raise ValueError(f"{key} must be a number, got nan")
        for op, (test, sign) in _BOUNDS.items():
            limit = meta.get(op)
            if limit is not None and not test(item, limit):
                raise ValueError(f"{key} must be {sign} {limit}, got {value}")


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


# ------------------------------------------------------------------------- paths
def resolve_paths(node, base: str | Path, cls=None):
    """Make the relative paths of a config absolute, relative to ``base``, in place: the fields
    declared with ``setting(path=...)``, in a dataclass instance or (with ``cls``) in a raw dict
    from a YAML file (sections that are not mappings are left for :func:`from_dict` to report).
    Returns ``node``."""
    base = Path(base)
    if dataclasses.is_dataclass(node):
        cls, get, put, has = type(node), getattr, setattr, lambda n, k: True
    elif isinstance(node, dict):
        get, put, has = dict.get, dict.__setitem__, dict.__contains__
    else:
        return node
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not has(node, f.name):
            continue
        value = get(node, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            if dataclasses.is_dataclass(value) or isinstance(value, dict):
                resolve_paths(value, base, hints[f.name])
        elif f.metadata.get("path") == "calculator":
            put(node, f.name, _resolve_calculator(value, base))
        elif f.metadata.get("path"):
            put(node, f.name, resolve_path(value, base))
    return node


def resolve_path(value, base: Path):
    """A path (or list of paths) made absolute relative to ``base``; other values unchanged."""
    if isinstance(value, (list, tuple)):
        return [resolve_path(v, base) for v in value]
    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (Path(base) / p).resolve())


def _resolve_calculator(spec, base: Path):
    """``{import: file.py:Class}`` with a relative file: the file relative to ``base``."""
    if not isinstance(spec, dict) or not isinstance(spec.get("import"), str):
        return spec
    module, sep, attr = spec["import"].rpartition(":")
    if not sep or not (module.endswith(".py") or "/" in module or "\\" in module):
        return spec  # package.module:Class
    return {**spec, "import": f"{resolve_path(module, base)}:{attr}"}


# ------------------------------------------------------------------------- files
def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path) as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping")
    return data


def save_yaml(data: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    tmp.replace(path)


def nested(dotted) -> dict:
    """Dotted keys as a nested dict: ``{"walkers.max_steps": 400}`` (or pairs) gives
    ``{"walkers": {"max_steps": 400}}``; ready for :func:`merge` into a config dict."""
    out: dict = {}
    for key, value in (dotted.items() if isinstance(dotted, dict) else dotted):
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def parse_overrides(items) -> dict:
    """``section.key=value`` strings (values parsed as YAML) as a nested dict."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, e.g. training.max_epochs=50, got {item!r}")
        pairs.append((key, yaml.safe_load(value)))
    return nested(pairs)


def merge(data: dict, over: dict) -> dict:
    """Nested ``over`` written into ``data`` (a null or scalar section is replaced)."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            merge(data[key], value)
        elif isinstance(value, dict):
            data[key] = merge({}, value)
        else:
            data[key] = value
    return data


def require_files(value, name: str) -> None:
    """FileNotFoundError naming ``name`` unless every path in ``value`` exists."""
    if value is None or value == []:
        raise ValueError(f"{name} is required: a structure file or a list of them")
    for p in value if isinstance(value, (list, tuple)) else [value]:
        if not Path(p).exists():
            raise FileNotFoundError(f"{name}: file not found: {p}")
