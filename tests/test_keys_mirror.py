"""cpp/ubmd_keys.h and python/ubmd/keys.py hold the same names: every constant of the header is
in keys.py with the same value, every LAMMPS / model-file name of keys.py is in the header, and
the plugin sources use the constants instead of spelling the names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ubmd import keys

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "cpp" / "ubmd_keys.h"
PLUGIN = ROOT / "lammps_plugin"

# keys.py names that belong to the header (the rest of keys.py is Python-only: tensors, labels)
SHARED_PREFIXES = ("META_", "METHOD_", "EXTRACT_", "PAIR_", "UNCERTAINTY_MODE", "MODEL_FORMAT",
                   "UNCERTAINTY_KINDS", "UNCERTAINTY_NONE")
PYTHON_ONLY = {"META_KEYS"}  # a Python convenience tuple of the META_* names

_TOKENS = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.S)
_CONSTANT = re.compile(r"constexpr\s+[\w\s\*]*?\b(\w+)\s*(\[\s*\])?\s*=\s*(.*?);", re.S)


def _strip_comments(text: str) -> str:
    return _TOKENS.sub(lambda m: m.group(1) or " ", text)


def _value(token: str, known: dict):
    token = token.strip()
    if token.startswith('"'):
        return ast.literal_eval(token)
    if re.fullmatch(r"[-+]?\d+", token):
        return int(token)
    if re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?", token, re.I):
        return float(token)
    if token in known:
        return known[token]
    raise ValueError(f"cannot read {token!r} in {HEADER.name}")


def header_constants(text: str) -> dict:
    """NAME -> value for every `constexpr ... NAME = value;` and `NAME[] = {...};` (arrays as
    tuples; a value that names an earlier constant takes its value)."""
    out = {}
    for name, array, value in _CONSTANT.findall(_strip_comments(text)):
        if array:
            items = value.strip().removeprefix("{").removesuffix("}").split(",")
            out[name] = tuple(_value(v, out) for v in items if v.strip())
        else:
            out[name] = _value(value, out)
    return out


@pytest.fixture(scope="module")
def header():
    return header_constants(HEADER.read_text())


def test_parser_reads_every_constant(header):
    """Every constexpr of the header was read (a parser that misses lines cannot pass)."""
    code = _strip_comments(HEADER.read_text())
    assert len(header) == code.count("constexpr") > 50
    assert header["PAIR_COLUMNS"][0] == "uncertainty"     # read through EXTRACT_UNCERTAINTY
    assert header["MODEL_FORMAT_VERSION"] == 1


def test_every_header_constant_is_in_keys_py_with_the_same_value(header):
    missing = sorted(n for n in header if not hasattr(keys, n))
    assert not missing, f"in cpp/ubmd_keys.h but not in python/ubmd/keys.py: {missing}"
    for name, value in header.items():
        assert getattr(keys, name) == value, (name, getattr(keys, name), value)
        assert type(getattr(keys, name)) is type(value), name


def test_every_shared_keys_py_name_is_in_the_header(header):
    shared = [n for n in dir(keys) if n.isupper() and n.startswith(SHARED_PREFIXES)]
    missing = sorted(set(shared) - set(header) - PYTHON_ONLY)
    assert not missing, f"in python/ubmd/keys.py but not in cpp/ubmd_keys.h: {missing}"
    assert "PAIR_COLUMNS" in shared and "EXTRACT_CUTOFF" in shared


def test_pair_columns():
    assert len(keys.PAIR_COLUMNS) == keys.PAIR_NUM_COLUMNS
    cols = {n: v for n, v in vars(keys).items() if n.startswith("PAIR_COLUMN_")}
    assert sorted(cols.values()) == list(range(1, keys.PAIR_NUM_COLUMNS + 1))
    for name, column in cols.items():  # PAIR_COLUMN_X is the column of EXTRACT_X
        assert keys.PAIR_COLUMNS[column - 1] == getattr(keys, "EXTRACT_" + name[12:])
    assert keys.pair_column(keys.EXTRACT_UNCERTAINTY) == "c_ubmd[1]"
    assert keys.pair_column(keys.EXTRACT_SCALE_STRESS, compute_id="g") == "c_g[4]"
    assert keys.pair_column("max_atomic_uncertainty") == "c_ubmd[5]"
    with pytest.raises(ValueError, match="bias_scale_forces"):
        keys.pair_column("cutoff")


def test_uncertainty_modes_and_keywords():
    assert keys.UNCERTAINTY_MODES[0] == keys.UNCERTAINTY_MODE_BOTH == "both"
    assert keys.UNCERTAINTY_MODE_TOTAL not in keys.UNCERTAINTY_MODES  # an alias
    assert keys.PAIR_KW_TAU_FORCES in keys.PAIR_KEYWORDS
    assert keys.PAIR_KW_TAU_FORCES_ALIAS not in keys.PAIR_KEYWORDS  # an alias
    assert keys.UNCERTAINTY_KINDS[0] == keys.UNCERTAINTY_NONE


@pytest.mark.parametrize("prefix", ["EXTRACT_", "PAIR_KW_", "UNCERTAINTY_MODE_"])
def test_plugin_uses_the_constants_not_string_literals(header, prefix):
    """pair_ubmd*.cpp and compute_ubmd_atom.cpp name these only through ubmd_keys.h."""
    names = {v for n, v in header.items() if n.startswith(prefix) and isinstance(v, str)}
    sources = sorted(PLUGIN.glob("pair_ubmd*.cpp")) + [PLUGIN / "compute_ubmd_atom.cpp"]
    found = []
    for src in sources:
        strings = re.findall(r'"((?:\\.|[^"\\])*)"', _strip_comments(src.read_text()))
        found += [(src.name, s) for s in strings if s in names]
    assert not found, f"spell these through ubmd::keys: {found}"
