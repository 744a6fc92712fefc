"""Config schemas of ``ubmd train`` (ubmd.config) and ``ubmd al run`` (ubmd.al.config): choices,
typed conversion, empty sections, ranges, bias weights, paths relative to the config file, CLI
errors, docs/config.md, and every shipped config loading. Fast: one training of a tiny model for
one epoch (the relative-path round trip through ``ubmd train`` / ``ubmd export``)."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT

from ubmd.al.config import ALConfig, WalkerConfig, al_config_from_dict, load_al_config
from ubmd.config import (TrainRunConfig, check, from_dict, load_train_config, merge, nested,
                         parse_overrides, resolve_paths)
from ubmd.md.settings import LammpsConfig

ROOT = Path(__file__).resolve().parents[1]


def al_dict(tmp_path, **sections) -> dict:
    d = {"output": str(tmp_path / "run"), "initial": {"structures": str(tmp_path / "s.extxyz")},
         "reference": {"calculator": "emt"}}
    return merge(d, sections)


def train_dict(**sections) -> dict:
    return merge({"data": {"train": "d.extxyz"}}, sections)


def cu_frames(n: int):
    frames = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True)
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        a.get_potential_energy()
        a.get_forces()
        frames.append(a)
    return frames


# ------------------------------------------------------------------------------ 1. choices
TRAIN_CHOICES = [("uncertainty", "kind", "Posterior", "posterior, distance"),
                 ("uncertainty", "kind", "posterir", "ensemble"),
                 ("uncertainty", "features", "sketchy", "last_layer, sketch"),
                 ("uncertainty", "calibration", "conformall", "conformal, max_likelihood"),
                 ("training", "dtype", "float16", "float32, float64"),
                 (None, "export_dtype", "float16", "float32, float64")]


@pytest.mark.parametrize("section,key,bad,allowed", TRAIN_CHOICES)
def test_train_choice_fields(section, key, bad, allowed):
    d = train_dict(**({section: {key: bad}} if section else {key: bad}))
    name = f"{section}.{key}" if section else key
    with pytest.raises(ValueError, match=rf"{re.escape(name)} must be one of .*{allowed}.*{bad}"):
        from_dict(TrainRunConfig, d)


# the training sections inside an AL config (walkers/selection/executor choices: test_al.py)
AL_CHOICES = TRAIN_CHOICES


@pytest.mark.parametrize("section,key,bad,allowed", AL_CHOICES)
def test_al_choice_fields(tmp_path, section, key, bad, allowed):
    d = al_dict(tmp_path, **({section: {key: bad}} if section else {key: bad}))
    name = f"{section}.{key}" if section else key
    with pytest.raises(ValueError, match=rf"{re.escape(name)} must be one of .*{allowed}.*{bad}"):
        al_config_from_dict(d)


def test_al_calculator_spec_checked_up_front(tmp_path):
    with pytest.raises(ValueError, match="reference.calculator: unknown calculator name 'emtt'"):
        al_config_from_dict(al_dict(tmp_path, reference={"calculator": "emtt"}))
    with pytest.raises(ValueError, match="reference.calculator: .*must look like"):
        al_config_from_dict(al_dict(tmp_path, reference={"calculator": {"import": "nocolon"}}))


# ------------------------------------------------------------------------------ 2. types
def test_train_numbers_from_yaml_strings(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {train: d.extxyz}\ntraining:\n  lr: 1e-3\n"
                                     "  max_time_s: 6e2\n  max_epochs: 1e3\n  progress: 'no'\n"
                                     "model: {hidden: [1.6e1, '32']}\n")
    assert isinstance(yaml.safe_load((tmp_path / "c.yaml").read_text())["training"]["lr"], str)
    cfg = load_train_config(tmp_path / "c.yaml",
                            ["training.lr_final=5e-5", "uncertainty.alpha=1e-1"])
    t = cfg.training
    assert (t.lr, t.lr_final, t.max_time_s, t.max_epochs, t.progress) == (1e-3, 5e-5, 600.0, 1000,
                                                                          False)
    assert type(t.lr) is float and type(t.max_epochs) is int and cfg.uncertainty.alpha == 0.1
    assert cfg.model.hidden == [16, 32] and all(type(h) is int for h in cfg.model.hidden)


@pytest.mark.parametrize("section,key,bad,msg", [
    ("training", "lr", "fast", "training.lr must be a number, got 'fast'"),
    ("training", "max_epochs", 1.5, "training.max_epochs must be an integer, got 1.5"),
    ("training", "batch_size", "8x", "training.batch_size must be an integer"),
    ("training", "progress", "maybe", "training.progress must be true or false"),
    ("training", "lr", True, "training.lr must be a number, got True"),
    ("model", "hidden", [16, "wide"], r"model.hidden\[1\] must be an integer"),
    ("model", "hidden", 16, "model.hidden must be a list"),
    ("training", "max_time_s", "soon", "training.max_time_s must be a number"),
    ("training", "lr", None, "training.lr must not be null")])
def test_train_unconvertible_values_name_the_key(section, key, bad, msg):
    with pytest.raises(ValueError, match=msg):
        from_dict(TrainRunConfig, train_dict(**{section: {key: bad}}))


@pytest.mark.parametrize("section, key, hint", [
    ("training", "max_epoch", r"training\.max_epochs"),
    ("model", "hiden", r"model\.hidden"),
    ("uncertainty", "knd", r"uncertainty\.kind"),
])
def test_train_misspelt_keys_suggest_the_right_one(section, key, hint):
    """ubmd train configs get the same 'did you mean' as AL configs (one implementation)."""
    with pytest.raises(ValueError, match=rf"unknown config key {section}\.{key}; did you mean "
                                         rf"{hint}\b.*valid keys of {section}:"):
        from_dict(TrainRunConfig, train_dict(**{section: {key: 1}}))


def test_al_numbers_from_yaml_strings(tmp_path):
    text = ("initial: {structures: s.extxyz, n_perturbed: 7e0}\n"
            "reference: {calculator: emt, timeout_s: 3e2}\n"
            "training: {max_time_s: 6e2, lr: 3e-2}\n"
            "walkers: {max_time_s: 1e3, temperature: [3e2, 6e2], pressure: 1e3, max_steps: 2e4,"
            " threshold_relative: 2e0, weights: {H: 0}}\n")
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_al_config(tmp_path / "c.yaml")
    assert cfg.reference.timeout_s == 300.0 and cfg.training.max_time_s == 600.0
    assert cfg.training.lr == 0.03 and cfg.initial.n_perturbed == 7
    w = cfg.walkers
    assert w.max_time_s == 1000.0 and w.temperature == [300.0, 600.0] and w.pressure == 1000.0
    assert w.max_steps == 20000 and type(w.max_steps) is int and w.threshold_relative == 2.0
    assert w.weights == {"H": 0.0}
    with pytest.raises(ValueError, match=r"walkers.temperature\[1\] must be a number"):
        al_config_from_dict(al_dict(tmp_path, walkers={"temperature": [300, "hot"]}))
    with pytest.raises(ValueError, match="reference.timeout_s must be a number"):
        al_config_from_dict(al_dict(tmp_path, reference={"timeout_s": "5 min"}))


# ------------------------------------------------------------------------------ 3. sections
def test_null_sections_are_defaults_and_non_mappings_are_errors(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {train: d.extxyz}\nmodel:\n#  cutoff: 4.0\n"
                                     "training:\n")
    cfg = load_train_config(tmp_path / "c.yaml")
    assert cfg.model == TrainRunConfig().model and cfg.training == TrainRunConfig().training
    cfg = al_config_from_dict(al_dict(tmp_path, walkers={"lammps": None, "weights": None},
                                      selection=None))
    assert cfg.walkers.lammps == LammpsConfig() and cfg.walkers.weights == {}
    assert cfg.selection.method == "max_det"
    with pytest.raises(ValueError, match="model must be a mapping"):
        from_dict(TrainRunConfig, train_dict(model=5))
    with pytest.raises(ValueError, match="walkers.lammps must be a mapping"):
        al_config_from_dict(al_dict(tmp_path, walkers={"lammps": ["lmp"]}))
    with pytest.raises(ValueError, match="training must be a mapping"):
        load_train_config(tmp_path / "c.yaml", ["training=fast"])


# ------------------------------------------------------------------------------ 4. ranges
@pytest.mark.parametrize("section,key,bad", [
    ("training", "batch_size", -1), ("training", "batch_size", 0), ("training", "valid_every", 0),
    ("training", "max_epochs", 0), ("training", "n_models", 0), ("training", "lr", 0),
    ("training", "patience", 0), ("training", "n_workers", 0), ("training", "max_time_s", -5),
    ("training", "final_fraction", 1.0), ("training", "ema_decay", 1.0),
    ("training", "num_threads", 0), ("model", "cutoff", 0), ("model", "hidden", [16, 0]),
    ("uncertainty", "alpha", 1.0), ("uncertainty", "n_sketch", 0),
    ("data", "valid_fraction", 1.5), ("data", "valid_fraction", -0.1),
    ("data", "test_fraction", 2.5)])
def test_train_ranges(section, key, bad):
    with pytest.raises(ValueError, match=rf"{section}\.{key}"):
        from_dict(TrainRunConfig, train_dict(**{section: {key: bad}}))


def test_valid_fraction_semantics_kept():
    for value in (0.0, 0.25, 1, 5, 5.0):  # a fraction in [0, 1) or a whole count
        cfg = from_dict(TrainRunConfig, train_dict(data={"valid_fraction": value}))
        assert cfg.data.valid_fraction == value
    assert type(from_dict(TrainRunConfig, train_dict(data={"valid_fraction": 5})
                          ).data.valid_fraction) is int
    with pytest.raises(ValueError, match="valid_fraction .* must be < 1"):
        from_dict(TrainRunConfig, train_dict(data={"valid_fraction": 0.6, "test_fraction": 0.5}))
    with pytest.raises(ValueError, match="uncertainty.kind ensemble needs training.n_models >= 2"):
        from_dict(TrainRunConfig, train_dict(uncertainty={"kind": "ensemble"}))


@pytest.mark.parametrize("section,key,bad", [
    ("walkers", "temperature", []), ("walkers", "pressure", []), ("walkers", "seed", -1),
    ("reference", "timeout_s", 0), ("initial", "strain", 1.5), ("initial", "displacement", -0.1),
    ("training", "batch_size", -1), ("training", "valid_every", 0),
    ("uncertainty", "n_sketch", 0), ("walkers.lammps", "neighbor_skin", -1)])
def test_al_ranges(tmp_path, section, key, bad):
    if section == "walkers.lammps":
        d = al_dict(tmp_path, walkers={"lammps": {key: bad}})
    else:
        d = al_dict(tmp_path, **({section: {key: bad}} if section else {key: bad}))
    with pytest.raises(ValueError, match=re.escape(f"{section}.{key}" if section else key)):
        al_config_from_dict(d)


# ------------------------------------------------------------------------------ 5. weights
def test_bias_weight_keys_are_chemical_symbols(tmp_path):
    with pytest.raises(ValueError, match=r"walkers.weights: 'h' not chemical symbol"):
        al_config_from_dict(al_dict(tmp_path, walkers={"weights": {"h": 0}}))
    with pytest.raises(ValueError, match="walkers.weights: 'Hydrogen'"):
        check(WalkerConfig(weights={"Hydrogen": 0.0}), "walkers")
    with pytest.raises(ValueError, match="walkers.weights.H must be a number"):
        al_config_from_dict(al_dict(tmp_path, walkers={"weights": {"H": "none"}}))
    cfg = al_config_from_dict(al_dict(tmp_path, walkers={"weights": {"H": 0, "Cu": "5e-1"}}))
    assert cfg.walkers.weights == {"H": 0.0, "Cu": 0.5}


# ------------------------------------------------------------------------------ 6. paths
def test_train_paths_relative_to_the_config_file(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yaml").write_text("data: {train: [a.extxyz, ../b.extxyz]}\noutput: run\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_train_config(Path("..") / "sub" / "c.yaml")
    assert cfg.data.train == [str(sub / "a.extxyz"), str(tmp_path / "b.extxyz")]
    assert cfg.output == str(sub / "run")
    # command-line paths are relative to the working directory; defaults too
    cfg = load_train_config(sub / "c.yaml", ["data.train=x.extxyz"], output="out")
    assert cfg.data.train == str(elsewhere / "x.extxyz") and cfg.output == str(elsewhere / "out")
    (sub / "d.yaml").write_text("data: {train: /abs/x.extxyz}\n")
    cfg = load_train_config(sub / "d.yaml")
    assert cfg.data.train == "/abs/x.extxyz" and cfg.output == str(elsewhere / "runs" / "model")


def test_al_paths_relative_to_the_config_file(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    d = {"output": "run", "initial": {"structures": "s.extxyz", "data": ["l.extxyz"]},
         "reference": {"calculator": {"import": "calcs/my.py:Calc", "kwargs": {"x": 1}}},
         "walkers": {"lammps": {"plugin": "p.so"}}}
    (sub / "c.yaml").write_text(yaml.safe_dump(d))
    monkeypatch.chdir(tmp_path)
    cfg = load_al_config("sub/c.yaml")
    assert cfg.output == str(sub / "run")
    assert cfg.initial.structures == str(sub / "s.extxyz")
    assert cfg.initial.data == [str(sub / "l.extxyz")]
    assert cfg.walkers.lammps.plugin == str(sub / "p.so")
    assert cfg.reference.calculator == {"import": f"{sub / 'calcs' / 'my.py'}:Calc",
                                        "kwargs": {"x": 1}}
    # module paths and built-in names are not files
    d["reference"]["calculator"] = {"import": "ase.calculators.emt:EMT"}
    (sub / "c.yaml").write_text(yaml.safe_dump(d))
    assert load_al_config(sub / "c.yaml").reference.calculator == d["reference"]["calculator"]


# ------------------------------------------------------------------------------ 7. CLI
def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys):
    from ubmd.cli import main

    def err(args) -> str:
        assert main(args) == 2, args
        text = capsys.readouterr().err
        assert "Traceback" not in text
        return text

    assert "ubmd train: error: config file not found" in err(["train", str(tmp_path / "no.yaml")])
    (tmp_path / "bad.yaml").write_text("data: {train: d.extxyz}\ntraining: {lr: fast}\n")
    text = err(["train", str(tmp_path / "bad.yaml")])
    assert "ubmd train: error: training.lr must be a number" in text
    (tmp_path / "c.yaml").write_text("data: {train: missing.extxyz}\noutput: run\n")
    text = err(["train", str(tmp_path / "c.yaml")])
    assert "ubmd train: error: data.train: file not found" in text and "missing.extxyz" in text
    assert not (tmp_path / "run").exists()  # nothing written before the input is checked
    assert "--set expects key=value" in err(["train", str(tmp_path / "c.yaml"), "--set", "lr"])
    assert "ubmd export: error:" in err(["export", str(tmp_path / "none"), "-o",
                                         str(tmp_path / "m.pt")])
    assert "ubmd calibrate: error:" in err(["calibrate", str(tmp_path / "none")])
    assert "ubmd evaluate: error: model file not found" in err(
        ["evaluate", str(tmp_path / "m.pt"), str(tmp_path / "d.extxyz")])
    (tmp_path / "al.yaml").write_text("initial: {structures: s.extxyz}\n"
                                      "reference: {calculator: emt}\nwalkers: {weights: {h: 0}}\n")
    assert "ubmd al run: error: walkers.weights" in err(["al", "run", str(tmp_path / "al.yaml")])
    assert "ubmd al resume: error:" in err(["al", "resume", str(tmp_path / "none")])
    # ubmd md checks its files first, then its flags (by flag name: tests/test_md_ase.py)
    assert "ubmd md: error: model file not found" in err(
        ["md", str(tmp_path / "m.pt"), str(tmp_path / "s.xyz"), "--out", str(tmp_path / "md"),
         "--weights", "h=0"])


def test_cli_says_what_was_given_for_a_model_file_or_run_dir(tmp_path, capsys):
    """A run directory given as the model file names its model.pt; a model file given as the run
    directory says it is a file; `ubmd` alone prints the usage with status 2."""
    from ubmd.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"")
    (tmp_path / "d.extxyz").write_text("")
    for args in (["evaluate", str(run), str(tmp_path / "d.extxyz")],
                 ["md", str(run), str(tmp_path / "d.extxyz"), "--out", str(tmp_path / "md")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{run} is a directory, not a model file: did you mean {run / 'model.pt'}?" in err
    for args in (["export", str(run / "model.pt"), "-o", str(tmp_path / "m.pt")],
                 ["calibrate", str(run / "model.pt")]):
        assert main(args) == 2
        assert "is a file, not a run directory" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none"), "-o", str(tmp_path / "m.pt")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: ubmd <subcommand>") and not captured.out


@pytest.mark.parametrize("args, wanted", [
    (["al", "run", "--help"], ["docs/config.md"]),
    (["evaluate", "--help"], ["With -o DIR it also writes", "predictions.extxyz", "parity.png",
                              "eV/atom", "miscoverage level"]),
    (["calibrate", "--help"], ["miscoverage level"]),
])
def test_cli_help_texts(args, wanted, capsys):
    from ubmd.cli import main

    with pytest.raises(SystemExit):
        main(args)
    out = " ".join(capsys.readouterr().out.replace("``", "").split())  # unwrapped
    for text in wanted:
        assert text in out, (args, text)


def test_cli_help_into_a_closed_pipe_is_quiet():
    """`ubmd -h | head -1`: the reader goes away before ubmd writes; no BrokenPipeError
    traceback."""
    import subprocess
    import sys

    code = "import sys; from ubmd.cli import main; sys.stdin.read(); sys.exit(main(['-h']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before ubmd writes
    _, err = proc.communicate(b"")
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()


def test_train_and_export_from_other_directories(tmp_path, monkeypatch):
    """Relative data path in the config, trained from one directory, exported and recalibrated
    from another: the run's config.yaml holds absolute paths."""
    from ase.io import write

    from ubmd.cli import main

    proj = tmp_path / "proj"
    proj.mkdir()
    write(proj / "data.extxyz", cu_frames(6))
    (proj / "c.yaml").write_text(yaml.safe_dump({
        "data": {"train": "data.extxyz", "valid_fraction": 2}, "output": "run",
        "model": {"cutoff": 3.0, "n_radial": 2, "n_basis": 2, "hidden": [4]},
        "training": {"max_epochs": 1, "batch_size": 4, "dtype": "float64", "progress": False}}))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "proj/c.yaml", "--set", "training.lr=1e-3"]) == 0
    saved = yaml.safe_load((proj / "run" / "config.yaml").read_text())
    assert saved["data"]["train"] == str(proj / "data.extxyz")
    assert saved["output"] == str(proj / "run") and saved["training"]["lr"] == 1e-3
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert main(["export", str(proj / "run"), "-o", "m.pt"]) == 0
    assert (other / "m.pt").exists()
    assert main(["calibrate", str(proj / "run"), "--method", "max_likelihood"]) == 0
    saved = yaml.safe_load((proj / "run" / "config.yaml").read_text())
    assert saved["uncertainty"]["calibration"] == "max_likelihood"
    assert saved["data"]["train"] == str(proj / "data.extxyz")


# ------------------------------------------------------------------------------ 8. docs
def _sections(cls, where=""):
    yield where, cls
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _sections(hints[f.name], f"{where}.{f.name}" if where else f.name)


def test_docs_config_md_mentions_every_key():
    text = (ROOT / "docs" / "config.md").read_text()
    parts = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        parts[heading.strip()] = body
    for top, heading in ((TrainRunConfig, "`ubmd train` top level"),
                         (ALConfig, "`ubmd al run` top level")):
        for where, cls in _sections(top):
            body = parts[heading if not where else f"`{where}`"]
            for f in dataclasses.fields(cls):
                assert f"`{f.name}`" in body, (where, f.name)
    assert "docs/config.md" in (ROOT / "python" / "ubmd" / "cli" / "train.py").read_text()


# ------------------------------------------------------------------------------ shipped configs
AL_FILES = sorted(ROOT.glob("examples/*/config.yaml")) + sorted(
    ROOT.glob("benchmarks/mil53/campaigns/*.yaml"))


@pytest.mark.parametrize("path", AL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_al_configs_load(path):
    cfg = load_al_config(path)
    assert Path(cfg.initial.structures).is_absolute()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "benchmarks" / "configs").glob(
    "ala2_*.yaml") if p.name != "ala2_common.yaml"))
def test_benchmark_ala2_configs_load(name):
    """Campaign files override ala2_common.yaml (as ``python -m benchmarks.ala2_campaigns``
    merges them)."""
    base = ROOT / "benchmarks" / "configs"
    d = merge(yaml.safe_load((base / "ala2_common.yaml").read_text()),
              yaml.safe_load((base / name).read_text()) or {})
    cfg = al_config_from_dict(resolve_paths(d, base, ALConfig))
    assert cfg.walkers.tau_forces >= 0


def test_test_suite_configs_load(tmp_path, tiny_cfg_dict):
    """The campaign dict of tests/test_al.py and the tiny training config of conftest.py."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import test_al

    assert al_config_from_dict(test_al.campaign_dict(tmp_path)).walkers.n_walkers == 2
    assert from_dict(TrainRunConfig, tiny_cfg_dict).training.batch_size == 8


def test_merge_and_nested_dotted_keys():
    """Size presets of the benchmark drivers: dotted keys merged into a campaign config."""
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    new = {"a": {"b": 2, "e": {"f": 3}}, "g": 4}
    merge(base, new)
    assert base == {"a": {"b": 2, "c": [1, 2], "e": {"f": 3}}, "d": 1, "g": 4}
    new["a"]["e"]["f"] = 99  # copied, not aliased
    assert base["a"]["e"]["f"] == 3
    merge(base, nested({"x.y.z": 5, "a.b": 7}))
    assert base["x"] == {"y": {"z": 5}} and base["a"]["b"] == 7 and base["a"]["c"] == [1, 2]
    assert nested([("w.max_steps", 400), ("w.seed", 1)]) == {"w": {"max_steps": 400, "seed": 1}}
    assert parse_overrides(["w.max_steps=400", "w.pressure=[1, -1]"]) == {
        "w": {"max_steps": 400, "pressure": [1, -1]}}


def test_training_device_is_checked():
    """training.device: cpu, cuda or cuda:N, checked by name when the config is read; cuda
    without a CUDA build of torch (or without a visible GPU) is an error naming the key where
    the device is used (training, the calculator, a local campaign's input checks), not when a
    finished GPU run's config is read back on a CPU machine (issue #25)."""
    import torch

    from ubmd.config import TrainingConfig, check, check_device

    check_device("cpu")
    cfg = from_dict(TrainRunConfig, {"training": {"device": "cpu"}})
    assert cfg.training.device == "cpu"
    with pytest.raises(ValueError, match="training.device must be cpu, cuda or cuda:N"):
        from_dict(TrainRunConfig, {"training": {"device": "gpu"}})
    with pytest.raises(ValueError, match="must be cpu, cuda or cuda:N"):
        check(TrainingConfig(device="cuda:x"))
    if not torch.cuda.is_available():
        cfg = from_dict(TrainRunConfig, {"training": {"device": "cuda"}})  # readable
        with pytest.raises(ValueError, match=r"training.device is 'cuda'.*use cpu"):
            check_device(cfg.training.device, "training.device")
        with pytest.raises(ValueError, match="CPU-only build|sees no CUDA device"):
            check_device("cuda:0", "device")


def test_calculator_and_training_refuse_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    from conftest import random_model
    from ubmd.calculator import UBMDCalculator
    from ubmd.config import ModelConfig, TrainingConfig
    from ubmd.model_file.export import ExportedModel
    from ubmd.training.trainer import train_model
    from ubmd.uncertainty.features import FeatureModel

    em = ExportedModel(FeatureModel([random_model()], "last_layer"), None)
    with pytest.raises(ValueError, match="device is 'cuda'"):
        UBMDCalculator(em, device="cuda")
    with pytest.raises(ValueError, match="training.device is 'cuda'"):
        train_model(None, None, ModelConfig(), TrainingConfig(device="cuda"))
