"""Markdown tables from benchmarks/results/*.json (pasted into docs/performance.md).

    python -m benchmarks.report > /tmp/tables.md
"""

from __future__ import annotations

import json
import sys

from . import RESULTS as R


def load(name):
    p = R / name
    return json.loads(p.read_text()) if p.exists() else None


def md_speed(name="md_speed.json"):
    d = load(name)
    if not d:
        return
    print(f"\n### pair_style ubmd throughput ({name}; 1 MPI rank, 1 thread)\n")
    print("| system | dtype | atoms | mode | ms/step (wall) | µs/atom-step (wall) | atom-steps/s | ns/day | "
          "µs/atom-step (CPU) | wall ratio to none (paired) | CPU ratio to none | peak RSS MiB | load 1-min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in d["results"]:
        for mode, m in r["modes"].items():
            print(f"| {r['system']} | {r['dtype']} | {r['natoms']} | {mode} | {m['s_per_step'] * 1e3:.1f} | "
                  f"{m['us_per_atom_step']:.1f} | {m['atom_steps_per_s']:.0f} | {m['ns_per_day']:.3f} | "
                  f"{m.get('cpu_us_per_atom_step', float('nan')):.1f} | "
                  f"{m.get('ratio_to_none_paired_median', float('nan')):.2f} | "
                  f"{m.get('cpu_ratio_to_none', float('nan')):.2f} | {m['max_rss_mib']:.0f} | "
                  f"{r['load_before'][0]}–{r['load_after'][0]} |")
    # scaling
    print("\nScaling (none and bias_fs; CPU µs/atom-step relative to the smallest size):\n")
    print("| system | dtype | mode | " + " | ".join(["atoms: CPU µs/atom-step (rel.)"]) + " |")
    print("|---|---|---|---|")
    keys = sorted({(r["system"], r["dtype"]) for r in d["results"]})
    for system, dtype in keys:
        rows = sorted([r for r in d["results"] if (r["system"], r["dtype"]) == (system, dtype)],
                      key=lambda r: r["natoms"])
        for mode in ("none", "bias_fs"):
            pts = [(r["natoms"], r["modes"][mode].get("cpu_us_per_atom_step")) for r in rows
                   if mode in r["modes"]]
            if len(pts) < 2:
                continue
            base = pts[0][1]
            cells = ", ".join(f"{n}: {c:.1f} ({c / base:.2f})" for n, c in pts)
            spread = max(c for _, c in pts) / min(c for _, c in pts) - 1
            print(f"| {system} | {dtype} | {mode} | {cells}; max/min − 1 = {100 * spread:.0f} % |")


def mpi():
    d = load("md_mpi.json")
    if not d:
        return
    print("\n### MPI: 1 vs 2 ranks\n")
    print("| system | dtype | atoms | mode | 1 rank ms/step | 2 ranks ms/step | speedup (wall) | "
          "speedup (CPU time, max rank) | RSS 1 rank MiB | RSS per rank (2) MiB | loads |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in d["results"]:
        loads = [x["load_before"][0] for p in r["rounds"].values() for x in p]
        for mode, s in r["speedup"].items():
            print(f"| {r['system']} | {r['dtype']} | {r['natoms']} | {mode} | {s['s_per_step_1'] * 1e3:.0f} | "
                  f"{s['s_per_step_2'] * 1e3:.0f} | {s['speedup']:.2f} | {s.get('cpu_speedup', float('nan')):.2f} | "
                  f"{s['max_rss_mib_1']:.0f} | {s['max_rss_mib_2_per_rank']:.0f} | {loads} |")


def ase(name="ase_vs_lammps.json"):
    d = load(name)
    if not d:
        return
    print(f"\n### Biased MD: ASE (reference way) vs LAMMPS ({name})\n")
    print("| system | dtype | atoms | steps | ASE ms/step | LAMMPS ms/step | ratio (wall) | ratio (CPU) | "
          "ASE neighbour-list share | ASE RSS MiB | LAMMPS RSS MiB | loads |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in d["results"]:
        print(f"| {r['system']} | {r['dtype']} | {r['natoms']} | {r['steps']} | {r['ase_s_per_step'] * 1e3:.1f} | "
              f"{r['lammps_s_per_step'] * 1e3:.1f} | {r['speedup_lammps']:.2f} | "
              f"{r.get('cpu_speedup_lammps', float('nan')):.2f} | {100 * r['ase_nl_fraction']:.0f} % | "
              f"{r['ase_max_rss_mib']:.0f} | {r['lammps_max_rss_mib']:.0f} | {[x[0] for x in r['loads']]} |")


def train():
    for name in ("train_speed.json", "train_speed_quick.json"):
        d = load(name)
        if not d:
            continue
        print(f"\n### Training throughput ({name}; {d['threads']} thread(s), default model "
              f"{d['model']})\n")
        print("| dtype | training.compile | train structures | epochs | structures/s (epoch incl. "
              "validation and warm-up) | structures/s (training step only) | peak RSS MiB | load |")
        print("|---|---|---|---|---|---|---|---|")
        for r in d["results"]:
            print(f"| {r['dtype']} | {r.get('compile', 'off')} | {r['n_train']} | {r['epochs']} | {r['structures_per_s_epoch']:.1f} | "
                  f"{r['structures_per_s_step_only']:.1f} | {r['max_rss_mib']:.0f} | "
                  f"{r['load_before'][0]}–{r['load_after'][0]} |")
        break
    d = load("selection_speed.json")
    if d:
        print(f"\nSelection (selection_speed.json, pool {d['n_pool']} x {d['feature_dim']}, "
              f"{d['n_train']} training points, {d['threads']} threads, load {d['load_average_1_5_15']}):\n")
        print("| method | dtype | B | median s |")
        print("|---|---|---|---|")
        for r in d["results"]:
            print(f"| {r['method']} | {r['dtype']} | {r['batch_size']} | {r['median_s']:.2f} |")


def profile():
    for name in ("md_profile.json", "md_profile_quick.json"):
        d = load(name)
        if not d:
            continue
        print(f"\n### Stage timings of the TorchScript calls ({name}; ms, median)\n")
        print("| system | dtype | atoms | edges | mode | forward | backward E | backward u | total |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in d["results"]:
            for mode in ("none", "monitor", "bias"):
                s = r["stages_s"][mode]
                print(f"| {r['system']} | {r['dtype']} | {r['natoms']} | {r['n_edges']} | {mode} | "
                      f"{s['forward'] * 1e3:.1f} | {s['backward_E'] * 1e3:.1f} | "
                      f"{s.get('backward_u', 0) * 1e3:.1f} | {s['total'] * 1e3:.1f} |")
        print("\nEdge-level vs atom-level split (eager copy, ms):\n")
        print("| system | dtype | edge fwd | atom fwd | atom bwd (E and u) | edge bwd E | edge bwd u |")
        print("|---|---|---|---|---|---|---|")
        for r in d["results"]:
            s = r["stages_s"].get("split")
            if s:
                print(f"| {r['system']} | {r['dtype']} | {s['edge_forward'] * 1e3:.1f} | {s['atom_forward'] * 1e3:.1f} | "
                      f"{s['atom_backward_E_and_u'] * 1e3:.1f} | {s['edge_backward_E'] * 1e3:.1f} | "
                      f"{s['edge_backward_u'] * 1e3:.1f} |")
        print("\nTop operators of a biased evaluation (self CPU ms):\n")
        for r in d["results"]:
            print(f"- {r['system']} {r['dtype']}: " + ", ".join(
                f"{o['name']} {o['self_cpu_ms']:.1f}" for o in r["top_ops_biased"][:8]))
        break


def malloc():
    files = sorted(R.glob("malloc_tunables_*.json"))
    if not files:
        return
    print("\n### glibc malloc tunables (CPU µs/atom-step, median over rounds)\n")
    print("| system | atoms | mode | default | tuned | ratio | peak RSS default → tuned MiB |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        d = json.loads(f.read_text())
        med = d["median_cpu_us_per_atom_step"]
        print(f"| {f.name}: tuned = {d['glibc_tunables'][:60]} | | | | | | |")
        for mode in med["default"]:
            rd = max(x["rss_" + mode] for x in d["rounds"]["default"])
            rt = max(x["rss_" + mode] for x in d["rounds"]["tuned"])
            print(f"| {d.get('system', 'cual')} | {d.get('natoms', 1000)} | {mode} | {med['default'][mode]:.1f} | "
                  f"{med['tuned'][mode]:.1f} | {med['tuned'][mode] / med['default'][mode]:.3f} | {rd:.0f} → {rt:.0f} |")


def variants():
    d = load("descriptor_variants.json")
    if not d:
        return
    print("\n### Descriptor variants (CPU ms of a biased evaluation; ratio: second / first)\n")
    print("| system | dtype | atoms | variants | first CPU ms | second CPU ms | ratio | max rel. diff | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in d["runs"]:
        (n1, a), (n2, b) = list(r["results"].items())[:2]  # older runs: current, flat_index_select
        c, v = a["cpu_total"], b["cpu_total"]
        print(f"| {r['system']} | {r['dtype']} | {r['natoms']} | {n1} / {n2} | {c * 1e3:.1f} | "
              f"{v * 1e3:.1f} | {v / c:.3f} | {max(r['max_rel_diff'].values()):.1e} | {r['load'][0]} |")


if __name__ == "__main__":
    md_speed()
    md_speed("md_speed_after.json")
    md_speed("md_speed_quick.json")
    mpi()
    ase()
    ase("ase_vs_lammps_asenl.json")
    train()
    profile()
    variants()
    malloc()
    sys.exit(0)
