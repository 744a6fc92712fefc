"""The uncertainty bias: E_b = E - tau u, adaptive scales over a window, per-species weights.

F_b,i = tau_F s_F w_{Z_i} du/dr_i;   W_b = tau_sigma s_sigma du/deps  (virial, eV; the bias stress
is -W_b / V). Scales over the last ``window`` evaluations (current one included):
s_F = sqrt(sum ||F||^2) / (sqrt(sum ||du/dR||^2) + 1e-8), s_sigma = the same with the unbiased
virial and du/deps (Frobenius norms); s = 0 until ``window`` evaluations have been made, so every
trajectory starts unbiased. Scales are detached numbers.

:class:`Bias` and :class:`GlobalNorms` mirror ``ubmd::Bias`` and ``ubmd::GlobalNorms`` of
``cpp/ubmd_bias.h`` one to one (same settings, methods and rules; ``tests/test_bias_mirror.py``
compares them number by number), so the ASE calculator and the LAMMPS pair style bias alike.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-8


@dataclass
class AdaptiveScale:
    """Running window of squared norms and the resulting scale s = sqrt(sum a)/(sqrt(sum b)+eps)."""

    window: int = 100
    _a: deque = field(default_factory=deque)
    _b: deque = field(default_factory=deque)

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"bias window must be >= 1, got {self.window}")

    def update(self, true_sq: float, bias_sq: float) -> float:
        self._a.append(float(true_sq))
        self._b.append(float(bias_sq))
        if len(self._a) > self.window:
            self._a.popleft()
            self._b.popleft()
        return self.value

    @property
    def value(self) -> float:
        if len(self._a) < self.window:
            return 0.0
        return math.sqrt(sum(self._a)) / (math.sqrt(sum(self._b)) + EPS)

    @property
    def count(self) -> int:
        return len(self._a)

    def reset(self) -> None:
        self._a.clear()
        self._b.clear()


def _frobenius_sq(m: Sequence[float]) -> float:
    s = 0.0
    for x in m:  # in order, as the C++ loop (not math.fsum)
        s += x * x
    return s


@dataclass
class GlobalNorms:
    """The global sums one biased evaluation needs (over all atoms).

    forces_sq: sum_i ||F_i||^2 of the unbiased forces, (eV/Å)^2; bias_forces_sq: sum_i
    ||du/dr_i||^2; virial: unbiased virial W (9 numbers, 3x3 row-major), eV; strain_derivative:
    du/deps (9 numbers, row-major). :meth:`pack` / :meth:`unpack` use the layout of the C++
    struct (``size`` = 20 numbers: forces_sq, bias_forces_sq, virial, strain_derivative).
    """

    forces_sq: float = 0.0
    bias_forces_sq: float = 0.0
    virial: tuple = (0.0,) * 9
    strain_derivative: tuple = (0.0,) * 9

    size = 20  # class constant (not a field)

    def __post_init__(self):
        self.forces_sq = float(self.forces_sq)
        self.bias_forces_sq = float(self.bias_forces_sq)
        self.virial = tuple(float(x) for x in np.asarray(self.virial, float).reshape(9))
        self.strain_derivative = tuple(
            float(x) for x in np.asarray(self.strain_derivative, float).reshape(9))

    @classmethod
    def from_arrays(cls, forces, du_dr, virial, du_deps) -> GlobalNorms:
        """From the unbiased forces [N, 3], du/dR [N, 3], the virial [3, 3] and du/deps [3, 3]."""
        forces = np.asarray(forces, float)
        du_dr = np.asarray(du_dr, float)
        return cls(float((forces ** 2).sum()), float((du_dr ** 2).sum()), virial, du_deps)

    def pack(self) -> list[float]:
        return [self.forces_sq, self.bias_forces_sq, *self.virial, *self.strain_derivative]

    @classmethod
    def unpack(cls, buf: Sequence[float]) -> GlobalNorms:
        if len(buf) != cls.size:
            raise ValueError(f"GlobalNorms.unpack needs {cls.size} numbers, got {len(buf)}")
        return cls(buf[0], buf[1], tuple(buf[2:11]), tuple(buf[11:20]))

    def virial_sq(self) -> float:
        """Frobenius norm^2 of the virial."""
        return _frobenius_sq(self.virial)

    def strain_derivative_sq(self) -> float:
        """Frobenius norm^2 of du/deps."""
        return _frobenius_sq(self.strain_derivative)


def _nonnegative(name: str, value) -> float:
    value = float(value)
    if not value >= 0.0:  # also NaN
        raise ValueError(f"bias {name} must be >= 0, got {value}")
    return value


class Bias:
    """The bias of one trajectory: settings, the two adaptive scales and the same-step rule.

    Parameters
    ----------
    tau_forces: tau_F, strength of the force bias (dimensionless, >= 0).
    tau_stress: tau_sigma, strength of the virial/stress bias (>= 0).
    window: W, evaluations in the adaptive-scale window (>= 1).
    fixed_scales: ``(s_F, s_sigma)`` constants instead of adaptive scales, or None.
    weights: w_Z per model species index, a list (species beyond it: 1) or a mapping
        {species index: w}; :meth:`weights_by_species` builds the list from element names.
    """

    def __init__(self, tau_forces: float = 0.0, tau_stress: float = 0.0, window: int = 100,
                 fixed_scales: tuple[float, float] | None = None,
                 weights: Sequence[float] | Mapping[int, float] | None = None):
        self.tau_forces = _nonnegative("tau_forces", tau_forces)
        self.tau_stress = _nonnegative("tau_stress", tau_stress)
        if int(window) != window or window < 1:
            raise ValueError(f"bias window must be an integer >= 1, got {window}")
        self.window = int(window)
        if fixed_scales is not None:
            s_f, s_s = fixed_scales
            fixed_scales = (_nonnegative("fixed scale s_F", s_f),
                            _nonnegative("fixed scale s_sigma", s_s))
        self.fixed_scales = fixed_scales
        self.weights: list[float] = []
        self.set_weights(weights)
        self._window_forces = AdaptiveScale(self.window)
        self._window_stress = AdaptiveScale(self.window)
        self._scale_forces = 0.0
        self._scale_stress = 0.0
        self._last_step: int | None = None

    def __repr__(self) -> str:
        return (f"Bias(tau_forces={self.tau_forces}, tau_stress={self.tau_stress}, "
                f"window={self.window}, fixed_scales={self.fixed_scales}, "
                f"weights={self.weights})")

    @staticmethod
    def weights_by_species(weights: Mapping[str, float] | None,
                           species: Sequence[str]) -> list[float]:
        """Per-species weights (model species order) from per-element ones, e.g.
        ``{"H": 0.0}`` with species ``["H", "C", "O"]`` -> ``[0.0, 1.0, 1.0]``; an element that
        is not one of ``species`` is a ValueError naming the model's elements."""
        out = [1.0] * len(species)
        for el, w in (weights or {}).items():
            if el not in species:
                raise ValueError(f"bias weights: element {el} is not in the model (model "
                                 f"elements: {', '.join(species)})")
            out[list(species).index(el)] = float(w)
        return out

    def set_weights(self, weights: Sequence[float] | Mapping[int, float] | None) -> None:
        """Per-species weights w_Z (see the class); keeps the windows."""
        if weights is None:
            new = []
        elif isinstance(weights, Mapping):
            if any(int(k) != k or k < 0 for k in weights):
                raise ValueError(f"bias weights: species indices must be integers >= 0, got "
                                 f"{sorted(weights)}")
            new = [1.0] * (max(weights, default=-1) + 1)
            for k, w in weights.items():
                new[int(k)] = w
        else:
            new = list(weights)
        self.weights = [_nonnegative(f"weight of species {k}", w) for k, w in enumerate(new)]

    def active(self) -> bool:
        """Any bias at all (tau_F > 0 or tau_sigma > 0)."""
        return self.tau_forces > 0.0 or self.tau_stress > 0.0

    def update(self, norms: GlobalNorms, step: int | None = None) -> tuple[float, float]:
        """New scales (s_F, s_sigma) from this evaluation's global norms.

        Fixed scales: the constants. Otherwise the force window takes an entry only when
        tau_F > 0 and the stress window only when tau_sigma > 0 (an inactive component's scale
        is 0). A second update on the same ``step`` (a new run's setup, fix numdiff) returns the
        previous scales and adds no entry; ``step=None`` (or < 0, as in C++) means "no step
        information": always a new entry."""
        if step is not None and step < 0:
            step = None
        if self.fixed_scales is not None:
            self._scale_forces, self._scale_stress = self.fixed_scales
        elif step is None or step != self._last_step:
            self._scale_forces = (self._window_forces.update(norms.forces_sq, norms.bias_forces_sq)
                                  if self.tau_forces > 0.0 else 0.0)
            self._scale_stress = (self._window_stress.update(norms.virial_sq(),
                                                             norms.strain_derivative_sq())
                                  if self.tau_stress > 0.0 else 0.0)
            self._last_step = step
        return self._scale_forces, self._scale_stress

    def scale_forces(self) -> float:
        """s_F of the last update (0 before)."""
        return self._scale_forces

    def scale_stress(self) -> float:
        """s_sigma of the last update (0 before)."""
        return self._scale_stress

    def weight(self, species: int) -> float:
        """w_Z of a model species index (1 outside the weights given)."""
        if 0 <= species < len(self.weights):
            return self.weights[species]
        return 1.0

    def force_coefficient(self, species: int) -> float:
        """tau_F s_F w_Z: the bias force on an atom of this species is this times du/dr_i."""
        return self.tau_forces * self._scale_forces * self.weight(species)

    def force_coefficients(self, species) -> np.ndarray:
        """:meth:`force_coefficient` of each entry of an array of species indices."""
        species = np.asarray(species, dtype=np.int64)
        w = np.ones(species.shape)
        inside = (species >= 0) & (species < len(self.weights))
        w[inside] = np.asarray(self.weights, float)[species[inside]]
        return self.tau_forces * self._scale_forces * w

    def stress_coefficient(self) -> float:
        """tau_sigma s_sigma: the bias virial is this times du/deps."""
        return self.tau_stress * self._scale_stress

    def energy(self, u: float) -> float:
        """The bias energy -tau_F s_F u (eV; not part of the reported potential energy)."""
        return -self.tau_forces * self._scale_forces * u

    def reset(self) -> None:
        """A new trajectory: windows cleared, scales 0."""
        self._window_forces.reset()
        self._window_stress.reset()
        self._scale_forces = self._scale_stress = 0.0
        self._last_step = None
