"""diplostance: stance and commitment labels for sentences of French diplomatic readouts."""
from __future__ import annotations

__version__ = "0.1.0"

import os as _os

# OpenMP worker threads (torch's) spin after every operator by default; on a CPU shared with other
# busy processes they then wait for each other's time slices, and scoring with 2 threads measured
# about 1.5x slower than with passive waiting (evaluate/benchmarks/results.md).  Passive waiting
# costs microseconds per operator otherwise.  OpenMP reads this when torch is first imported, so it
# only applies when diplostance is imported before torch; a value set by the user wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .labels import LABELS, PRIMARY_ORDER, primary_label

__all__ = ["LABELS", "PRIMARY_ORDER", "primary_label", "StanceClassifier", "__version__"]


def __getattr__(name: str):  # lazy: importing the package must not import torch
    if name == "StanceClassifier":
        from .score import StanceClassifier

        return StanceClassifier
    raise AttributeError(name)
