"""Tests of ubmd.uncertainty.calibration, .metrics and .plots.

Statistical tolerances are derived in comments next to each assertion (all with fixed seeds, so
the tests are deterministic; the derived bounds say why the chosen seeds are not cherry-picked).
"""

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ubmd.uncertainty.calibration import (
    METHODS,
    Calibration,
    atomic_residuals,
    conformal_quantile_level,
    fit_calibration,
    total_residuals,
)
from ubmd.uncertainty.metrics import (
    coverage,
    coverage_curve,
    gaussian_nll,
    miscalibration_area,
    spearman,
    summary,
)
from ubmd.uncertainty.plots import plot_reliability, plot_uncertainty_vs_error


def heteroscedastic(rng, n, wrong_constant=3.7):
    """Residuals r ~ N(0, sigma^2) with sigma log-uniform over [e^-3, e^1]; u_raw = k * sigma."""
    sigma = np.exp(rng.uniform(-3.0, 1.0, n))
    return wrong_constant * sigma, rng.normal(0.0, sigma)


# ----------------------------------------------------------------------------- conformal
def test_conformal_quantile_level_by_hand():
    assert conformal_quantile_level(100, 0.1) == pytest.approx(0.91)  # ceil(101 * 0.9) = 91
    assert conformal_quantile_level(200, 0.05) == pytest.approx(0.955)  # ceil(190.95) = 191
    assert conformal_quantile_level(19, 0.05) == 1.0  # ceil(20 * 0.95) = 19 (no float round-up)
    assert conformal_quantile_level(5, 0.05) == 1.0  # ceil(5.7) = 6 > 5: clipped to 1


def test_conformal_picks_the_order_statistic_higher():
    # Scores 1..100 (u = 1), alpha = 0.1: q = 0.91; 'higher' quantile position q (n-1) = 90.09
    # rounds up to 0-based index 91, i.e. the score 92 (never an interpolated value below it).
    r = np.arange(1.0, 101.0)
    rng = np.random.default_rng(0)
    perm = rng.permutation(100)
    c = fit_calibration(np.ones(100), r[perm], alpha=0.1)
    assert c == pytest.approx(92.0, rel=1e-7)
    # clipped q: the largest score
    assert fit_calibration(np.ones(5), np.arange(1.0, 6.0)) == pytest.approx(5.0, rel=1e-7)


def test_conformal_coverage_on_fresh_draws_over_many_seeds():
    # n_cal = 200 calibration points, alpha = 0.05: k = ceil(201 * 0.95) = 191, q = 0.955, and the
    # 'higher' quantile is the l = 192nd smallest score (position 0.955 * 199 = 190.05 -> 191).
    # For exchangeable data the coverage of a fresh point given the calibration set is
    # Beta(l, n + 1 - l): mean l / (n + 1) = 0.95522 >= 1 - alpha,
    # var l (n + 1 - l) / ((n + 1)^2 (n + 2)) = 2.12e-4.  Measured on m = 1000 test points adds the
    # binomial variance p (1 - p) / m = 4.3e-5.  Per seed sd = sqrt(2.55e-4) = 0.016; the mean over
    # S = 200 seeds has sd 0.016 / sqrt(200) = 1.13e-3.  We demand the mean within 4 sd of l/(n+1)
    # (so in particular >= 1 - alpha - 0.4 %); a wrong quantile (e.g. plain 1 - alpha or lower
    # interpolation, mean ~0.950) or the raw u (constant 3.7: coverage ~1) fails.
    n_cal, m, alpha, seeds = 200, 1000, 0.05, 200
    expected = 192 / 201
    sd_mean = math.sqrt(192 * 9 / (201**2 * 202) + expected * (1 - expected) / m) / math.sqrt(seeds)
    covs = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        u_cal, r_cal = heteroscedastic(rng, n_cal)
        u_test, r_test = heteroscedastic(rng, m)
        c = fit_calibration(u_cal, r_cal, "conformal", alpha)
        covs.append(coverage(c * u_test, r_test, alpha))
    mean_cov = float(np.mean(covs))
    assert abs(mean_cov - expected) < 4 * sd_mean, (mean_cov, expected, sd_mean)
    assert mean_cov >= 1 - alpha - 4 * sd_mean


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(1)
    u, r = heteroscedastic(rng, 300)
    for method in METHODS:
        c_np = fit_calibration(u, r, method)
        c_t = fit_calibration(torch.tensor(u, dtype=torch.float64), torch.tensor(r), method)
        assert c_t == pytest.approx(c_np, rel=1e-12)


# ------------------------------------------------------- max likelihood / log regression
def test_max_likelihood_recovers_constant():
    # r = c u z with z ~ N(0, 1): c_hat = c sqrt(mean z^2); Var(mean z^2) = 2 / n, so by the delta
    # method sd(c_hat) / c = sqrt(2 / n) / 2 = 1 / sqrt(2 n) = 5e-3 for n = 20000.  Tolerance: 5 sd.
    n, c_true = 20000, 0.37
    rng = np.random.default_rng(2)
    u = np.exp(rng.uniform(-3, 1, n))
    r = c_true * u * rng.normal(size=n)
    c = fit_calibration(u, r, "max_likelihood")
    assert c == pytest.approx(c_true, rel=5 / math.sqrt(2 * n))


def test_log_regression_recovers_geometric_mean_constant():
    # log c_hat = log c + mean log|z|; E log|z| = -(gamma_E + ln 2) / 2 (closed form for |N(0,1)|),
    # Var log|z| = pi^2 / 8, so sd(log c_hat) = sqrt(pi^2 / (8 n)) = 7.9e-3 for n = 20000.
    # Tolerance on log c_hat: 5 sd.
    n, c_true = 20000, 2.5
    rng = np.random.default_rng(3)
    u = np.exp(rng.uniform(-3, 1, n))
    r = c_true * u * rng.normal(size=n)
    c = fit_calibration(u, r, "log_regression")
    expected = c_true * math.exp(-(np.euler_gamma + math.log(2)) / 2)
    assert abs(math.log(c) - math.log(expected)) < 5 * math.sqrt(math.pi**2 / (8 * n))


def test_zero_residuals_and_uncertainties_are_guarded():
    u = np.array([0.0, 1.0, 2.0])
    r = np.array([0.0, 0.0, 1.0])
    for method in METHODS:
        c = fit_calibration(u, r, method)
        assert math.isfinite(c) and c > 0


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "u, r, kwargs, match",
    [
        ([], [], {}, "empty"),
        ([1.0, float("nan")], [1.0, 1.0], {}, "non-finite"),
        ([1.0, 1.0], [1.0, float("inf")], {}, "non-finite"),
        ([1.0, -0.5], [1.0, 1.0], {}, ">= 0"),
        ([1.0, 1.0], [1.0, 1.0, 1.0], {}, "same shape"),
        ([1.0], [1.0], {"method": "isotonic"}, "conformal, max_likelihood, log_regression"),
        ([1.0], [1.0], {"alpha": 1.5}, "alpha"),
        ([1.0], [1.0], {"alpha": 0.0}, "alpha"),
    ],
)
def test_fit_calibration_errors(u, r, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_calibration(np.array(u), np.array(r), **kwargs)


def test_metric_errors():
    with pytest.raises(ValueError, match="conformal, gaussian"):
        coverage([1.0], [1.0], interval="bayes")
    with pytest.raises(ValueError, match="u > 0"):
        gaussian_nll([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(TypeError, match="numeric"):
        fit_calibration(["a"], [1.0])
    with pytest.raises(ValueError, match="unit"):
        plot_uncertainty_vs_error([1.0], [1.0], "x.png", unit="")


# ------------------------------------------------------------------ residual helpers
def test_atomic_and_total_residuals():
    rng = np.random.default_rng(4)
    fp, fr = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    expected = [math.sqrt(sum((fp[i, k] - fr[i, k]) ** 2 for k in range(3)) / 3) for i in range(7)]
    np.testing.assert_allclose(atomic_residuals(fp, fr), expected, rtol=1e-12)
    np.testing.assert_allclose(atomic_residuals(torch.tensor(fp), torch.tensor(fr)), expected)
    np.testing.assert_allclose(total_residuals([1.0, -2.0], [0.5, -3.0], [2, 4]), [0.25, 0.25])
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        atomic_residuals(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="positive"):
        total_residuals([1.0], [1.0], [0])
    with pytest.raises(ValueError, match="same length"):
        total_residuals([1.0, 2.0], [1.0], [1, 1])


# --------------------------------------------------------------------- dataclass
def test_calibration_dataclass_roundtrip(tmp_path):
    rng = np.random.default_rng(5)
    u_t, r_t = heteroscedastic(rng, 50)
    u_a, r_a = heteroscedastic(rng, 400)
    cal = Calibration.fit(u_t, r_t, u_a, r_a, method="conformal", alpha=0.1)
    assert cal.total == pytest.approx(fit_calibration(u_t, r_t, alpha=0.1))
    assert cal.atomic == pytest.approx(fit_calibration(u_a, r_a, alpha=0.1))
    assert (cal.n_total, cal.n_atomic) == (50, 400)
    text = json.dumps(cal.to_dict())
    assert Calibration.from_dict(json.loads(text)) == cal
    assert Calibration.load(cal.save(tmp_path / "calibration.json")) == cal
    only_total = Calibration.fit(u_t, r_t, method="max_likelihood")
    assert only_total.atomic is None and only_total.n_atomic == 0
    with pytest.raises(ValueError, match="valid keys"):
        Calibration.from_dict({"total": 1.0, "scale": 2.0})
    with pytest.raises(ValueError, match="positive"):
        Calibration(total=-1.0)
    with pytest.raises(ValueError, match="both"):
        Calibration.fit(u_t, r_t, u_a, None)


# ------------------------------------------------------------ coverage / area metrics
def test_gaussian_coverage_of_a_calibrated_std():
    # u = sigma (a true std), |r| <= 1.96 u holds with probability 0.95; binomial sd for
    # n = 20000 is sqrt(0.95 * 0.05 / n) = 1.5e-3; tolerance 5 sd.
    n = 20000
    rng = np.random.default_rng(6)
    sigma = np.exp(rng.uniform(-3, 1, n))
    r = rng.normal(0, sigma)
    assert coverage(sigma, r, 0.05, "gaussian") == pytest.approx(0.95, abs=5 * math.sqrt(0.95 * 0.05 / n))
    # the same u read as a conformal half-width covers only P(|z| <= 1) = 0.6827
    assert coverage(sigma, r, 0.05, "conformal") == pytest.approx(0.6827, abs=5 * math.sqrt(0.25 / n))


def _reference_area(k, signed):
    """Exact area for u = sigma / k: observed(p) = 2 Phi(h(p) / k) - 1, h(p) = Phi^-1((1 + p) / 2)."""
    def diff(p):
        return 2 * stats.norm.cdf(stats.norm.ppf((1 + p) / 2) / k) - 1 - p
    f = diff if signed else (lambda p: abs(diff(p)))
    return integrate.quad(f, 0, 1, limit=200)[0]


def test_miscalibration_area():
    # Perfect calibration: E|F_n(t) - F(t)| <= sqrt(p (1 - p) / n) <= 0.5 / sqrt(n), so the expected
    # area is <= 0.5 / sqrt(n) = 3.5e-3 for n = 20000; we allow 3x that (plus nothing for the grid:
    # the trapezoid error of a smooth curve on 201 points is ~1e-5).
    n = 20000
    rng = np.random.default_rng(7)
    sigma = np.exp(rng.uniform(-3, 1, n))
    r = rng.normal(0, sigma)
    bound = 3 * 0.5 / math.sqrt(n)
    assert miscalibration_area(sigma, r, interval="gaussian") < bound
    # conformal reading with u = z sigma is the same Gaussian
    z = stats.norm.ppf(0.975)
    assert miscalibration_area(z * sigma, r, 0.05, "conformal") < bound
    # Over-confident (u = sigma / 2): observed < expected, negative signed area; under-confident
    # (u = 2 sigma): positive.  Both match the exact integral to the same tolerance.
    for k, sign in ((2.0, -1), (0.5, +1)):
        signed = miscalibration_area(sigma / k, r, interval="gaussian", signed=True)
        area = miscalibration_area(sigma / k, r, interval="gaussian")
        assert np.sign(signed) == sign
        assert signed == pytest.approx(_reference_area(k, True), abs=bound)
        assert area == pytest.approx(_reference_area(k, False), abs=bound)
        assert area > 10 * bound
    expected, observed = coverage_curve(sigma, r, interval="gaussian")
    assert expected[0] == 0 and expected[-1] == 1 and observed[-1] == 1
    assert np.all(np.diff(observed) >= 0)


def test_spearman_and_nll():
    x = np.linspace(0.01, 3, 50)
    assert spearman(x, x**3 + 0.1) == pytest.approx(1.0)
    assert spearman(x, -np.exp(-x)) == pytest.approx(-1.0)  # |r| = exp(-x) decreases
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    rng = np.random.default_rng(8)
    u = np.exp(rng.uniform(-1, 1, 100))
    r = rng.normal(size=100)
    assert gaussian_nll(u, r, interval="gaussian") == pytest.approx(-np.mean(stats.norm.logpdf(r, scale=u)))
    z = stats.norm.ppf(0.975)
    assert gaussian_nll(u, r) == pytest.approx(-np.mean(stats.norm.logpdf(r, scale=u / z)))


def test_summary_after_conformal_calibration():
    # End to end: calibrate on one split, evaluate on a held-out one.  Binomial sd of the coverage
    # for m = 5000 test points is 3.1e-3, conditional-coverage sd for n = 2000 is 4.6e-3:
    # total 5.5e-3, tolerance 4 sd = 0.022.
    rng = np.random.default_rng(9)
    u_cal, r_cal = heteroscedastic(rng, 2000)
    u_test, r_test = heteroscedastic(rng, 5000)
    c = fit_calibration(u_cal, r_cal)
    s = summary(c * u_test, r_test, 0.05)
    json.dumps(s)
    assert s["n"] == 5000 and s["target_coverage"] == pytest.approx(0.95)
    assert s["coverage"] == pytest.approx(0.95, abs=0.022)
    assert s["miscalibration_area"] < 0.03
    assert s["spearman"] > 0.3  # u tracks sigma, |r| = sigma |z|
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean(r_test**2)))
    assert math.isfinite(s["nll"])


# --------------------------------------------------------------------------- plots
def test_plots_are_valid_pngs(tmp_path):
    rng = np.random.default_rng(10)
    u, r = heteroscedastic(rng, 500, wrong_constant=2.0)
    r[0] = 0.0  # a zero error must not break the log axes
    p1 = plot_reliability(u, r, tmp_path / "reliability.png")
    p2 = plot_uncertainty_vs_error(u, r, tmp_path / "sub" / "scatter.png", unit="eV/Å")
    for p in (p1, p2):
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 10_000
