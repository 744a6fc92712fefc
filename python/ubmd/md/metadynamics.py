"""Well-tempered metadynamics on one collective variable (Barducci, Bussi, Parrinello 2008).

:class:`WellTemperedMetad` is the bias B(s) of the Gaussians deposited so far, plus optional
harmonic walls; an MD driver evaluates it every step (energy and dB/ds) and deposits a Gaussian
every ``pace`` steps. It knows nothing about the MD engine: e.g. a bias on the volume per formula
unit of a framework reaches a LAMMPS barostat as the isotropic virial -V dB/dV
(``fix external``; benchmarks/mil53/metadynamics_baseline.py). Energies in eV, the CV in any
unit (the widths and walls in the same).
"""

from __future__ import annotations

import math

import numpy as np

KB_EV = 8.617333262e-5  # Boltzmann constant, eV/K


class WellTemperedMetad:
    """Sum of Gaussians in one CV with well-tempered heights, plus harmonic walls.

    A Gaussian deposited at s has height h0 exp(-B(s) / (k_B (gamma - 1) T)) (gamma =
    ``biasfactor`` > 1) and width ``sigma``; ``height`` 0 deposits nothing (unbiased runs with
    the same driver). Walls: 0.5 ``wall_k`` (s - wall)^2 below ``wall_lo`` and above
    ``wall_hi`` (``wall_k`` 0: none)."""

    def __init__(self, height: float, sigma: float, biasfactor: float, temperature: float,
                 wall_lo: float | None = None, wall_hi: float | None = None, wall_k: float = 0.0):
        if biasfactor <= 1.0:
            raise ValueError("biasfactor must be > 1")
        self.h0, self.sigma = float(height), float(sigma)
        self.dT = temperature * (biasfactor - 1.0)
        self.centres: list[float] = []
        self.heights: list[float] = []
        self.wall_lo, self.wall_hi, self.wall_k = wall_lo, wall_hi, float(wall_k)

    def hills(self, s: float) -> tuple[float, float]:
        """(sum of the Gaussians at s, its derivative)."""
        if not self.centres:
            return 0.0, 0.0
        c, h = np.asarray(self.centres), np.asarray(self.heights)
        d = (s - c) / self.sigma
        g = h * np.exp(-0.5 * d * d)
        return float(g.sum()), float(np.sum(-g * d / self.sigma))

    def walls(self, s: float) -> tuple[float, float]:
        """(wall energy at s, its derivative)."""
        e = de = 0.0
        if self.wall_k > 0 and self.wall_lo is not None and s < self.wall_lo:
            e += 0.5 * self.wall_k * (s - self.wall_lo) ** 2
            de += self.wall_k * (s - self.wall_lo)
        if self.wall_k > 0 and self.wall_hi is not None and s > self.wall_hi:
            e += 0.5 * self.wall_k * (s - self.wall_hi) ** 2
            de += self.wall_k * (s - self.wall_hi)
        return e, de

    def __call__(self, s: float) -> tuple[float, float]:
        """(bias energy B(s) in eV, dB/ds): Gaussians plus walls."""
        b, db = self.hills(s)
        w, dw = self.walls(s)
        return b + w, db + dw

    def deposit(self, s: float) -> float:
        """Deposit a Gaussian at s; returns its height (0 with ``height`` 0)."""
        if self.h0 <= 0:
            return 0.0
        b, _ = self.hills(s)
        h = self.h0 * math.exp(-b / (KB_EV * self.dT))
        self.centres.append(float(s))
        self.heights.append(h)
        return h
