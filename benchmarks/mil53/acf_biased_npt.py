"""Cell-volume autocorrelation of MIL-53(Al) under bias stress: three independent biased NPT
runs in LAMMPS (pair_style ubmd, bias forces + bias stress, fix npt tri), then
`ubmd analyze acf` (mean +- std over the runs, sine-wave model with T = 2x the run length at two
noise amplitudes) and `ubmd analyze trace`. Figures and JSON go to docs/figures/mil53_acf/.

    python -m benchmarks.mil53.acf_biased_npt --model MODEL.pt [--steps 4000]

MODEL.pt: a model file with species Al C H O (e.g. from an AL campaign, or the one trained by
``python -m benchmarks.bias_exploration_ase`` in runs/bias_exploration/mil53_model/model.pt).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ubmd.plugin import plugin_path

from .. import ROOT

DECK = ROOT / "examples" / "mil53" / "in.biased_npt.lmp"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tau", type=float, default=0.25)
    p.add_argument("--temp", type=float, default=300.0)
    p.add_argument("--out", default=str(ROOT / "runs" / "mil53_acf"))
    p.add_argument("--figures", default=str(ROOT / "docs" / "figures" / "mil53_acf"))
    a = p.parse_args(argv)
    out = Path(a.out)
    bindir = Path(sys.executable).parent
    lmp = bindir / "lmp"
    deck = DECK.read_text().replace("thermo          100", "thermo          10")
    logs = []
    for k in range(a.runs):
        d = out / f"run{k}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "in.lmp").write_text(deck)
        (d / "mil53_lp.data").write_bytes((DECK.parent / "mil53_lp.data").read_bytes())
        cmd = [str(lmp), "-nocite", "-in", "in.lmp", "-log", "log.lammps",
               "-var", "model", str(Path(a.model).resolve()),
               "-var", "plugin", str(plugin_path()),
               "-var", "steps", str(a.steps), "-var", "seed", str(4928459 + 7919 * k),
               "-var", "tauF", str(a.tau), "-var", "tauS", str(a.tau),
               "-var", "temp", str(a.temp), "-var", "umax", "1e6"]
        print(f"run {k}: {' '.join(cmd[-16:])}")
        subprocess.run(cmd, cwd=d, check=True, stdout=subprocess.DEVNULL,
                       env={"OMP_NUM_THREADS": "1", "PATH": f"{bindir}:/usr/bin:/bin"})
        logs.append(str(d / "log.lammps"))
    ubmd = [str(bindir / "ubmd"), "analyze"]
    subprocess.run(ubmd + ["acf", *logs, "--cv", "log:Volume", "--fixed-period", "2x",
                           "-o", a.figures, "--name", "mil53_volume_acf"], check=True)
    subprocess.run(ubmd + ["trace", logs[0], "--cv", "log:Volume", "-o", a.figures,
                           "--name", "mil53_volume_trace"], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
