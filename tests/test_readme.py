"""The README's commands and its LAMMPS snippet agree with the repository's example decks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks() -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)


def test_first_commands_set_up_and_run():
    assert _blocks()[0].splitlines() == [
        "bash scripts/setup.sh && .venv/bin/ubmd al run examples/cu/config.yaml --output runs/cu",
        "bash scripts/setup.sh && .venv/bin/python -m pytest -q",
    ]


def test_lammps_snippet_is_the_alanine_nvt_deck_without_bias_stress():
    """The three-line snippet is the molecule (NVT) case: no tau_stress, which acts through the
    barostat on periodic cells only; the text after it says where tau_stress belongs."""
    snippet = next(b for b in _blocks() if "pair_style ubmd" in b).splitlines()
    assert len(snippet) == 3 and snippet[0].startswith("plugin load ")
    style, coeff = snippet[1].split(), snippet[2].split()
    assert "tau_stress" not in style and "tau_forces" in style
    deck = (ROOT / "examples" / "ala2" / "in.biased_nvt.lmp").read_text()
    deck_style = re.search(r"^pair_style\s+(.*)$", deck, flags=re.M)[1].split()
    deck_coeff = re.search(r"^pair_coeff\s+(.*)$", deck, flags=re.M)[1].split()
    assert "tau_stress" not in deck_style and "tau_forces" in deck_style
    weights = style[style.index("weights"):]
    assert weights == deck_style[deck_style.index("weights"):]  # weights H 0.0
    assert coeff[4:] == deck_coeff[3:] == ["C", "H", "N", "O"]
    after = " ".join(README.split("pair_coeff * * model.pt C H N O\n```", 1)[1].split()[:80])
    assert "tau_stress" in after and "NPT" in after
