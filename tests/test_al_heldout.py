"""AL campaigns from configs a user writes for their own system: misspelt keys, several start
structures of different compositions, molecules with LAMMPS walkers, dihedrals that do not fit the
molecule, frame indices, bias weights of absent elements, a reference without stress, and a
second `ubmd al run` with an edited config."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from ase.build import molecule

from test_al import campaign_dict, start_cell
from ubmd.al import al_config_from_dict, run_campaign
from ubmd.al.config import WalkerConfig, save_al_config
from ubmd.data import read_structures


def _tiny(tmp_path, **over):
    """A campaign of a few seconds: 2 rounds, few epochs, short walkers."""
    base = {"label_budget": 12, "max_rounds": 2, "training": {"max_epochs": 3},
            "walkers": {"max_steps": 12, "sample_every": 4, "n_walkers": 2, "threshold": 1e6}}
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return campaign_dict(tmp_path, **base)


# ------------------------------------------------------------------------------ config keys
@pytest.mark.parametrize("section, key, right", [
    ("walkers", "temprature", "walkers.temperature"),
    ("selection", "batchsize", "selection.batch_size"),
    ("training", "epochs", "training.max_epochs"),
    (None, "label_budjet", "label_budget"),
])
def test_misspelt_key_is_named_with_the_right_one(tmp_path, section, key, right):
    d = campaign_dict(tmp_path)
    if section is None:
        d[key] = 3
    else:
        d[section] = {**d[section], key: 3}
    name = f"{section}.{key}" if section else key
    with pytest.raises(ValueError, match=rf"unknown config key {name}; did you mean {right}\b"):
        al_config_from_dict(d)


def test_initial_index_is_checked(tmp_path):
    """A malformed initial.index is a config error; one that selects no frame of the file says
    so (ASE's own error is a bare StopIteration) before anything is labelled."""
    d = campaign_dict(tmp_path)
    with pytest.raises(ValueError, match="initial.index must be a frame number or a slice"):
        al_config_from_dict({**d, "initial": {**d["initial"], "index": "1-2"}})
    d["initial"] = {**d["initial"], "index": "5"}
    with pytest.raises(ValueError, match=r"initial.index '5' selects no frame of .*\(1 frame"):
        run_campaign(al_config_from_dict(d), log=lambda s: None)
    assert not (Path(d["output"]) / "round_000" / "labels").exists()


# ------------------------------------------------------------------------------ dihedrals
def test_dihedrals_must_fit_every_start_structure(tmp_path):
    """Dihedrals naming atoms a start molecule does not have are refused before round 0 labels
    anything (they used to fail every walker after the first training); repeated indices are a
    config error."""
    d = _tiny(tmp_path)
    molecule("CH3CH2OH").write(d["initial"]["structures"])
    bad = {**d, "dihedrals": {"phi": [0, 1, 2, 30], "psi": [0, 1, 2, 3]}}
    with pytest.raises(ValueError, match=r"dihedrals \{'phi': \[0, 1, 2, 30\]\}.*9 atoms"):
        run_campaign(al_config_from_dict(bad), log=lambda s: None)
    assert not (Path(d["output"]) / "round_000" / "labels").exists()
    with pytest.raises(ValueError, match="distinct"):
        al_config_from_dict({**d, "dihedrals": {"phi": [0, 0, 1, 2], "psi": [0, 1, 2, 3]}})


# ------------------------------------------------------------------ several start structures
@pytest.mark.campaign
def test_walkers_explore_every_start_structure(tmp_path):
    """Two molecules as start structures with 2 walkers: one walker starts from each (walker k
    took the k-th labelled structure, so both started from copies of the first molecule and
    the second was never explored); later rounds keep the origin in ``start_index``."""
    a, b = tmp_path / "h2o.xyz", tmp_path / "ch4.xyz"
    molecule("H2O").write(a)
    molecule("CH4").write(b)
    d = _tiny(tmp_path, label_budget=12, max_rounds=2,
              initial={"structures": [str(a), str(b)], "n_perturbed": 3})
    run_campaign(al_config_from_dict(d), log=lambda s: None)
    out = Path(d["output"])
    pool = read_structures(out / "round_000" / "pool.extxyz")
    assert {f.get_chemical_formula() for f in pool} == {"H2O", "CH4"}
    origin = {f.get_chemical_formula(): f.info["start_index"] for f in pool}
    assert origin == {"H2O": 0, "CH4": 1}
    labelled = read_structures(out / "round_001" / "labelled.extxyz")
    assert all("start_index" in f.info for f in labelled)


def test_walker_starts_round_robin_over_origins():
    from ubmd.al.walkers import start_groups, walker_start

    def interleave_starts(frames):  # the walkers' starts, one walker per frame
        groups = start_groups(frames)
        return [walker_start(groups, k) for k in range(len(frames))]

    frames = []
    for k, name in enumerate(["H2O", "CH4", "NH3"]):
        for j in range(3):
            m = molecule(name)
            m.info["start_index"] = k
            m.info["j"] = j
            frames.append(m)
    order = [(f.info["start_index"], f.info["j"]) for f in interleave_starts(frames)]
    assert order[:3] == [(0, 0), (1, 0), (2, 0)] and order[3:6] == [(0, 1), (1, 1), (2, 1)]
    plain = [molecule("H2O"), molecule("H2O"), molecule("CH4")]  # no origin: by formula
    assert [f.get_chemical_formula() for f in interleave_starts(plain)] == ["H2O", "CH4", "H2O"]


# ------------------------------------------------------------------------------ LAMMPS walkers
def test_lammps_deck_drops_weights_of_elements_not_in_the_model(tmp_path):
    """`weights: {H: 0.0}` in a config for a system without H: the ASE walkers ignore it, and
    so does the LAMMPS deck now (pair_style ubmd stops with 'element H is not in the model')."""
    from ubmd.md import WalkerTask
    from ubmd.md.lammps_engine import deck_text

    p = WalkerConfig(engine="lammps", weights={"H": 0.0, "Cu": 0.5})
    task = WalkerTask(0, "lammps", "/m/model.pt", start_cell(), str(tmp_path), 300.0, 0.0, 1, p,
                      species=["Al", "Cu"])
    deck = deck_text(task, Path("/p/ubmdplugin.so"), True, "p p p")
    assert "pair_style ubmd tau_forces 0.25 window 100 weights Cu 0.5\n" in deck


@pytest.mark.campaign
def test_lammps_nvt_walkers_on_a_small_molecule(tmp_path):
    """A planar molecule (H2O) in no cell with LAMMPS NVT walkers: the non-periodic directions
    use `m` boundaries (with `s` the box shrank to the molecule, below the cutoff, and LAMMPS
    stopped: 'Cannot use neighbor bins - box size << cutoff')."""
    from ubmd.md.settings import LammpsConfig
    from ubmd.md.engines import lammps_available

    if not lammps_available(LammpsConfig()):
        pytest.skip("ubmd LAMMPS plugin not built (bash scripts/build_plugin.sh) or lmp missing")
    # (no runaway guard: the 4-label model heats the 3 atoms past it within steps, and the
    # boundaries must hold over the whole run)
    d = _tiny(tmp_path, label_budget=8, walkers={"engine": "lammps", "thermostat": "nose_hoover",
                                                 "runaway_factor": None},
              initial={"n_perturbed": 3})
    molecule("H2O").write(d["initial"]["structures"])
    result = run_campaign(al_config_from_dict(d), log=lambda s: None)
    r0 = result["rounds"][0]
    assert r0["engine"] == "lammps" and r0["n_pool"] >= 2
    assert all(w["stop_reason"] == "max_steps" for w in r0["walkers"]), r0["walkers"]
    deck = (Path(d["output"]) / "round_000" / "walkers" / "w00" / "in.walker.lmp").read_text()
    assert "boundary m m m" in deck


# ------------------------------------------------------------------------------ reference
def test_reference_without_stress_names_the_al_option(tmp_path):
    """A calculator without stress on a periodic cell: the failure names reference.stress."""
    calc_file = tmp_path / "nostress.py"
    calc_file.write_text(
        "from ase.calculators.calculator import Calculator, all_changes\n"
        "from ase.calculators.emt import EMT\n\n"
        "class NoStressEMT(Calculator):\n"
        "    implemented_properties = ['energy', 'forces']\n"
        "    def __init__(self, scale=1.0, **kw):\n"
        "        super().__init__(**kw)\n"
        "        self.scale = scale\n"
        "    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):\n"
        "        super().calculate(atoms, properties, system_changes)\n"
        "        a = self.atoms.copy()\n"
        "        a.calc = EMT()\n"
        "        self.results = {'energy': self.scale * a.get_potential_energy(),\n"
        "                        'forces': self.scale * a.get_forces()}\n")
    from ubmd.labelling import label_one

    spec = {"import": f"{calc_file}:NoStressEMT", "kwargs": {"scale": 2.0}}
    with pytest.raises(Exception, match="reference.stress: false"):
        label_one(start_cell(), spec)
    out = label_one(start_cell(), spec, properties=("energy", "forces"))
    assert out["stress"] is None and out["energy"] != 0.0


# ------------------------------------------------------------------------------ edited config
@pytest.mark.campaign
def test_run_with_an_edited_config_names_what_changed(tmp_path):
    """`ubmd al run` on a directory whose campaign has another config lists the differences and
    says how to change a campaign's settings (edit DIR/config.yaml and resume)."""
    from ubmd.al.campaign import absolute_paths
    from ubmd.al.layout import CampaignLayout

    d = campaign_dict(tmp_path)
    out = Path(d["output"])
    out.mkdir()
    save_al_config(absolute_paths(al_config_from_dict(d)), out / "config.yaml")
    CampaignLayout(out).round(0).mark("propose", n=8)  # the campaign has started
    edited = {**d, "label_budget": 40, "selection": {**d["selection"], "batch_size": 4}}
    with pytest.raises(ValueError, match=r"label_budget: 24 in the campaign, 40 here; "
                                         r"selection.batch_size: 8 in the campaign, 4 here.*"
                                         r"edit .*config.yaml and resume"):
        run_campaign(al_config_from_dict(edited), log=lambda s: None)
    assert [p.name for p in out.glob("round_*/*")] == ["state.json"]


def test_npt_without_stress_labels_warns(tmp_path):
    d = campaign_dict(tmp_path)
    d["walkers"] = {**d["walkers"], "ensemble": "npt"}
    d["reference"] = {**d["reference"], "stress": False}
    with pytest.warns(UserWarning, match="reference.stress false: the model learns no stress"):
        al_config_from_dict(d)
    d["reference"]["stress"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        al_config_from_dict(d)


@pytest.mark.parametrize("n_groups, n_settings", [(2, 2), (3, 2), (2, 1), (2, 4), (1, 2)])
def test_every_start_structure_meets_every_walker_setting(n_groups, n_settings):
    """Walker k runs setting k % n_settings (temperature/pressure lists); with two start cells
    and pressures [+p, -p] each cell must see both pressures (round-robin alone paired cell 0
    with +p and cell 1 with -p for good)."""
    from ubmd.al.walkers import start_groups, walker_start

    frames = []
    for g in range(n_groups):
        for j in range(3):
            a = molecule("H2O")
            a.info.update(start_index=g, j=j)
            frames.append(a)
    groups = start_groups(frames)
    n_walkers = n_groups * n_settings * 2
    picks = [walker_start(groups, k, n_settings) for k in range(n_walkers)]
    pairs = {(p.info["start_index"], k % n_settings) for k, p in enumerate(picks)}
    assert pairs == {(g, s) for g in range(n_groups) for s in range(n_settings)}
    per_group = [sum(p.info["start_index"] == g for p in picks) for g in range(n_groups)]
    assert per_group == [n_walkers // n_groups] * n_groups
    if n_groups == 1:  # one origin: frame k mod n, as before
        assert [p.info["j"] for p in picks] == [k % 3 for k in range(n_walkers)]
