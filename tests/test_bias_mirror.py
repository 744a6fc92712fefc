"""python/ubmd/bias.py mirrors cpp/ubmd_bias.h: the same sequences of global norms give the same
scales, bias energies and coefficients in Python and in C++ (through build/cpp/ubmd_bias_replay),
and the Python Bias follows the rules it documents (hand-computed numbers)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ubmd.bias import EPS, AdaptiveScale, Bias, GlobalNorms

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
REPLAY = BUILD / "cpp" / "ubmd_bias_replay"


# ------------------------------------------------------------------ Python against C++

def _replay(settings: dict, evaluations: list) -> np.ndarray:
    """Rows [s_F, s_sigma, energy, force_coefficient(0..S), stress_coefficient] from C++."""
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.skip(f"C++ build tree missing ({BUILD}): run scripts/build_plugin.sh")
    assert REPLAY.exists(), (f"{REPLAY} missing in an existing build tree: rebuild with "
                             "scripts/build_plugin.sh (UBMD_BUILD_TESTS=ON)")
    fixed = settings.get("fixed_scales")
    w = settings.get("weights", [])
    head = [settings.get("tau_forces", 0.0), settings.get("tau_stress", 0.0),
            settings.get("window", 100), int(fixed is not None), *(fixed or (0.0, 0.0)), len(w), *w]
    lines = [" ".join(repr(x) for x in head)]
    for step, norms, u in evaluations:
        lines.append(" ".join(repr(x) for x in [-1 if step is None else step, *norms.pack(), u]))
    p = subprocess.run([str(REPLAY)], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return np.array([[float(x) for x in line.split()] for line in p.stdout.splitlines()])


def _python(settings: dict, evaluations: list) -> np.ndarray:
    b = Bias(**settings)
    n_species = len(settings.get("weights", []))
    rows = []
    for step, norms, u in evaluations:
        s_f, s_s = b.update(norms, step)
        assert (s_f, s_s) == (b.scale_forces(), b.scale_stress())
        rows.append([s_f, s_s, b.energy(u),
                     *[b.force_coefficient(k) for k in range(n_species + 1)],
                     b.stress_coefficient()])
    return np.array(rows)


def _evaluations(seed: int, n: int, repeat_every: int = 4, no_steps: bool = False) -> list:
    """n evaluations of random global norms (magnitudes over several decades), steps 0, 1, ...
    with every ``repeat_every``-th one on the step before (a new run's setup, fix numdiff)."""
    rng = np.random.default_rng(seed)
    out, step = [], 0
    for k in range(n):
        if k and k % repeat_every == 0:
            step -= 1  # the same step again
        norms = GlobalNorms(10 ** rng.uniform(-2, 4), 10 ** rng.uniform(-6, 2),
                            rng.normal(0, 10 ** rng.uniform(-1, 2), 9),
                            rng.normal(0, 10 ** rng.uniform(-4, 0), 9))
        out.append((None if no_steps else step, norms, float(rng.uniform(0, 0.5))))
        step += 1
    return out


CASES = {
    "W5_both": (dict(tau_forces=0.25, tau_stress=0.1, window=5), dict(seed=1, n=40)),
    "W1_both": (dict(tau_forces=0.3, tau_stress=0.2, window=1), dict(seed=2, n=25)),
    "W5_weights": (dict(tau_forces=0.25, tau_stress=0.1, window=5, weights=[0.0, 0.5, 2.0, 1.0]),
                   dict(seed=3, n=30, repeat_every=3)),
    "tau_stress_0": (dict(tau_forces=0.4, window=3, weights=[0.25]), dict(seed=4, n=20)),
    "tau_forces_0": (dict(tau_stress=0.5, window=4), dict(seed=5, n=20)),
    "fixed": (dict(tau_forces=0.5, tau_stress=0.2, fixed_scales=(40.0, 7.5),
                   weights=[1.0, 0.0]), dict(seed=6, n=12)),
    "fixed_stress_only": (dict(tau_stress=0.3, fixed_scales=(0.0, 3.25)), dict(seed=7, n=6)),
    "no_steps": (dict(tau_forces=0.2, tau_stress=0.2, window=3), dict(seed=8, n=15, no_steps=True)),
    "inactive": (dict(window=2), dict(seed=9, n=5)),
    "W100": (dict(tau_forces=0.25, tau_stress=0.25, window=100),
             dict(seed=10, n=140, repeat_every=10)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_python_bias_matches_cpp(case):
    settings, seq = CASES[case]
    evaluations = _evaluations(**seq)
    py = _python(settings, evaluations)
    cpp = _replay(settings, evaluations)
    assert py.shape == cpp.shape == (len(evaluations), len(settings.get("weights", [])) + 5)
    scale = np.maximum(np.abs(py), np.abs(cpp))
    assert np.all(np.abs(py - cpp) <= 1e-14 * scale), np.max(np.abs(py - cpp) / (scale + 1e-300))
    if settings.get("tau_forces") and not settings.get("fixed_scales"):
        window = settings["window"]
        assert np.all(py[: window - 1, 0] == 0) and np.any(py[:, 0] > 0)  # not vacuous


def test_replay_refuses_invalid_settings():
    """C++ refuses what Python refuses (std::invalid_argument <-> ValueError)."""
    if not (BUILD / "CMakeCache.txt").exists():
        pytest.skip(f"C++ build tree missing ({BUILD}): run scripts/build_plugin.sh")
    for head in ("0.1 0 0 0 0 0 0", "-0.1 0 5 0 0 0 0", "0.1 0 5 0 0 0 2 1.0 -1.0"):
        p = subprocess.run([str(REPLAY)], input=head + "\n", capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and "must be >= " in p.stderr, (head, p.stderr)
    with pytest.raises(ValueError):
        Bias(window=0)
    with pytest.raises(ValueError):
        Bias(tau_forces=-0.1)
    with pytest.raises(ValueError):
        Bias(weights=[1.0, -1.0])


# ------------------------------------------------------------------ Python rules, by hand

def _n(f2, b2, wxx=0.0, dxx=0.0):
    v, d = np.zeros(9), np.zeros(9)
    v[0], d[0] = wxx, dxx
    return GlobalNorms(f2, b2, v, d)


def test_scale_is_zero_before_the_window_is_full_then_slides():
    b = Bias(tau_forces=0.5, tau_stress=0.25, window=3)
    assert b.active()
    assert b.update(_n(4, 1, 2, 1), 0) == (0.0, 0.0)
    b.update(_n(4, 1, 2, 1), 1)
    assert b.force_coefficient(0) == b.energy(0.3) == b.stress_coefficient() == 0.0
    s_f, s_s = b.update(_n(1, 2, 2, 1), 2)
    assert s_f == pytest.approx(3 / (2 + EPS), rel=1e-15)
    assert s_s == pytest.approx(math.sqrt(12) / (math.sqrt(3) + EPS), rel=1e-15)
    assert b.energy(0.3) == pytest.approx(-0.5 * s_f * 0.3, rel=1e-15)
    assert b.stress_coefficient() == pytest.approx(0.25 * s_s, rel=1e-15)
    s3 = b.update(_n(16, 0, 2, 1), 3)[0]
    assert s3 == pytest.approx(math.sqrt(21) / (math.sqrt(3) + EPS), rel=1e-15)


def test_same_step_gives_the_previous_scales_and_no_entry():
    b = Bias(tau_forces=1.0, window=2)
    b.update(_n(4, 1), 0)
    s1 = b.update(_n(4, 1), 1)
    assert b.update(_n(1e6, 1e-6), 1) == s1  # a new run's setup on the same step
    # the window is steps 1 and 2: the repeated evaluation never entered
    assert b.update(_n(12, 3), 2)[0] == pytest.approx(4 / (2 + EPS), rel=1e-15)
    # no step information (None or < 0): always a new entry
    c = Bias(tau_forces=1.0, window=2)
    assert c.update(_n(4, 1))[0] == 0.0
    assert c.update(_n(4, 1))[0] == pytest.approx(math.sqrt(8) / (math.sqrt(2) + EPS))
    assert c.update(_n(12, 2), -1)[0] == pytest.approx(4 / (math.sqrt(3) + EPS))


def test_inactive_component_has_scale_zero():
    f = Bias(tau_forces=0.3, window=1)
    assert f.update(_n(4, 1, 5, 1), 0) == (pytest.approx(2 / (1 + EPS)), 0.0)
    s = Bias(tau_stress=0.3, window=1)
    assert s.update(_n(4, 1, 3, 1), 0) == (0.0, pytest.approx(3 / (1 + EPS)))
    assert s.force_coefficient(0) == s.energy(1.0) == 0.0
    none = Bias()
    assert not none.active() and none.update(_n(4, 1, 3, 1), 0) == (0.0, 0.0)


def test_fixed_scales_weights_and_reset():
    b = Bias(tau_forces=0.5, tau_stress=0.25, fixed_scales=(2.0, 3.0), weights=[0.0, 4.0])
    assert b.scale_forces() == 0.0  # before the first update
    assert b.update(_n(1, 1), 0) == (2.0, 3.0) == b.update(_n(9, 1), 0) == b.update(_n(9, 1))
    assert [b.force_coefficient(k) for k in (0, 1, 2, -1)] == [0.0, 4.0, 1.0, 1.0]
    np.testing.assert_array_equal(b.force_coefficients([1, 0, 2, 1]), [4.0, 0.0, 1.0, 4.0])
    assert b.stress_coefficient() == 0.75 and b.energy(0.1) == -0.5 * 2.0 * 0.1
    b.reset()
    assert (b.scale_forces(), b.scale_stress()) == (0.0, 0.0)
    w = Bias(tau_forces=1.0, window=2, weights={1: 0.5})
    assert w.weights == [1.0, 0.5]
    w.update(_n(4, 1), 0)
    w.set_weights([0.25])  # keeps the window
    assert w.update(_n(4, 1), 1)[0] > 0 and w.force_coefficient(0) == 0.25 * w.scale_forces()
    w.reset()
    assert w.update(_n(4, 1), 1) == (0.0, 0.0)  # after reset: a new entry, window not full


def test_weights_by_species():
    assert Bias.weights_by_species({"H": 0.0, "O": 2.0}, ["H", "C", "O"]) == [0.0, 1.0, 2.0]
    assert Bias.weights_by_species(None, ["H", "C"]) == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"Cu is not in the model \(model elements: H, C\)"):
        Bias.weights_by_species({"Cu": 0.0}, ["H", "C"])


def test_global_norms_from_arrays_pack_unpack():
    forces = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 3.0]])
    du_dr = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    vir = np.arange(10.0, 19.0).reshape(3, 3)
    dd = -np.arange(1.0, 10.0).reshape(3, 3)
    n = GlobalNorms.from_arrays(forces, du_dr, vir, dd)
    assert (n.forces_sq, n.bias_forces_sq) == (18.0, 5.0)
    assert n.virial_sq() == 1824.0 and n.strain_derivative_sq() == 285.0
    buf = n.pack()
    assert len(buf) == GlobalNorms.size == 20
    assert buf[:3] == [18.0, 5.0, 10.0] and buf[10] == 18.0 and buf[11] == -1.0
    assert GlobalNorms.unpack(buf) == n
    with pytest.raises(ValueError):
        GlobalNorms.unpack(buf[:19])


def test_adaptive_scale_unchanged():
    sc = AdaptiveScale(window=3)
    assert sc.update(4.0, 1.0) == 0.0 and sc.update(4.0, 1.0) == 0.0
    assert sc.update(1.0, 2.0) == pytest.approx(3.0 / (2.0 + EPS))
    sc.reset()
    assert sc.count == 0 and sc.value == 0.0


def test_bias_replaces_the_calculators_inline_arithmetic():
    """What UBMDCalculator computes inline today (two AdaptiveScales updated on every call,
    weights per element) equals Bias's numbers when both components are active."""
    rng = np.random.default_rng(0)
    tau_f, tau_s, window = 0.3, 0.2, 3
    scale_f, scale_s = AdaptiveScale(window), AdaptiveScale(window)
    bias = Bias(tau_f, tau_s, window, weights=Bias.weights_by_species({"H": 0.5}, ["H", "O"]))
    species = np.array([0, 1, 0, 0, 1])
    for _ in range(6):
        forces, du_dr = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) * 1e-3
        virial, du_deps = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)) * 1e-2
        u = float(rng.uniform())
        # the calculator's arithmetic (ubmd/calculator.py)
        s_f = scale_f.update(float((forces ** 2).sum()), float((du_dr ** 2).sum()))
        s_s = scale_s.update(float((virial ** 2).sum()), float((du_deps ** 2).sum()))
        w = np.where(species == 0, 0.5, 1.0)[:, None]
        want = (tau_f * s_f * w * du_dr, tau_s * s_s * du_deps, -tau_f * s_f * u)
        # the same with Bias
        bias.update(GlobalNorms.from_arrays(forces, du_dr, virial, du_deps))
        got = (bias.force_coefficients(species)[:, None] * du_dr,
               bias.stress_coefficient() * du_deps, bias.energy(u))
        for g, x in zip(got, want):
            np.testing.assert_allclose(g, x, rtol=1e-14, atol=0)
