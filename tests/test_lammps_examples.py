"""The example input decks run (a few steps, with a model file from the real exporter)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lammps_helpers import PLUGIN, ROOT, lmp_exe, real_model_file, requires_plugin

pytestmark = requires_plugin


@pytest.mark.parametrize("example, deck, zs", [
    ("ala2", "in.biased_nvt.lmp", (6, 1, 7, 8)),
    ("mil53", "in.biased_npt.lmp", (13, 6, 1, 8)),
])
def test_example_deck_runs(tmp_path, example, deck, zs):
    src = ROOT / "examples" / example
    for f in src.iterdir():
        if f.suffix in (".data", ".lmp"):
            shutil.copy(f, tmp_path / f.name)
    model = real_model_file(tmp_path / "model.pt", zs=zs)
    cmd = [lmp_exe(), "-nocite", "-in", deck, "-var", "model", model, "-var", "plugin",
           str(PLUGIN), "-var", "steps", "20", "-var", "umax", "1e30"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert (tmp_path / "candidates.lammpstrj").exists()
    assert (tmp_path / "final.data").exists()
    assert "Loop time" in p.stdout
