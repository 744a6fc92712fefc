"""Batch selection: the methods on feature matrices (:mod:`.methods`) and the features of candidate
structures under a trained run's model (:mod:`.pool`)."""

from .methods import METHODS, evenly_spaced, select_batch

__all__ = ["METHODS", "evenly_spaced", "select_batch"]
