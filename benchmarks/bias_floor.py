"""What the biased step must cost (issue #25): its parts timed, its multiply-adds counted.

The reference-sized network of ``benchmarks.bias_step_cost`` (cutoff 5 Å, 7 radial / 9 basis
functions, readout [512, 512], float32, one thread, untrained weights), the model-file methods
the C++ core calls (``atomic_state`` + ``state_gradients`` of a scripted
:class:`ubmd.uncertainty.features.FeatureModel`), on alanine dipeptide (22 atoms) and a MIL-53(Al)
4x2x2 cell (1216 atoms). Per feature map (sketch K = 512, sketch K = 64, last layer):

* process CPU time (minimum over ``--repeats`` interleaved rounds; x20 at 22 atoms) of the plain step (energies + gradient), the biased
  step with the global uncertainty only (feature sum, v = du/dphi_sum, both gradients in one
  traversal) and with the per-atom uncertainties too (per-atom features), and of the parts:
  descriptor forward, descriptor backward with 1 and 2 cotangents, readout forward;
* the number of ATen calls of each step (``torch.profiler``) and, at 22 atoms, the time per call;
* the multiply-adds of the readout GEMMs each step does, counted from the layer shapes and the
  route ``FeatureModel`` takes per layer (``matrix_route_cheaper``), and a **floor** for the
  biased step: the plain step's measured time + the extra GEMM multiply-adds at the GEMM rate
  the readout forward reaches + the descriptor's second backward (measured). The extra GEMMs are
  those of the exact gradient of v . sum_i phi_i: the feature sum (matrix route: x~^T g and U^T
  (x~^T g) V; atom route: x~ U and g V), the contraction's two adjoints (x~ M and g M^T, or
  (q v) U^T and (p v) V^T), the adjoint of the g-chain through W_{l+1} and the bias cotangent
  through the readout's backward to the descriptor.

    python -m benchmarks.bias_floor [--repeats 7] [--quick]
        -> benchmarks/results/bias_floor.json (+ a table on stdout)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import RESULTS
from . import blas_binding as B
from . import md_speed as M
from .bias_step_cost import REFERENCE
from .campaign_common import git_commit

FEATURES = {"sketch_K512": ("sketch", 512), "sketch_K64": ("sketch", 64),
            "last_layer": ("last_layer", 512)}


def graph_inputs(system: str):
    """edge vectors [E, 3] (float32), edge index, species and atom count of a benchmark system."""
    import torch
    from ase.io import read
    from ubmd.data import GraphDataset, species_map_from

    if system == "ala2":
        atoms = read(B.ALA2, 0)
    else:
        atoms = M.unit_cell("mil53").repeat((4, 2, 2))
    g = GraphDataset([atoms], REFERENCE["cutoff"], species_map_from([atoms])).graphs[0]
    ei = g["edge_index"]
    ev = g["positions"][ei[1]] - g["positions"][ei[0]] + g["shifts"] @ g["cell"][0]
    return ev.to(torch.float32), ei, g["species"], len(atoms), species_map_from([atoms])


def cpu_ms(fns: dict, repeats: int) -> dict:
    """{name: ms}: process CPU time per call, the minimum over ``repeats`` rounds in which every
    function runs once in turn (the machine is shared: the minimum is the least disturbed call,
    and interleaving keeps the ratios of one round comparable)."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t)
    return {name: 1000.0 * t for name, t in best.items()}


def aten_calls(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def readout_macs(layers, n: int, kind: str, k: int) -> dict:
    """Multiply-adds of the readout GEMMs per step: plain (forward + the energy's backward to
    the descriptor) and the extra of the exact bias (module docstring), from the layer shapes
    and the route ``FeatureModel`` takes (``matrix_route_cheaper``)."""
    from ubmd.uncertainty.features import matrix_route_cheaper

    shapes = [(layer.d_in, layer.d_out) for layer in layers]
    unit = sum(n * d * o for d, o in shapes)  # one pass through the readout's GEMMs
    plain = 2 * unit
    if kind == "last_layer":  # the bias cotangent enters at h_{L-1} and goes down to the descriptor
        extra = sum(n * d * o for d, o in shapes[:-1])
        return {"unit": unit, "plain": plain, "bias_extra": extra, "bias_extra_atomic": extra}
    extra = extra_atomic = 0
    for i, (d, o) in enumerate(shapes):
        if matrix_route_cheaper(n, d + 1, o, k):
            # feature sum x~^T g, U^T (x~^T g) V; M = U diag(v) V^T; adjoints g M^T and x~ M
            extra += n * (d + 1) * o + (d + 1) * o * k + (d + 1) * k * o + 2 * n * (d + 1) * o
            extra_atomic += (n * (d + 1) * k + n * o * k) - (n * (d + 1) * o + (d + 1) * o * k)
        else:  # p = x~ U, q = g V; adjoints (q v) U^T and (p v) V^T
            extra += 2 * n * k * (d + 1 + o)
        if i >= 1:
            extra += n * d * o  # adjoint of g_{l-1} = silu'(o_{l-1}) (g_l W_l)
        extra += n * d * o  # the bias cotangent through the readout's backward
    return {"unit": unit, "plain": plain, "bias_extra": extra, "bias_extra_atomic": extra + extra_atomic}


def measure(system: str, label: str, repeats: int) -> dict:
    import torch
    from ubmd.config import ModelConfig
    from ubmd.model.members import new_model
    from ubmd.model_file.export import ExportedModel
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.uncertainty.heads import UncertaintyHead

    kind, k = FEATURES[label]
    ev, ei, sp, n, smap = graph_inputs(system)
    cfg = ModelConfig(**{key: v for key, v in REFERENCE.items() if key != "n_sketch"})
    member = new_model(smap, cfg, 0, torch.float32)
    features = FeatureModel([member], kind, k).float()
    # the methods the C++ core calls, scripted as in a model file (the head is not timed here)
    fm = torch.jit.script(ExportedModel(features, UncertaintyHead("posterior", features.dim)))
    desc_mod = member.descriptor
    out = {"system": system, "features": label, "n_atoms": n, "n_edges": int(ei.shape[1])}
    with torch.no_grad():
        desc, dstate = desc_mod.forward_state(ev, ei, sp, n)
        g1 = torch.randn(1, n, desc.shape[1])
        g2 = torch.randn(2, n, desc.shape[1])
        _, s, _, _ = fm.atomic_state(ev, ei, sp, n, True, False)
        v = torch.randn(s.shape[0])

        def plain():
            e0, _, _, st = fm.atomic_state(ev, ei, sp, n, False, False)
            return fm.state_gradients(st, e0[:0])

        def bias():
            _, _, _, st = fm.atomic_state(ev, ei, sp, n, True, False)
            return fm.state_gradients(st, v)

        def bias_atomic():
            _, _, _, st = fm.atomic_state(ev, ei, sp, n, True, True)
            return fm.state_gradients(st, v)

        reps = repeats * (20 if n < 100 else 1)  # small systems: more, shorter calls
        ms = cpu_ms({"plain": plain, "bias": bias, "bias_atomic": bias_atomic,
                     "descriptor_forward": lambda: desc_mod.forward_state(ev, ei, sp, n),
                     "descriptor_backward_1": lambda: desc_mod.backward_state(dstate, g1),
                     "descriptor_backward_2": lambda: desc_mod.backward_state(dstate, g2),
                     "readout_forward": lambda: member.readout_state(desc, sp[:n], False)}, reps)
        calls = {"plain": aten_calls(plain), "bias": aten_calls(bias), "bias_atomic": aten_calls(bias_atomic)}
    macs = readout_macs(member.layers, n, kind, k)
    rate = macs["unit"] / (ms["readout_forward"] / 1000.0)  # multiply-adds per second
    desc_extra = max(0.0, ms["descriptor_backward_2"] - ms["descriptor_backward_1"])
    floor = ms["plain"] + 1000.0 * macs["bias_extra"] / rate + desc_extra
    floor_atomic = ms["plain"] + 1000.0 * macs["bias_extra_atomic"] / rate + desc_extra
    out.update({
        "ms": ms, "aten_calls": calls, "macs": macs, "gemm_gmac_per_s": rate / 1e9,
        "ratio_bias": ms["bias"] / ms["plain"], "ratio_bias_atomic": ms["bias_atomic"] / ms["plain"],
        "floor_ms_bias": floor, "floor_ratio_bias": floor / ms["plain"],
        "floor_ratio_bias_atomic": floor_atomic / ms["plain"],
        "us_per_aten_call_plain": 1000.0 * ms["plain"] / calls["plain"],
    })
    return out


def table(rows: list) -> str:
    lines = [("| system (atoms) | features | plain ms | biased ms (global u) | biased / plain | floor / plain "
              "| + per-atom u: biased / plain | floor / plain | ATen calls plain / biased | GEMM GMAC/s |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['system']} ({r['n_atoms']}) | {r['features']} | {r['ms']['plain']:.2f} | {r['ms']['bias']:.2f} "
            f"| {r['ratio_bias']:.2f} | {r['floor_ratio_bias']:.2f} | {r['ratio_bias_atomic']:.2f} "
            f"| {r['floor_ratio_bias_atomic']:.2f} | {r['aten_calls']['plain']} / {r['aten_calls']['bias']} "
            f"| {r['gemm_gmac_per_s']:.1f} |")
    return "\n".join(lines)


def main(args=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="3 repeats")
    p.add_argument("--json", default=str(RESULTS / "bias_floor.json"))
    a = p.parse_args(args)
    import torch

    torch.set_num_threads(1)
    repeats = 3 if a.quick else a.repeats
    la0 = M.load_average()
    rows = []
    for system in ("ala2", "mil53"):
        for label in FEATURES:
            r = measure(system, label, repeats)
            rows.append(r)
            print(f"{system} {label}: plain {r['ms']['plain']:.2f} ms, biased {r['ms']['bias']:.2f} "
                  f"({r['ratio_bias']:.2f}x, floor {r['floor_ratio_bias']:.2f}x)", flush=True)
    res = {"benchmark": "bias_floor", "network": REFERENCE, "dtype": "float32", "threads": 1,
           "repeats": repeats, "torch": torch.__version__, "git_commit": git_commit(),
           "load": [la0, M.load_average()], "rows": rows}
    with open(a.json, "w") as fh:
        json.dump(res, fh, indent=1)
    print(table(rows))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
