"""The uncertainty bias: E_b = E - tau u, adaptive scales over a window, per-species weights.

F_b,i = tau_F s_F w_{Z_i} du/dr_i;   W_b = tau_sigma s_sigma du/deps  (virial, eV; the bias stress
is -W_b / V). Scales over the last ``window`` evaluations (current one included):
s_F = sqrt(sum ||F||^2) / (sqrt(sum ||du/dR||^2) + 1e-8), s_sigma = the same with the unbiased
virial and du/deps (Frobenius norms); s = 0 until ``window`` evaluations have been made, so every
trajectory starts unbiased. Scales are detached numbers. The C++ pair style does the same.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

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
