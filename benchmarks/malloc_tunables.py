"""glibc malloc tunables vs default for pair_style ubmd (CPU time per atom-step, cual float32 1k atoms).

Alternates 3 rounds of default / GLIBC_TUNABLES (mmap and trim thresholds raised, top_pad 256 MiB)
so that the tensors freed every step are not returned to the kernel with munmap and faulted
in again (perf: ~10 % of the LAMMPS process in kernel page-fault paths, ~8 % in libc malloc/free).
Needs the models of ``python -m benchmarks.md_speed prepare``.

    python -m benchmarks.malloc_tunables   -> benchmarks/results/malloc_tunables_<system>_<natoms>.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from . import RESULTS
from . import md_speed as M

TUNABLES = ("glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295:"
            "glibc.malloc.top_pad=268435456")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--natoms", type=int, default=1000)
    ap.add_argument("--system", default="cual", choices=["cual", "mil53"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["none", "bias_f"])
    ap.add_argument("--env-tunables", action="store_true",
                    help="tuned side: GLIBC_TUNABLES (old plugin builds)")
    ap.add_argument("--tag", default="")
    ns = ap.parse_args(argv)
    plugin = M.plugin_copy()
    spec = {"plugin": str(plugin), "data": str(M.data_file(ns.system, ns.natoms)),
            "elements": M.ELEMENTS[ns.system], "model": str(M.model_path(ns.system, "float32")),
            "modes": ns.modes, "steps": ns.steps, "warmup": 2,
            "repeats": 1 if ns.natoms > 8000 else 2}
    res = {"default": [], "tuned": []}
    for _ in range(ns.rounds):
        for label in ("default", "tuned"):
            # the plugin calls mallopt itself since commit 730334b (opt-out UBMD_NO_MALLOPT=1):
            # the default side opts out, the tuned side uses the plugin's mallopt (or
            # GLIBC_TUNABLES with --env-tunables, for plugins built before that commit)
            if label == "tuned":
                os.environ.pop("UBMD_NO_MALLOPT", None)
                if ns.env_tunables:
                    os.environ["GLIBC_TUNABLES"] = TUNABLES
            else:
                os.environ.pop("GLIBC_TUNABLES", None)
                os.environ["UBMD_NO_MALLOPT"] = "1"
            s = M.summarise(M.run_worker(spec), ns.steps)
            res[label].append({m: s[m]["cpu_us_per_atom_step"] for m in s}
                              | {"rss_" + m: s[m]["max_rss_mib"] for m in s})
            print(label, res[label][-1], M.load_average(), flush=True)
    out = {"glibc_tunables": TUNABLES if ns.env_tunables
           else "plugin mallopt (UBMD_NO_MALLOPT=1 on the default side)",
           "rounds": res, "load": M.load_average(),
           "median_cpu_us_per_atom_step": {lab: {m: statistics.median(x[m] for x in v) for m in ns.modes}
                                           for lab, v in res.items()},
           "natoms": ns.natoms, "system": ns.system}
    print(out["median_cpu_us_per_atom_step"])
    path = RESULTS / f"malloc_tunables_{ns.system}_{ns.natoms}{ns.tag}.json"
    path.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
