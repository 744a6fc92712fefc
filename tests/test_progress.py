"""Live progress and logging (issue #26): heartbeats, the status line on a terminal and in a
log, the campaign's status text per stage, `ubmd al run` showing progress while a round runs,
one-line input errors and tracebacks for bugs, one-line warnings, and the public API."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ubmd import progress as P

ROOT = Path(__file__).resolve().parents[1]


def test_heartbeat_is_throttled_atomic_and_picklable(tmp_path):
    import pickle

    beat = P.Heartbeat(tmp_path / "p.json", every_s=60)
    beat(step=1)
    beat(step=2)  # within the minute: not written
    assert P.read_heartbeat(tmp_path / "p.json")["step"] == 1
    beat(force=True, step=3)
    assert P.read_heartbeat(tmp_path / "p.json")["step"] == 3
    again = pickle.loads(pickle.dumps(beat))
    again(step=4)
    assert P.read_heartbeat(tmp_path / "p.json")["step"] == 4
    assert P.read_heartbeat(tmp_path / "missing.json") is None
    assert not list(tmp_path.glob("*.tmp"))
    # numpy scalars are numbers; a value JSON cannot hold skips the beat and leaves no file
    beat(force=True, step=np.int64(5), temperature=np.float32(301.5))
    assert P.read_heartbeat(tmp_path / "p.json")["step"] == 5
    beat(force=True, step=6, bad=object())
    assert P.read_heartbeat(tmp_path / "p.json")["step"] == 5
    assert not list(tmp_path.glob("*.tmp"))
    epochs = P.EpochHeartbeat(tmp_path / "train")
    epochs(1, 4, 100, {"energy_rmse": 0.002, "forces_rmse": 0.05, "loss": 1.0})
    epochs(0, 9, 100, None, done=True)
    assert [(b["member"], b["epoch"], b["done"]) for b in epochs.read()] == [(0, 9, True),
                                                                              (1, 4, False)]
    assert epochs.read()[1]["forces_rmse"] == 0.05


def test_status_line_on_a_terminal_and_in_a_log(caplog):
    tty = io.StringIO()
    line = P.StatusLine(tty, tty=True)
    line.show("round 0 label: 1/8")
    line.show("round 0 label: 2/8")
    line.erase()
    assert tty.getvalue() == ("\r\x1b[2Kround 0 label: 1/8\r\x1b[2Kround 0 label: 2/8"
                              "\r\x1b[2K")
    log = P.StatusLine(io.StringIO(), interval_s=3600, tty=False)
    with caplog.at_level(logging.INFO, logger="ubmd.progress"):
        log.show("round 0 label: 1/8")
        log.show("round 0 label: 2/8")  # within the interval: not logged
    assert [r.getMessage() for r in caplog.records] == ["round 0 label: 1/8"]


def test_log_records_and_warnings_print_above_the_status_line():
    stream = io.StringIO()
    stream.isatty = lambda: True
    handler = P.log_to_stderr(0, stream)
    try:
        with P.Monitor(lambda: "round 1 train: epoch 3/10", poll_s=3600) as monitor:
            monitor.update()
            logging.getLogger("ubmd.al").info("round 0: labels 8/24")
            warnings.warn("batch_size=8 >= pool size 8", UserWarning)
        text = stream.getvalue()
    finally:
        P.stop_logging_to_stderr(handler)
    assert "\r\x1b[2Kround 0: labels 8/24\n\r\x1b[2Kround 1 train" in text
    assert "warning: batch_size=8 >= pool size 8\n" in text
    assert "warnings.warn" not in text  # no source line


def test_campaign_status_text_per_stage(tmp_path):
    from ubmd.al.layout import CampaignLayout
    from ubmd.al.progress import CampaignProgress

    layout = CampaignLayout(tmp_path)
    rl = layout.round(2)
    prog = CampaignProgress(layout, n_walkers=4)
    assert prog.describe() == ""
    rl.mark("propose", n=8)
    rl.labels_dir.mkdir(parents=True)
    for name in ("00000.extxyz", "00001.extxyz", "00002.failed.json"):
        (rl.labels_dir / name).write_text("")
    prog.stage(rl, "label")
    assert prog.describe().startswith("round 2 label: 2/8 labelled, 1 failed [")
    prog.stage(rl, "train")
    cb = prog.epoch_callback(rl.train_dir)
    cb(0, 36, 500, {"energy_rmse": 0.0031, "forces_rmse": 0.084})
    assert "member 1 epoch 37/500 (valid E 3.1 meV/atom, F 0.084 eV/Å)" in prog.describe()
    prog.stage(rl, "sample")
    for k, summary in ((0, {"stop_reason": "threshold"}), (1, {"stop_reason": "runaway"})):
        d = rl.walker_dir(k)
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps(summary))
    d = rl.walker_dir(2)
    d.mkdir()
    P.Heartbeat(d / "progress.json")(step=1234, max_steps=20000, temperature=612.0)
    text = prog.describe()
    assert "2/4 walkers stopped (1 runaway, 1 threshold); 1 running at step 1234 of 20.0k, " \
           "T 612-612 K; 1 starting or queued" in text


@pytest.mark.campaign
def test_al_run_shows_progress_while_a_round_runs(tmp_path):
    """`ubmd al run` (stderr not a terminal): status lines of the label, train and sample stages
    appear while the rounds run, then one line per round; stdout gets the result."""
    import yaml
    from test_al import campaign_dict

    d = campaign_dict(tmp_path, label_budget=16, max_rounds=2,
                      executor={"kind": "local", "n_workers": 1, "inline": False},
                      training={"max_epochs": 150})  # long enough for a status line (0.2 s)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    proc = subprocess.run([sys.executable, "-c", "import sys; from ubmd.cli import main; "
                           "sys.exit(main())", "al", "run", str(tmp_path / "c.yaml"),
                           "--progress-every", "0.2"], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    for text in ("round 0 label: ", "round 0 train: member 1 epoch", "round 0 sample: ",
                 "round 0: labels 8/16", "round 1: labels 16/16"):
        assert text in err, (text, err[-3000:])
    assert err.index("round 0 train: member 1 epoch") < err.index("round 0: labels 8/16")
    assert proc.stdout.strip() == "campaign finished: 2 rounds, 16 labels"


# ------------------------------------------------------------------------------ the CLI
def test_input_errors_are_one_line_bugs_show_a_traceback(tmp_path, capsys, monkeypatch):
    from ubmd.cli import main
    import ubmd.cli.export as export

    assert main(["export", str(tmp_path / "nothing"), "-o", "m.pt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ubmd export: error: run directory not found") and "Traceback" not in err
    assert main(["export", str(tmp_path / "nothing"), "-o", "m.pt", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("ubmd export: error:")

    def broken(args=None):
        return {}["no such key"]  # a bug, not bad input

    monkeypatch.setattr(export, "main", broken)
    assert main(["export", "x", "-o", "m.pt"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'no such key'" in err
    assert "internal error" in err and "This is a bug in ubmd" in err


def test_verbosity_flags_anywhere(capsys):
    from ubmd.cli import main, take_verbosity

    assert take_verbosity(["al", "run", "c.yaml", "-v"]) == (["al", "run", "c.yaml"], 1, False)
    assert take_verbosity(["--debug", "md", "x"]) == (["md", "x"], 2, True)
    assert take_verbosity(["-q", "al"]) == (["al"], -1, False)
    assert main(["-v", "--version"]) == 0
    assert capsys.readouterr().out.strip() == __import__("ubmd").__version__
    assert P.status_handler() is None  # the command's handler is removed after it


# ------------------------------------------------------------------------------ the API
def test_import_ubmd_is_light_and_every_public_name_resolves():
    code = ("import sys, ubmd; heavy = [m for m in ('torch', 'ase', 'numpy') if m in "
            "sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "python")), check=True)
    assert out.stdout.strip() == "[]"
    import ubmd

    for name in ubmd.__all__:
        assert getattr(ubmd, name) is not None, name
    assert set(ubmd.__all__) <= set(dir(ubmd))
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        ubmd.trian  # noqa: B018
    assert callable(ubmd.train) and ubmd.Campaign.__module__ == "ubmd.al.campaign"
    assert np.isclose(ubmd.runaway_temperature(100.0, 1000, 1.5), 150.0)
