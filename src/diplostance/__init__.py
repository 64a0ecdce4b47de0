"""diplostance: stance and commitment labels for sentences of French diplomatic readouts."""
from __future__ import annotations

__version__ = "0.1.0"

from .labels import LABELS, PRIMARY_ORDER, primary_label

__all__ = ["LABELS", "PRIMARY_ORDER", "primary_label", "StanceClassifier", "__version__"]


def __getattr__(name: str):  # lazy: importing the package must not import torch
    if name == "StanceClassifier":
        from .classifier import StanceClassifier

        return StanceClassifier
    raise AttributeError(name)
