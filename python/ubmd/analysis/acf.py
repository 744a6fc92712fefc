"""Autocorrelation functions (ACFs) of CV time series and a sine-wave model of them.

ACF estimators (``x`` mean-subtracted, lag ``k`` in samples, N samples)::

    biased:    C(k) = (1/N)       sum_{t<N-k} x_t x_{t+k} / C0      (default)
    unbiased:  C(k) = (1/(N-k))   sum_{t<N-k} x_t x_{t+k} / C0

with C0 = (1/N) sum x_t^2, so C(0) = 1. The biased estimator is positive semi-definite and
tapers as (N-k)/N (a long sine of period T gives cos(2 pi k/T)(N-k)/N); the unbiased one has no
taper but its variance grows with k. Both are computed with a zero-padded FFT.

Sine model of a CV trace (e.g. a breathing cell volume)::

    x(t) = A sin(2 pi t / T + phi) + c + noise,

fitted with ``scipy.optimize.curve_fit``; T free (initial guesses from the FFT peak and from
the run length) or fixed. Its ACF over a finite window is estimated by drawing synthetic traces
from the fitted model with white noise at given amplitudes and averaging their ACFs.

A fit is flagged unreliable (``reliable: False``, reasons in ``problems``) when the data cannot
determine it: a free period longer than twice the trace (less than half a period observed: a
drift fits any long period), a period standard error larger than the period, or an amplitude
larger than twice the full range (max - min) of the trace (the sine is extrapolated far beyond
the data; a trace that covers half a period spans about one amplitude or more). Short traces of a slow drift give such fits, e.g. T = 1e4 steps and A = 1e4 from 11
samples of 100 steps; fix the period (``--fixed-period``) or run longer instead.
"""

from __future__ import annotations

import numpy as np

from ..errors import RunStopped

BIASES = ("biased", "unbiased")


def acf(x, max_lag: int | None = None, bias: str = "biased") -> np.ndarray:
    """Normalised ACF of 1-D ``x`` for lags 0..max_lag (default N-1); see the module docstring."""
    if bias not in BIASES:
        raise ValueError(f"acf bias must be one of {BIASES}, got {bias!r}")
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"acf needs a 1-D series of at least 2 samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("acf: series contains NaN or inf")
    n = len(x)
    max_lag = n - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < n:
        raise ValueError(f"acf max_lag must be in [0, {n - 1}], got {max_lag}")
    x = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero padding: no circular wrap-around
    spectrum = np.fft.rfft(x, size)
    sums = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    if sums[0] <= 0:
        raise ValueError("acf of a constant series is undefined")
    lags = np.arange(max_lag + 1)
    cov = sums / n if bias == "biased" else sums / (n - lags)
    return cov / (sums[0] / n)


def acf_over_runs(runs, max_lag: int | None = None, bias: str = "biased") -> dict:
    """ACF mean and standard deviation over independent runs.

    Runs are truncated to the shortest one first. Returns ``{"lags", "acfs" [R, L], "mean",
    "std", "n_runs", "length"}`` (numpy arrays; std is the population std over runs, 0 for one
    run).
    """
    runs = [np.asarray(r, dtype=float) for r in runs]
    if not runs:
        raise ValueError("acf_over_runs needs at least one run")
    length = min(len(r) for r in runs)
    curves = np.array([acf(r[:length], max_lag, bias) for r in runs])
    return {
        "lags": np.arange(curves.shape[1]),
        "acfs": curves,
        "mean": curves.mean(axis=0),
        "std": curves.std(axis=0),
        "n_runs": len(runs),
        "length": length,
    }


def sine(t, amplitude, period, phase, offset):
    """A sin(2 pi t / T + phi) + c."""
    return amplitude * np.sin(2.0 * np.pi * np.asarray(t, dtype=float) / period + phase) + offset


def _linear_sine(t, x, period):
    """Least-squares (A, phi, c) for a fixed period, and the sum of squared residuals."""
    w = 2.0 * np.pi * t / period
    design = np.column_stack([np.sin(w), np.cos(w), np.ones_like(t)])
    (s, co, c), *_ = np.linalg.lstsq(design, x, rcond=None)
    residual = x - design @ np.array([s, co, c])
    return np.hypot(s, co), np.arctan2(co, s), c, float(residual @ residual)


def _canonical(amplitude, phase):
    if amplitude < 0:
        amplitude, phase = -amplitude, phase + np.pi
    phase = (phase + np.pi) % (2 * np.pi) - np.pi  # [-pi, pi)
    return amplitude, phase


def fit_sine(t, x, period: float | None = None) -> dict:
    """Fit ``x(t) = A sin(2 pi t/T + phi) + c`` (+ white noise) to a trace.

    ``t`` in any time unit (frames, steps, ps); ``period`` fixes T in that unit, else T is free.
    Initial T: the FFT peak of the trace and multiples of the run length (the best linear
    least-squares fit among them). Returns a JSON-ready dict: amplitude (A >= 0), period,
    phase (rad, in [-pi, pi)), offset, their standard errors (``*_err``, T's 0 when fixed),
    ``noise_std`` (residual standard deviation), ``period_fixed``, ``n``, and ``reliable`` /
    ``problems`` (see :func:`fit_problems`).
    """
    from scipy.optimize import curve_fit

    t = np.asarray(t, dtype=float)
    x = np.asarray(x, dtype=float)
    if t.shape != x.shape or t.ndim != 1 or len(t) < 5:
        raise ValueError(f"fit_sine needs matching 1-D t and x with at least 5 samples, got {t.shape}, {x.shape}")
    if period is not None and not period > 0:
        raise ValueError(f"fixed sine period must be positive, got {period}")
    dt = float(np.median(np.diff(t)))
    span = dt * len(t)
    if period is None:
        candidates = [span / 2, span, 2 * span, 4 * span]
        spectrum = np.abs(np.fft.rfft(x - x.mean()))
        if len(spectrum) > 1:
            peak = int(np.argmax(spectrum[1:])) + 1
            candidates.append(span / peak)
        guesses = [(T, *_linear_sine(t, x, T)) for T in candidates]
        T0, A0, p0, c0, _ = min(guesses, key=lambda g: g[-1])

        def model(tt, a, T, p, c):
            return sine(tt, a, T, p, c)

        start = [A0, T0, p0, c0]
    else:
        A0, p0, c0, _ = _linear_sine(t, x, period)

        def model(tt, a, p, c):
            return sine(tt, a, period, p, c)

        start = [A0, p0, c0]
    try:
        params, cov = curve_fit(model, t, x, p0=start, maxfev=20000)
    except RuntimeError as exc:  # no convergence: keep the linear least-squares start
        raise RunStopped(f"sine fit did not converge ({exc}); try a fixed period") from exc
    errors = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else np.full(len(params), np.nan)
    if period is None:
        a, T, p, c = params
        da, dT, dp, dc = errors
    else:
        (a, p, c), (da, dp, dc), T, dT = params, errors, period, 0.0
    a, p = _canonical(a, p)
    residual = x - sine(t, a, T, p, c)
    problems = fit_problems(float(a), float(abs(T)), float(dT), period is not None, span,
                            float(np.ptp(x)))
    return {
        "amplitude": float(a),
        "period": float(abs(T)),
        "phase": float(p),
        "offset": float(c),
        "amplitude_err": float(da),
        "period_err": float(dT),
        "phase_err": float(dp),
        "offset_err": float(dc),
        "noise_std": float(residual.std()),
        "period_fixed": period is not None,
        "n": int(len(t)),
        "reliable": not problems,
        "problems": problems,
    }


def fit_problems(amplitude: float, period: float, period_err: float, period_fixed: bool,
                 span: float, data_range: float) -> list[str]:
    """Why a sine fit says nothing about the trace (empty: none found); see the module
    docstring. ``span``: the trace length (time unit of ``period``); ``data_range``: max - min of
    the trace."""
    problems = []
    if not period_fixed:
        if period > 2 * span:
            problems.append(f"period {period:.4g} is {period / span:.3g} x the trace length "
                            f"{span:.4g} (less than half a period observed)")
        if not period_err <= period:  # NaN (undetermined) too
            problems.append(f"period standard error {period_err:.3g} exceeds the period")
    if amplitude > 2 * data_range:
        problems.append(f"amplitude {amplitude:.4g} exceeds twice the range of the trace "
                        f"{data_range:.4g}")
    return problems


def model_acf(
    params: dict,
    t,
    noise_stds,
    n_draws: int = 32,
    max_lag: int | None = None,
    bias: str = "biased",
    random_phase: bool = False,
    seed: int = 0,
) -> dict:
    """ACF of the fitted sine model on the sampling times ``t``, averaged over synthetic draws.

    For each noise amplitude in ``noise_stds`` (same unit as the trace), ``n_draws`` traces
    ``A sin(2 pi t/T + phi) + c + sigma * N(0, 1)`` are drawn (with ``random_phase`` the phase is
    uniform in [0, 2 pi) per draw) and their ACFs averaged. Returns {sigma: mean ACF array}.
    """
    rng = np.random.default_rng(seed)
    t = np.asarray(t, dtype=float)
    out = {}
    for sigma in noise_stds:
        curves = []
        for _ in range(n_draws):
            phase = rng.uniform(0, 2 * np.pi) if random_phase else params["phase"]
            x = sine(t, params["amplitude"], params["period"], phase, params["offset"])
            x = x + float(sigma) * rng.standard_normal(len(t))
            curves.append(acf(x, max_lag, bias))
        out[float(sigma)] = np.mean(curves, axis=0)
    return out
