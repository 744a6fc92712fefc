"""The documentation stands alone: the Sphinx site builds without a warning, the scripts of the
Python guide (docs/python.md) and the quick start run as they are written, and the pages name no
path outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def guide_scripts() -> dict[str, str]:
    """The ```python blocks of docs/python.md, by the section (## ...) they stand in."""
    text = (DOCS / "python.md").read_text()
    out = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        if blocks:
            out[title] = "\n".join(blocks)
    return out


def _run(script: str, cwd: Path, timeout: float) -> str:
    path = cwd / "script.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(path)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_the_guide_has_both_scripts():
    assert set(guide_scripts()) == {"One round by components", "A whole campaign"}
    for script in guide_scripts().values():
        assert 'if __name__ == "__main__":' in script


@pytest.mark.campaign
def test_guide_one_round_by_components(tmp_path):
    out = _run(guide_scripts()["One round by components"], tmp_path, 600)
    assert "labels: 12/12 labelled, 0 failed" in out
    assert re.search(r"walker 1: (threshold|runaway|max_steps) after \d+ steps", out)
    assert "selected: frames of steps" in out and "u = " in out
    for name in ("model.pt", "data.extxyz", "config.yaml", "calibration.json"):
        assert (tmp_path / "round_0" / name).exists(), name


@pytest.mark.campaign
def test_guide_whole_campaign(tmp_path):
    out = _run(guide_scripts()["A whole campaign"], tmp_path, 900)
    assert re.search(r"round 2: 24 labels, validation F [\d.]+ eV/Å", out)
    assert "exported float32 model of round 2" in out
    log = (tmp_path / "campaign" / "log.txt").read_text().splitlines()
    assert sum(1 for line in log if re.match(r"round \d: \d+ new labels", line)) == 3
    assert "round 0: labels 8/24" in out  # the round lines reach stderr (no logging set up)


@pytest.mark.campaign
def test_quickstart_runs(tmp_path):
    out = _run((ROOT / "examples" / "quickstart.py").read_text().replace(
        'default="runs/quickstart"', f'default="{tmp_path / "qs"}"'), tmp_path, 600)
    assert "validation errors" in out and "biased" in out
    assert (tmp_path / "qs" / "model.pt").exists()


def test_quickstart_and_guide_are_linked():
    readme = (ROOT / "README.md").read_text()
    assert "examples/quickstart.py" in readme and "docs/python.md" in readme
    assert "../examples/quickstart.py" in (DOCS / "quickstart.md").read_text()


def test_no_path_outside_the_repository():
    """Docs, help texts and examples name paths in the repository only (no ../shared, no
    absolute paths of a development machine)."""
    bad = re.compile(r"\.\./shared|/work/|/home/\w+|/Users/\w+|shared data folder")
    files = [*DOCS.glob("*.md"), *DOCS.glob("*.rst"), ROOT / "README.md",
             *(ROOT / "python" / "ubmd").rglob("*.py"), *(ROOT / "examples").rglob("*.py"),
             *(ROOT / "examples").rglob("*.yaml"), *(ROOT / "examples").rglob("*.lmp")]
    hits = [f"{f.relative_to(ROOT)}: {m.group(0)}" for f in files
            for m in bad.finditer(f.read_text(errors="replace"))]
    assert not hits, hits


@pytest.mark.slow
def test_docs_site_builds_without_warnings(tmp_path):
    """sphinx-build -W: every page (the Markdown ones through MyST), the API reference (autodoc
    of every public name) and the LAMMPS page; a warning is an error."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(DOCS), str(tmp_path / "html")], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    api = (tmp_path / "html" / "api.html").read_text()
    import ubmd

    for name in ubmd.__all__:
        if name != "__version__":
            assert f'id="ubmd.{name}"' in api, name
    for member in ("UBMDCalculator.todict", "UBMDCalculator.set", "UBMDCalculator.reset",
                   "Campaign.run", "RoundLayout.mark", "al.stages.label"):
        assert f'id="ubmd.{member}"' in api, member


@pytest.mark.campaign
def test_cluster_recipe_with_a_local_dask_cluster(tmp_path):
    """docs/cluster.md's script with --scheduler local: walkers and labels on Dask workers; run
    again (a new cluster, a new scheduler address), it finds the campaign finished."""
    pytest.importorskip("distributed")
    import yaml

    from ase.build import bulk

    start = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1, 1, 2))
    start.symbols[[0, 5]] = "Al"
    start.write(tmp_path / "start.extxyz")
    cfg = {"output": "run", "label_budget": 12, "max_rounds": 2,
           "initial": {"structures": "start.extxyz", "n_perturbed": 5},
           "reference": {"calculator": "emt", "n_workers": 2},
           "walkers": {"engine": "ase", "n_walkers": 2, "temperature": 600, "max_steps": 40,
                       "sample_every": 4, "threshold": 50.0, "window": 10},
           "data": {"valid_fraction": 0.25},
           "model": {"cutoff": 4.0, "n_radial": 4, "n_basis": 6, "hidden": [16, 16]},
           "training": {"max_epochs": 10, "batch_size": 4, "progress": False}}
    (tmp_path / "al.yaml").write_text(yaml.safe_dump(cfg))
    script = (ROOT / "examples" / "cluster" / "campaign_on_dask.py").read_text()
    script = script.replace("def main(argv=None)", "def main(argv=['al.yaml', '--scheduler', "
                                                   "'local', '--workers', '2'])")
    out = _run(script, tmp_path, 600)
    assert "campaign finished: 2 rounds, 12 labels" in out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["executor"]["kind"] == "dask" and saved["executor"]["address"].startswith("tcp")
    out = _run(script, tmp_path, 600)  # another cluster: resumed, nothing to do
    assert "campaign finished: 2 rounds, 12 labels" in out
