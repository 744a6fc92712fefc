"""Write the model files and reference numbers for the C++ core unit tests (ctest).

usage: python make_models.py OUTDIR
Reference (OUTDIR/reference.txt, whitespace separated): a 7-atom non-periodic cluster, its full
edge list and what the model gives through Python autograd: energy, forces, virial, u, du/dr,
du/deps, atomic uncertainties.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures"))
from toy_model import write_toy_model  # noqa: E402


def write_sketch_model(path, kind="sketch"):
    """A real exported model (ubmd.model_file.export) with sketched gradient features (K = 64) and
    a random posterior head: it has atomic_parts / feature_contraction, so the C++ test can
    compare the contraction path with the per-atom path of the same file, and atomic_state /
    state_gradients (the one-pass path). ``kind``: also last-layer features, or an ensemble's
    member energies with an ensemble head."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
    from ubmd.model_file.export import ExportedModel, export_model
    from ubmd.uncertainty.features import FeatureModel
    from ubmd.model import MLIP
    from ubmd.uncertainty.heads import UncertaintyHead

    members = [MLIP([1, 6, 8], 4.0, n_radial=4, n_basis=6, hidden=[16, 16], seed=s) for s in (0, 1)]
    g = torch.Generator().manual_seed(5)
    for m in members:  # non-trivial biases and species scales (zero / one by default)
        with torch.no_grad():
            for layer in m.layers:
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
            m.species_scale.copy_(torch.rand(3, generator=g) + 0.5)
    fm = FeatureModel(members[:1] if kind == "last_layer" else members, kind, 64, seed=2)
    t = torch.randn(fm.dim, fm.dim, generator=g, dtype=torch.float64) / fm.dim ** 0.5
    if kind == "energies":
        head = UncertaintyHead("ensemble", fm.dim, calib_total=0.7, calib_atomic=1.1)
    else:
        head = UncertaintyHead("posterior", fm.dim, transform=t, atomic_transform=t.T.clone(),
                               calib_total=0.7, calib_atomic=1.1)
    export_model(ExportedModel(fm, head), path, torch.float64)


def main(out):
    os.makedirs(out, exist_ok=True)
    path = write_toy_model(os.path.join(out, "toy.pt"), ["H", "C", "O"], 4.0)
    write_toy_model(os.path.join(out, "toy_v99.pt"), ["H", "C", "O"], 4.0, format_version=99)
    write_toy_model(os.path.join(out, "toy_none.pt"), ["H", "C", "O"], 4.0, uncertainty="none")
    write_toy_model(os.path.join(out, "toy_f32.pt"), ["H", "C", "O"], 4.0, dtype="float32")
    write_sketch_model(os.path.join(out, "sketch.pt"))
    write_sketch_model(os.path.join(out, "lastlayer.pt"), "last_layer")
    write_sketch_model(os.path.join(out, "ensemble.pt"), "energies")
    with open(os.path.join(out, "not_a_model.pt"), "w") as f:
        f.write("not a zip archive\n")

    rng = np.random.default_rng(3)
    pos = rng.uniform(0.0, 3.2, size=(7, 3))
    species = np.array([1, 0, 2, 1, 0, 0, 1])
    n = len(pos)
    ci, nj = [], []
    for i in range(n):
        for j in range(n):
            if i != j and np.linalg.norm(pos[j] - pos[i]) < 4.0:
                ci.append(i)
                nj.append(j)
    ci, nj = np.array(ci), np.array(nj)
    m = torch.jit.load(path)
    pos_t = torch.tensor(pos, dtype=torch.float64, requires_grad=True)
    ev = pos_t[nj] - pos_t[ci]
    ei = torch.tensor(np.stack([ci, nj]))
    sp = torch.tensor(species)
    e, phi = m.atomic(ev, ei, sp, n, True)
    energy = e.sum()
    (dEdR,) = torch.autograd.grad(energy, pos_t, retain_graph=True)
    (dEdev,) = torch.autograd.grad(energy, ev, retain_graph=True)
    virial = -(ev.detach().T @ dEdev)
    u, v = m.total_uncertainty(phi.sum(0).detach(), float(n))
    (dudR,) = torch.autograd.grad((phi.sum(0) * v).sum(), pos_t, retain_graph=True)
    (dudev,) = torch.autograd.grad((phi.sum(0) * v).sum(), ev)
    dudeps = ev.detach().T @ dudev
    au = m.atomic_uncertainty(phi.detach())
    with open(os.path.join(out, "reference.txt"), "w") as f:
        f.write(f"{n} {len(ci)}\n")
        for i in range(n):
            f.write(" ".join(repr(float(x)) for x in pos[i]) + f" {species[i]}\n")
        f.write(f"{energy.item()!r}\n")
        for row in (-dEdR).numpy():
            f.write(" ".join(repr(float(x)) for x in row) + "\n")
        f.write(" ".join(repr(float(x)) for x in virial.numpy().ravel()) + "\n")
        f.write(f"{u.item()!r}\n")
        for row in dudR.numpy():
            f.write(" ".join(repr(float(x)) for x in row) + "\n")
        f.write(" ".join(repr(float(x)) for x in dudeps.numpy().ravel()) + "\n")
        f.write(" ".join(repr(float(x)) for x in au.numpy()) + "\n")
        f.write(" ".join(repr(float(x)) for x in e.detach().numpy()) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
