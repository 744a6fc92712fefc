"""How long must a MIL-53(Al) walker run to breathe, and does the bias stress make it sooner?

Issue #24 asks why the AL campaigns do not breathe. This measures it on single walkers, without
an AL loop around them: one fixed model trained on large-pore data only (what an early round
has), LAMMPS NPT walkers (``pair_style ubmd``, Nose-Hoover 300 K, Parrinello-Rahman ``tri``) from
the relaxed large-pore cell, for each sampler (unbiased; bias forces tau_F; bias forces + stress
tau_F = tau_sigma) x external pressure (+-2500 bar by default) x barostat time constant x seed,
with no uncertainty stop (the runaway guard stays on). Per walker, from its trace (every
``--log-every`` steps):

Samplers: ``unbiased``, ``bias_forces``, ``bias_forces_stress`` (the paper's three) and
``bias_stress`` (tau_F = 0, tau_sigma = 0.25: the cell biased, the atoms not).

* the volume per Al4(OH)4(BDC)4 unit (76 atoms) over time, its range, the fractions of frames in
  the closed (< 1150 A^3), intermediate (1150-1350), large (1350-1700) and expanded (> 1700)
  states, and the first time (ps) each non-large state is reached;
* the first time the largest calibrated atomic uncertainty crosses each stop threshold
  (``--thresholds``, eV/A: 1.5 is the paper's) and the volume range covered *before* it, i.e.
  what a walker stopped at that threshold could have handed to the pool;
* for the bias-stress walkers (with and without bias forces), a sine fit of the volume trace (free period; ``ubmd.analysis.acf``)
  and the volume ACF over the seeds: the paper's reading of the bias-stress volume motion.

    python -m benchmarks.mil53.walker_breathing --model MODEL.pt --steps 3000 [--seeds 3]

Writes ``benchmarks/results/mil53_walker_breathing<tag>.json`` and
``docs/figures/mil53_walker_breathing<tag>.png``; walkers under ``runs/mil53/walker_breathing``.
Equal MD steps for every sampler (no wall-time caps), so the comparison does not depend on the
machine's load; wall times are reported for information.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import time
from pathlib import Path

import numpy as np

from .. import RESULTS, ROOT
from ..mil53_campaigns import ATOMS_PER_FU, CLOSED_MAX, LARGE_MAX, LARGE_MIN

SAMPLERS = {"unbiased": (0.0, 0.0), "bias_forces": (0.25, 0.0), "bias_forces_stress": (0.25, 0.25),
            "bias_stress": (0.0, 0.25)}  # (tau_F, tau_sigma)
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_CUSTOM = re.compile(rf"^f{_NUM}s{_NUM}$")  # any other pair: f<tau_F>s<tau_sigma>, e.g. f0.05s0.25


def sampler_taus(name: str) -> tuple[float, float]:
    """(tau_F, tau_sigma) of a sampler: one of ``SAMPLERS`` or ``f<tau_F>s<tau_sigma>``."""
    if name in SAMPLERS:
        return SAMPLERS[name]
    m = _CUSTOM.match(name)
    if not m:
        raise ValueError(f"sampler {name!r}: one of {', '.join(SAMPLERS)} or f<tau_F>s<tau_sigma> "
                         "(e.g. f0.05s0.25)")
    return float(m.group(1)), float(m.group(2))


def _label(name: str) -> str:
    tf, ts = sampler_taus(name)
    return f"{name.replace('_', ' ')} (tau_F {tf:g}, tau_sigma {ts:g})"


def _sampler_order(name: str) -> tuple:
    return (list(SAMPLERS).index(name), 0.0, 0.0) if name in SAMPLERS else (len(SAMPLERS),
                                                                           *sampler_taus(name))


START = ROOT / "examples" / "mil53" / "data" / "mil53_lp_gfn1_2x1x1.extxyz"


def state_of(v: np.ndarray) -> np.ndarray:
    """0 closed, 1 intermediate, 2 large, 3 expanded (volume per unit, A^3)."""
    return np.digitize(v, [CLOSED_MAX, LARGE_MIN, LARGE_MAX])


def first_time(t_ps: np.ndarray, mask: np.ndarray) -> float | None:
    idx = np.flatnonzero(mask)
    return float(t_ps[idx[0]]) if len(idx) else None


def walker_metrics(trace: dict, n_atoms: int, thresholds) -> dict:
    """The per-walker numbers of the module docstring from a ``run_md`` trace."""
    t = np.asarray(trace["time_fs"], float) / 1000.0
    v = np.asarray(trace["volume"], float) / (n_atoms / ATOMS_PER_FU)
    u = np.asarray(trace["max_atomic_uncertainty"], float)
    s = state_of(v)
    names = ("closed", "intermediate", "large", "expanded")
    out = {"time_ps": float(t[-1]) if len(t) else 0.0,
           "volume_per_fu_min": float(v.min()), "volume_per_fu_max": float(v.max()),
           "fraction": {n: float(np.mean(s == k)) for k, n in enumerate(names)},
           "first_ps": {n: first_time(t, s == k) for k, n in enumerate(names) if n != "large"},
           "max_u_max": float(np.nanmax(u)), "crossings": {}}
    out["first_ps"]["below_large"] = first_time(t, v < LARGE_MIN)
    for thr in thresholds:
        k = np.flatnonzero(u > thr)
        end = k[0] if len(k) else len(v)
        before = v[: max(end, 1)]
        out["crossings"][f"{thr:g}"] = {
            "first_ps": float(t[k[0]]) if len(k) else None,
            "volume_per_fu_before": [float(before.min()), float(before.max())],
            "left_large_before": bool((before < LARGE_MIN).any() or (before > LARGE_MAX).any())}
    return out


JOB_KEYS = ("sampler", "tau", "pressure", "pdamp", "seed", "model", "model_sha1", "start",
            "steps", "temperature", "log_every", "md")
# the MD settings every walker shares (besides the per-job ones above)
MD = {"tdamp": 100.0, "timestep": 0.5, "window": 100, "weights": {"H": 0.0}}


def _reusable(job: dict) -> dict | None:
    """The finished walker of the same job in its directory (``job.json``), else None."""
    wd = Path(job["workdir"])
    try:
        old = json.loads((wd / "job.json").read_text())
        summary = json.loads((wd / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    same = all(json.dumps(old.get(k)) == json.dumps(job[k]) for k in JOB_KEYS)
    return summary if same and (wd / "trace.npz").exists() else None


def run_one(job: dict) -> dict:
    """One walker in its own process (LAMMPS through ``ubmd.run_md``); a walker finished by an
    earlier call with the same settings is read back instead of run again."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from ase.io import read

    from ubmd.md.engines import run_md

    start = read(job["start"])
    t0 = time.perf_counter()
    old = _reusable(job)
    if old is not None:
        with np.load(Path(job["workdir"]) / "trace.npz") as npz:
            trace = {k: npz[k].tolist() for k in ("time_fs", "volume", "max_atomic_uncertainty",
                                                  "temperature")}
        res = {k: job[k] for k in ("sampler", "pressure", "pdamp", "seed")}
        res.update({"stop_reason": old.get("stop_reason"), "n_steps": old.get("n_steps"),
                    "wall_s": float(old.get("wall_s", math.nan)), "error": old.get("error"),
                    "reused": True})
        res.update(walker_metrics(trace, len(start), job["thresholds"]))
        res["n_atoms"] = len(start)
        res["trace"] = trace
        return res
    run = run_md(job["model"], start, job["workdir"], engine="lammps", seed=job["seed"],
                 ensemble="npt", temperature=job["temperature"], pressure=job["pressure"],
                 pdamp=job["pdamp"], max_steps=job["steps"], sample_every=job["steps"],
                 log_every=job["log_every"], tau_forces=job["tau"][0], tau_stress=job["tau"][1],
                 **job["md"])
    trace = {k: np.asarray(v).tolist() for k, v in run.trace.items()
             if k in ("time_fs", "volume", "max_atomic_uncertainty", "temperature")}
    res = {k: job[k] for k in ("sampler", "pressure", "pdamp", "seed")}
    res.update({"stop_reason": run.summary.get("stop_reason"), "n_steps": run.summary.get("n_steps"),
                "wall_s": time.perf_counter() - t0, "error": run.summary.get("error")})
    if not res["error"]:
        summary = dict(run.summary, wall_s=res["wall_s"])
        (Path(job["workdir"]) / "summary.json").write_text(json.dumps(summary, default=str))
        (Path(job["workdir"]) / "job.json").write_text(json.dumps({k: job[k] for k in JOB_KEYS}))
    if trace.get("time_fs"):
        res.update(walker_metrics(trace, len(start), job["thresholds"]))
    res["n_atoms"] = len(start)
    res["trace"] = trace
    return res


def sine_summary(runs: list[dict]) -> dict:
    """Free-period sine fits of the volume traces and their ACF over runs."""
    from ubmd.analysis.acf import acf_over_runs, fit_sine

    fits = []
    series = []
    for r in runs:
        t = np.asarray(r["trace"]["time_fs"], float) / 1000.0
        v = np.asarray(r["trace"]["volume"], float) / (r["n_atoms"] / ATOMS_PER_FU)
        if len(t) < 20:
            continue
        try:
            f = fit_sine(t, v)
        except Exception as exc:  # a failed fit must not lose the walkers' results
            fits.append({"seed": r["seed"], "error": f"{type(exc).__name__}: {exc}"})
            continue
        fits.append({"seed": r["seed"], "period_ps": f["period"], "amplitude": f["amplitude"],
                     "noise_std": f["noise_std"], "reliable": f["reliable"],
                     "problems": f.get("problems", [])})
        series.append(v)
    out = {"fits": fits}
    if len(series) >= 2:
        a = acf_over_runs(series)
        dt = float(np.median(np.diff(np.asarray(runs[0]["trace"]["time_fs"]))))
        zero = np.flatnonzero(a["mean"] <= 0)
        out.update({"acf_first_zero_ps": float(zero[0] * dt / 1000.0) if len(zero) else None,
                    "acf_min": float(a["mean"].min()),
                    "acf_min_ps": float(np.argmin(a["mean"]) * dt / 1000.0)})
    return out


def aggregate(runs: list[dict], thresholds) -> list[dict]:
    rows = []
    keys = sorted({(r["sampler"], r["pressure"], r["pdamp"]) for r in runs},
                  key=lambda k: (_sampler_order(k[0]), -k[1], k[2]))
    for sampler, p, pdamp in keys:
        rs = [r for r in runs if (r["sampler"], r["pressure"], r["pdamp"]) == (sampler, p, pdamp)
              and "volume_per_fu_min" in r]
        if not rs:
            continue
        row = {"sampler": sampler, "pressure_bar": p, "pdamp_fs": pdamp, "n": len(rs),
               "time_ps": [r["time_ps"] for r in rs],
               "stops": [r["stop_reason"] for r in rs],
               "volume_per_fu_min": [r["volume_per_fu_min"] for r in rs],
               "volume_per_fu_max": [r["volume_per_fu_max"] for r in rs],
               "left_large": sum(r["first_ps"]["below_large"] is not None
                                 or r["first_ps"]["expanded"] is not None for r in rs),
               "first_below_large_ps": [r["first_ps"]["below_large"] for r in rs],
               "first_closed_ps": [r["first_ps"]["closed"] for r in rs],
               "max_u_max": [r["max_u_max"] for r in rs], "crossings": {}}
        for thr in thresholds:
            c = [r["crossings"][f"{thr:g}"] for r in rs]
            row["crossings"][f"{thr:g}"] = {
                "first_ps": [x["first_ps"] for x in c],
                "crossed": sum(x["first_ps"] is not None for x in c),
                "left_large_before": sum(x["left_large_before"] for x in c
                                         if x["first_ps"] is not None)}
        rows.append(row)
    return rows


def _fmt(xs, nd=2):
    return ", ".join("-" if x is None else f"{x:.{nd}f}" for x in xs)


def table(rows, thresholds) -> str:
    head = ("| sampler | p (bar) | pdamp (fs) | walkers | run (ps) | V/unit min-max (A^3) | "
            "left large | first below 1350 (ps) | first closed (ps) | "
            + " | ".join(f"first u>{t:g} (ps) [left large before / crossed]" for t in thresholds)
            + " |")
    lines = [head, "|" + "---|" * (9 + len(thresholds))]
    for r in rows:
        lines.append(
            f"| {r['sampler']} | {r['pressure_bar']:+g} | {r['pdamp_fs']:g} | {r['n']} | "
            f"{_fmt(r['time_ps'])} | {min(r['volume_per_fu_min']):.0f}-{max(r['volume_per_fu_max']):.0f} | "
            f"{r['left_large']}/{r['n']} | {_fmt(r['first_below_large_ps'])} | "
            f"{_fmt(r['first_closed_ps'])} | "
            + " | ".join(f"{_fmt(r['crossings'][f'{t:g}']['first_ps'], 3)} "
                         f"[{r['crossings'][f'{t:g}']['left_large_before']}/"
                         f"{r['crossings'][f'{t:g}']['crossed']}]"
                         for t in thresholds) + " |")
    return "\n".join(lines)


def figure(runs, thresholds, path: Path, temperature: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"unbiased": "tab:blue", "bias_forces": "tab:orange", "bias_forces_stress": "tab:red",
               "bias_stress": "tab:green"}
    extra = iter(["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:grey"])
    for name in sorted({r["sampler"] for r in runs} - set(colours), key=_sampler_order):
        colours[name] = next(extra, "k")
    pressures = sorted({r["pressure"] for r in runs}, reverse=True)
    fig, axes = plt.subplots(2, len(pressures), figsize=(6 * len(pressures), 7.5), sharex=True,
                             squeeze=False)
    styles = ["-", "--", ":", "-."]
    pdamps = sorted({r["pdamp"] for r in runs})
    for j, p in enumerate(pressures):
        ax_v, ax_u = axes[0, j], axes[1, j]
        for r in runs:
            if r["pressure"] != p or not r["trace"].get("time_fs"):
                continue
            t = np.asarray(r["trace"]["time_fs"]) / 1000.0
            v = np.asarray(r["trace"]["volume"]) / (r["n_atoms"] / ATOMS_PER_FU)
            ls = styles[pdamps.index(r["pdamp"]) % len(styles)]
            ax_v.plot(t, v, ls, color=colours[r["sampler"]], lw=0.9, alpha=0.8)
            ax_u.semilogy(t, r["trace"]["max_atomic_uncertainty"], ls, color=colours[r["sampler"]],
                          lw=0.8, alpha=0.8)
        for y, name in ((CLOSED_MAX, "closed | intermediate"), (LARGE_MIN, "intermediate | large")):
            ax_v.axhline(y, color="grey", lw=0.6, ls=":")
            ax_v.text(0.0, y, f" {name}", fontsize=7, va="bottom", color="grey")
        for thr in thresholds:
            ax_u.axhline(thr, color="k", lw=0.6, ls=":")
            ax_u.text(0.0, thr, f" stop {thr:g} eV/Å", fontsize=7, va="bottom")
        ax_v.set_title(f"NPT {temperature:g} K, {p:+g} bar")
        ax_v.set_ylabel("volume per Al4(OH)4(BDC)4 unit (Å³)")
        ax_u.set_ylabel("largest calibrated atomic uncertainty (eV/Å)")
        ax_u.set_xlabel("time (ps)")
    handles = [plt.Line2D([], [], color=c, label=_label(k)) for k, c in colours.items()
               if any(r["sampler"] == k for r in runs)]
    handles += [plt.Line2D([], [], color="k", ls=styles[i % len(styles)], label=f"pdamp {pd:g} fs")
                for i, pd in enumerate(pdamps)]
    axes[0, -1].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle("MIL-53(Al) walkers from the large pore\n(no uncertainty stop)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model file (ubmd export), species Al C H O")
    ap.add_argument("--steps", type=int, default=3000, help="MD steps of 0.5 fs per walker")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS)[:3],
                    help=f"{', '.join(SAMPLERS)} or f<tau_F>s<tau_sigma> (e.g. f0.05s0.25); "
                         "default: the paper's three")
    ap.add_argument("--pressures", nargs="+", type=float, default=[2500.0, -2500.0])
    ap.add_argument("--pdamp", nargs="+", type=float, default=[1000.0], help="fs")
    ap.add_argument("--temperature", type=float, default=300.0)
    ap.add_argument("--tdamp", type=float, default=MD["tdamp"],
                    help="thermostat time constant (fs), default %(default)g")
    ap.add_argument("--thresholds", nargs="+", type=float, default=[1.5, 5.0])
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=str(ROOT / "runs" / "mil53" / "walker_breathing"))
    a = ap.parse_args(argv)
    if not Path(a.model).is_file():
        ap.error(f"--model {a.model}: no such file (write one with `ubmd export RUN -o FILE`)")
    try:
        taus = {name: sampler_taus(name) for name in a.samplers}
    except ValueError as e:
        ap.error(str(e))
    md = dict(MD, tdamp=a.tdamp)
    td = "" if a.tdamp == MD["tdamp"] else f"_td{a.tdamp:g}"  # work-directory suffix
    sha1 = hashlib.sha1(Path(a.model).read_bytes()).hexdigest()
    jobs = []
    for sampler in a.samplers:
        for p in a.pressures:
            for pdamp in a.pdamp:
                for seed in range(a.seeds):
                    wd = Path(a.out) / f"{sampler}_p{p:+g}_pd{pdamp:g}{td}_s{seed}"
                    jobs.append({"sampler": sampler, "tau": taus[sampler], "pressure": p,
                                 "pdamp": pdamp, "seed": 1000 + seed, "workdir": str(wd),
                                 "model": str(Path(a.model).resolve()), "model_sha1": sha1,
                                 "md": md, "start": str(START),
                                 "steps": a.steps, "temperature": a.temperature,
                                 "log_every": a.log_every, "thresholds": a.thresholds})
    print(f"{len(jobs)} walkers of {a.steps} steps, {a.workers} at a time", flush=True)
    runs = []
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as ex:
        futs = {ex.submit(run_one, j): j for j in jobs}
        for k, fut in enumerate(cf.as_completed(futs), 1):
            r = fut.result()
            runs.append(r)
            v = (f"V/unit {r['volume_per_fu_min']:.0f}-{r['volume_per_fu_max']:.0f}"
                 if "volume_per_fu_min" in r else f"error {r.get('error')}")
            print(f"[{k}/{len(jobs)}] {r['sampler']} {r['pressure']:+g} bar pdamp {r['pdamp']:g} "
                  f"seed {r['seed']}: {r['stop_reason']} after {r['n_steps']} steps, {v}, "
                  f"max u {r.get('max_u_max', math.nan):.2f} eV/Å ({r['wall_s']:.0f} s, "
                  f"elapsed {time.perf_counter() - t0:.0f} s)", flush=True)
    runs.sort(key=lambda r: (r["sampler"], -r["pressure"], r["pdamp"], r["seed"]))
    rows = aggregate(runs, a.thresholds)
    sines = {}
    for sampler in [k for k in a.samplers if taus[k][1] > 0]:
        for p in a.pressures:
            for pdamp in a.pdamp:
                rs = [r for r in runs if r["sampler"] == sampler and r["pressure"] == p
                      and r["pdamp"] == pdamp and len(r["trace"].get("time_fs", [])) >= 20]
                if rs:
                    sines[f"{sampler}_{p:+g}_bar_pdamp_{pdamp:g}"] = sine_summary(rs)
    fig = ROOT / "docs" / "figures" / f"mil53_walker_breathing{a.tag}.png"
    figure(runs, a.thresholds, fig, a.temperature)
    tbl = table(rows, a.thresholds)
    print(tbl)
    out = RESULTS / f"mil53_walker_breathing{a.tag}.json"
    out.write_text(json.dumps({
        "benchmark": "mil53_walker_breathing", "model": str(a.model), "steps": a.steps,
        "timestep_fs": 0.5, "temperature_K": a.temperature, "thresholds": a.thresholds,
        "md": md, "tau_F_tau_sigma": taus,
        "state_bounds_A3_per_unit": [CLOSED_MAX, LARGE_MIN, LARGE_MAX], "rows": rows,
        "bias_stress_volume_sine": sines, "table_md": tbl, "figure": str(fig.relative_to(ROOT)),
        "runs": [{k: v for k, v in r.items() if k != "trace"} for r in runs]}, indent=1))
    np.savez_compressed(Path(a.out) / f"traces{a.tag}.npz", **{
        f"{r['sampler']}_p{r['pressure']:+g}_pd{r['pdamp']:g}_s{r['seed']}_{k}": np.asarray(v)
        for r in runs for k, v in r["trace"].items()})
    print(f"wrote {out} and {fig}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
