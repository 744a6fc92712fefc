"""``ubmd analyze``: exploration analysis of walker outputs (coverage, ACF, histograms, traces).

Examples:

    ubmd analyze coverage w0.extxyz w1.extxyz --cv dihedral:1,3,4,6 --cv dihedral:3,4,6,8
    ubmd analyze coverage w*.extxyz --cv-names benchmarks/data/ala2/dihedrals.json --cv phi --cv psi
    ubmd analyze coverage r0=w0.xyz,w1.xyz r1=w2.xyz,w3.xyz --cv dihedral:1,3,4,6 --cv dihedral:3,4,6,8
    ubmd analyze acf run0/log.lammps run1/log.lammps --cv log:Volume --fixed-period 2x
    ubmd analyze hist biased=b0.lammpstrj,b1.lammpstrj unbiased=u0.lammpstrj --cv volume_per_fu --atoms-per-fu 76
    ubmd analyze trace dump.lammpstrj --cv volume --cv col:c_uat:max
    ubmd analyze trace runs/al/round_003/walkers/w00/trace.npz --cv log:uncertainty --cv log:cvs[1]

(``--atoms-per-fu 76``: MIL-53(Al), one Al4(OH)4(BDC)4 unit = 76 atoms, as in
docs/benchmarks_mil53.md; ``dihedrals.json`` of alanine dipeptide is in
benchmarks/data/ala2/ of the repository.)

Each analysis writes ``<name>.png`` and ``<name>.json`` (name = the subcommand unless ``--name``)
into ``-o OUTDIR`` (default ``analysis``).

For coverage, ``ROUND=FILE[,FILE...]`` groups walkers into AL rounds (coverage per walker, per
round and accumulated over rounds); plain files form a single round.

{cv_syntax}"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ubmd.analysis import plots
from ubmd.cli import INPUT_ERRORS, fail
from ubmd.analysis.acf import BIASES, acf_over_runs, fit_sine, model_acf
from ubmd.analysis.coverage import DEFAULT_LEVELS, coverage_by_round, grid_coverage, occupancy
from ubmd.analysis.cvs import load_named_cvs, parse_cv
from ubmd.analysis.histograms import shared_histograms
from ubmd.analysis.readers import FORMATS
from ubmd.analysis.series import load_series

#: the ``--cv SPEC`` syntax, shown by ``ubmd analyze --help`` and by each analysis' ``--help``
CV_SYNTAX = """\
--cv SPEC (module ubmd.analysis.cvs); atom indices are 0-based:

  volume                      cell volume, Å^3
  volume_per_fu               volume per formula unit (needs --atoms-per-fu or --n-fu)
  a, b, c, alpha, beta, gamma lattice parameters, Å and degrees
  distance:i,j                distance (minimum image), Å
  angle:i,j,k                 angle, degrees
  dihedral:i,j,k,l            dihedral, degrees in (-180, 180]
  NAME                        an index CV named in the --cv-names JSON (e.g. phi, psi)
  log:COLUMN                  a thermo column of a LAMMPS log (log:Volume, log:c_u) or a column
                              of an AL walker's trace.npz (step, time_fs, uncertainty,
                              max_atomic_uncertainty, bias_energy, energy, temperature, volume,
                              and the campaign's dihedrals as cvs[1], cvs[2] ...)
  col:NAME[:REDUCE]           a per-frame value or per-atom column of a dump/extxyz (col:c_uat:max),
                              REDUCE one of max, mean, min, sum (default max)
"""
__doc__ = __doc__.replace("{cv_syntax}", CV_SYNTAX)


def _common(parser: argparse.ArgumentParser, multi_cv: bool = True) -> None:
    parser.add_argument("--cv", action="append", required=True, metavar="SPEC",
                        help="collective variable, syntax below" + (" (repeat for several)" if multi_cv
                                                                else ""))
    parser.add_argument("--cv-names", default=None, metavar="JSON",
                        help="JSON of named atom-index CVs, e.g. "
                             "benchmarks/data/ala2/dihedrals.json "
                             "(relative to the repository), so that --cv phi means the dihedral "
                             "listed under phi")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="file format (default: from the file name/content)")
    fu = parser.add_mutually_exclusive_group()
    fu.add_argument("--atoms-per-fu", type=int, default=None,
                    help="atoms per formula unit (volume_per_fu), e.g. 76 for MIL-53(Al) (one "
                         "Al4(OH)4(BDC)4 unit)")
    fu.add_argument("--n-fu", type=int, default=None, help="formula units per cell (volume_per_fu)")
    parser.add_argument("-o", "--outdir", default="analysis", help="output folder (default: analysis)")
    parser.add_argument("--name", default=None, help="base name of the PNG/JSON (default: subcommand)")


def build_parser() -> argparse.ArgumentParser:
    intro, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="ubmd analyze", description=intro,
                                     epilog=details.replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub_options = {"epilog": CV_SYNTAX, "formatter_class": argparse.RawDescriptionHelpFormatter}
    sub = parser.add_subparsers(dest="analysis", required=True)

    cov = sub.add_parser("coverage", help="multiscale-grid coverage of a 2-D CV space", **sub_options)
    cov.add_argument("files", nargs="+", help="walker files, or ROUND=FILE[,FILE...] groups")
    _common(cov)
    cov.add_argument("--levels", type=int, nargs="+", default=list(DEFAULT_LEVELS),
                     help="grid levels k (2^k cells per axis); default 1 2 3 4 5")
    cov.add_argument("--range", type=float, nargs=2, action="append", metavar=("LOW", "HIGH"),
                     help="CV range per axis (give twice); default [-180,180) for dihedrals, data "
                          "min/max otherwise")
    cov.add_argument("--periodic", choices=("auto", "yes", "no"), default="auto",
                     help="wrap values into the range (auto: dihedrals only)")

    acf = sub.add_parser("acf", help="autocorrelation over independent runs + sine-model fit", **sub_options)
    acf.add_argument("files", nargs="+", help="one file per independent run")
    _common(acf, multi_cv=False)
    acf.add_argument("--max-lag", type=int, default=None, help="largest lag in samples (default N-1)")
    acf.add_argument("--bias", choices=BIASES, default="biased", help="ACF estimator (default biased)")
    acf.add_argument("--fixed-period", default=None,
                     help="fix the sine period: a number (time unit of the trace) or Nx = N times the "
                          "run length (e.g. 2x); default: period fitted")
    acf.add_argument("--noise-factors", type=float, nargs="+", default=[1.0, 2.0],
                     help="model ACF noise amplitudes as multiples of the fitted residual std")
    acf.add_argument("--draws", type=int, default=32, help="synthetic draws per model ACF")
    acf.add_argument("--seed", type=int, default=0)

    hist = sub.add_parser("hist", help="overlaid density histograms of campaigns", **sub_options)
    hist.add_argument("campaigns", nargs="+", help="LABEL=FILE[,FILE...]")
    _common(hist)
    hist.add_argument("--bins", type=int, default=50)
    hist.add_argument("--range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"))

    trace = sub.add_parser("trace", help="CV time traces of one file", **sub_options)
    trace.add_argument("file")
    _common(trace)
    return parser


def _out(args, default: str) -> tuple[Path, Path]:
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    name = args.name or default
    return outdir / f"{name}.png", outdir / f"{name}.json"


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, default=_jsonable))


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _cvs(args) -> list:
    named = load_named_cvs(args.cv_names) if args.cv_names else None
    return [parse_cv(c, named) for c in args.cv]


def _load(args, path, cvs):
    return load_series(path, cvs, args.format, args.atoms_per_fu, args.n_fu)


def _groups(items: list[str], what: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for item in items:
        label, sep, files = item.partition("=")
        if not sep or not label or not files:
            raise ValueError(f"{what} {item!r}: expected LABEL=FILE[,FILE...]")
        groups.setdefault(label, []).extend(f for f in files.split(",") if f)
    return groups


def run_coverage(args) -> dict:
    cvs = _cvs(args)
    if len(cvs) != 2:
        raise ValueError(f"coverage needs exactly two --cv, got {len(cvs)}")
    if any("=" in f for f in args.files):
        rounds = _groups(args.files, "round")
    else:
        rounds = {"0": list(args.files)}
    points = {r: [] for r in rounds}
    names = {}
    for r, files in rounds.items():
        for f in files:
            s = _load(args, f, cvs)
            pts = np.column_stack([s.values[cv.spec] for cv in cvs])
            points[r].append(pts)
            names[f"{r}:{f}" if len(rounds) > 1 else f] = pts
    if args.periodic == "auto":
        periodic = tuple(cv.periodic for cv in cvs)
    else:
        periodic = (args.periodic == "yes",) * 2
    if args.range is not None:
        if len(args.range) != 2:
            raise ValueError("give --range twice (one LOW HIGH per CV) or not at all")
        ranges = tuple(tuple(r) for r in args.range)
    else:
        every = np.concatenate([p for ps in points.values() for p in ps])
        ranges = []
        for n, cv in enumerate(cvs):
            if cv.default_range is not None:
                ranges.append(cv.default_range)
            elif periodic[n]:
                raise ValueError(f"periodic CV {cv.spec!r} needs --range")
            else:
                low, high = float(every[:, n].min()), float(every[:, n].max())
                ranges.append((low, high) if high > low else (low - 0.5, high + 0.5))
        ranges = tuple(ranges)
    # rounds in the order given on the command line (coverage_by_round sorts its keys)
    order = {r: f"{n:04d}" for n, r in enumerate(rounds)}
    by_round = coverage_by_round({order[r]: points[r] for r in rounds}, args.levels, ranges, periodic)
    back = {v: k for k, v in order.items()}
    for key in ("per_walker", "per_round", "cumulative", "per_round_per_level", "cumulative_per_level"):
        by_round[key] = {back[k]: v for k, v in by_round[key].items()}
    by_round["rounds"] = list(rounds)
    merged = np.concatenate([p for ps in points.values() for p in ps])
    total = grid_coverage(merged, args.levels, ranges, periodic)
    walkers = {}
    for r, files in rounds.items():
        for f, cov in zip(files, by_round["per_walker"][r]):
            walkers[f"{r}:{f}" if len(rounds) > 1 else f] = cov
    summary = {
        "analysis": "coverage",
        "cvs": [cv.spec for cv in cvs],
        "ranges": [list(r) for r in ranges],
        "periodic": list(periodic),
        **total.to_dict(),
        "per_walker": walkers,
        "rounds": by_round,
    }
    png, js = _out(args, "coverage")
    occ = {k: occupancy(merged, k, ranges, periodic) for k in args.levels}
    frac = dict(zip(total.levels, total.fractions))
    plots.plot_coverage(names, occ, frac, ranges, [cv.label for cv in cvs], png)
    summary["png"] = str(png)
    _write_json(js, summary)
    print(f"coverage {total.mean:.4f} over {total.n_points} points "
          f"(grids {', '.join(f'{2**k}x{2**k}: {f:.3f}' for k, f in frac.items())}); wrote {png}, {js}")
    return summary


def _period(text: str | None, span: float) -> float | None:
    if text is None:
        return None
    try:
        return float(text[:-1]) * span if text.lower().endswith("x") else float(text)
    except ValueError:
        raise ValueError(f"--fixed-period {text!r}: give a number or Nx (e.g. 2x)") from None


def run_acf(args) -> dict:
    if len(args.cv) != 1:
        raise ValueError("acf takes exactly one --cv")
    cv = _cvs(args)[0]
    series = [_load(args, f, [cv]) for f in args.files]
    traces = [s.values[cv.spec] for s in series]
    length = min(len(x) for x in traces)
    if length < 5:
        raise ValueError(f"acf needs at least 5 samples per run; shortest run has {length}")
    steps = [np.diff(s.time[:length]) for s in series]
    uniform = all(len(d) and np.allclose(d, d[0], rtol=1e-6) for d in steps) and len({d[0] for d in steps}) == 1
    unit = series[0].time_unit if uniform else "frame"
    dt = float(steps[0][0]) if uniform else 1.0
    stats = acf_over_runs(traces, args.max_lag, args.bias)
    t = np.arange(length) * dt
    period = _period(args.fixed_period, length * dt)
    fits, models = [], {f: [] for f in args.noise_factors}
    for n, x in enumerate(traces):
        params = fit_sine(t, x[:length], period)
        fits.append({"file": args.files[n], **params})
        if not params["reliable"]:  # a meaningless fit: reported, not used
            print(f"ubmd analyze acf: warning: sine fit of {args.files[n]} is not reliable: "
                  f"{'; '.join(params['problems'])}", file=sys.stderr)
            continue
        curves = model_acf(params, t, [f * params["noise_std"] for f in args.noise_factors], args.draws,
                           args.max_lag, args.bias, seed=args.seed + n)
        for f, curve in zip(args.noise_factors, curves.values()):
            models[f].append(curve)
    good = [p for p in fits if p["reliable"]]
    model_mean = {f: np.mean(c, axis=0) for f, c in models.items() if c}
    mean_params = {k: float(np.mean([p[k] for p in good]))
                   for k in ("amplitude", "period", "phase", "offset", "noise_std")} if good else None
    summary = {
        "analysis": "acf",
        "cv": cv.spec,
        "files": list(args.files),
        "bias": args.bias,
        "n_runs": stats["n_runs"],
        "length": length,
        "lag_unit": unit,
        "lag_step": dt,
        "uniform_sampling": bool(uniform),
        "period_fixed": period,
        "fits": fits,
        "n_reliable_fits": len(good),
        "mean_fit": mean_params,  # over the reliable fits; None when there is none
        "lags": stats["lags"] * dt,
        "acf_mean": stats["mean"],
        "acf_std": stats["std"],
        "model_acf": {f"noise x{f:g}": c for f, c in model_mean.items()},
    }
    png, js = _out(args, "acf")
    labels = {f"sine model, noise {f:g} x residual std": c for f, c in model_mean.items()}
    title = f"{cv.label}: {stats['n_runs']} run(s)" + (
        f", T = {mean_params['period']:.4g} {unit}s" if good else ", no reliable sine fit")
    plots.plot_acf(stats["lags"] * dt, stats["mean"], stats["std"], png, labels,
                   xlabel=f"lag ({unit}s)", title=title, runs=stats["acfs"] if stats["n_runs"] > 1 else None)
    summary["png"] = str(png)
    _write_json(js, summary)
    if good:
        fit = (f"sine fit T = {mean_params['period']:.4g} {unit}s, "
               f"A = {mean_params['amplitude']:.4g}")
        if len(good) < len(fits):
            fit += f" (mean of the {len(good)} reliable fit(s) of {len(fits)})"
    else:
        fit = ("no reliable sine fit (see the warnings; fix the period with --fixed-period or "
               "use longer runs)")
    print(f"ACF of {cv.spec} over {stats['n_runs']} run(s) of {length} samples; {fit}; "
          f"wrote {png}, {js}")
    return summary


def run_hist(args) -> dict:
    cvs = _cvs(args)
    campaigns = _groups(args.campaigns, "campaign")
    values = {cv.spec: {} for cv in cvs}
    for label, files in campaigns.items():
        loaded = [_load(args, f, cvs) for f in files]
        for cv in cvs:
            values[cv.spec][label] = np.concatenate([s.values[cv.spec] for s in loaded])
    summary = {"analysis": "hist", "campaigns": campaigns, "histograms": {}}
    png, js = _out(args, "hist")
    for n, cv in enumerate(cvs):
        hist = shared_histograms(values[cv.spec], args.bins, args.range)
        path = png if len(cvs) == 1 else png.with_name(f"{png.stem}_{n}.png")
        plots.plot_histograms(hist, cv.label, path, title=cv.spec, unit=cv.unit)
        summary["histograms"][cv.spec] = {**hist, "png": str(path)}
    _write_json(js, summary)
    for spec, hist in summary["histograms"].items():
        means = ", ".join(f"{k}: {v['mean']:.4g}" for k, v in hist["campaigns"].items())
        print(f"{spec} means ({means}); wrote {hist['png']}")
    print(f"wrote {js}")
    return summary


def run_trace(args) -> dict:
    cvs = _cvs(args)
    s = _load(args, args.file, cvs)
    png, js = _out(args, "trace")
    plots.plot_traces(s.time, {cv.label: s.values[cv.spec] for cv in cvs}, png,
                      xlabel="MD step" if s.time_unit == "step" else "frame",
                      title=Path(args.file).name)
    summary = {
        "analysis": "trace",
        "file": args.file,
        "time_unit": s.time_unit,
        "time": s.time,
        "values": s.values,
        "stats": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),
                      "max": float(np.max(v))} for k, v in s.values.items()},
        "png": str(png),
    }
    _write_json(js, summary)
    print(f"{len(s.time)} frames of {args.file}; wrote {png}, {js}")
    return summary


RUNNERS = {"coverage": run_coverage, "acf": run_acf, "hist": run_hist, "trace": run_trace}


def main(args: list[str] | None = None) -> int:
    parsed = build_parser().parse_args(args)
    try:
        RUNNERS[parsed.analysis](parsed)
    except INPUT_ERRORS as exc:
        return fail(f"analyze {parsed.analysis}", exc)  # exit status 2, as every subcommand
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
