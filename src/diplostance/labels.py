"""Label sets and the decision rule.

The label set is data: a model is trained on the labels its recipe names (``[data] labels``,
by default the task's four, see data/GUIDELINES.md), saves them (``id2label`` and
``diplostance.json``) and is scored with them.  :data:`DEFAULT` is the task's set;
:class:`LabelSet` is any other.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: The task's labels, in the order of model outputs, columns and metadata.
LABELS: tuple[str, ...] = ("commitment", "support", "opposition", "greeting")
#: Name used where a single label must be shown and the set is empty.
NONE = "none"
#: Precedence for the primary label (the spec: opposition > commitment > support > greeting).
PRIMARY_ORDER: tuple[str, ...] = ("opposition", "commitment", "support", "greeting")


def decide(probs, thresholds) -> np.ndarray:
    """The decision rule, the only place it is written: a label is on when its probability is at
    least its threshold, both compared in float32 (as scoring computes them)."""
    return np.asarray(probs, dtype=np.float32) >= np.asarray(thresholds, dtype=np.float32)


@dataclass(frozen=True)
class LabelSet:
    """The labels of a model, in output order, and the precedence of its primary label."""

    names: tuple[str, ...] = LABELS
    primary_order: tuple[str, ...] = PRIMARY_ORDER

    def __post_init__(self):
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "primary_order", tuple(self.primary_order))
        bad = [n for n in names if not isinstance(n, str) or not n.strip() or n != n.strip() or n == NONE]
        if not names or bad or len(set(names)) != len(names):
            raise ValueError(f"a label set is a list of distinct, non-empty names other than {NONE!r}; "
                             f"got {list(names)!r}")
        if sorted(self.primary_order) != sorted(names):
            raise ValueError(f"primary order {list(self.primary_order)} must hold each label of {list(names)} once")

    @classmethod
    def of(cls, names: Sequence[str], primary_order: Sequence[str] | None = None) -> "LabelSet":
        """The set ``names``; its primary order, unless given, puts the task's labels first in the
        spec's precedence, then the others in ``names`` order."""
        names = tuple(names)
        if primary_order is None:
            primary_order = [n for n in PRIMARY_ORDER if n in names] + [n for n in names if n not in PRIMARY_ORDER]
        return cls(names, tuple(primary_order))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def primary(self, labels: Iterable[str]) -> str:
        """The first of ``labels`` in the primary order, else ``"none"``."""
        present = set(labels)
        return next((name for name in self.primary_order if name in present), NONE)

    def check(self, labels: object, where: str = "") -> list[str]:
        """Validate a label list; return it in this set's order.  Raises ``ValueError`` saying
        what was expected and what came."""
        prefix = f"{where}: " if where else ""
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{prefix}'labels' must be a list of label names, got {labels!r}")
        unknown = sorted(set(labels) - set(self.names))
        if unknown:
            hint = ("" if self.names != LABELS else
                    "; to train on other labels, list them in the recipe: [data] labels = [...]")
            raise ValueError(f"{prefix}unknown label(s) {unknown}; expected a subset of {list(self.names)} "
                             f"(an empty list means none){hint}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"{prefix}repeated label in {labels!r}")
        return [name for name in self.names if name in labels]

    def vector(self, labels: Iterable[str]) -> list[float]:
        present = set(labels)
        return [1.0 if name in present else 0.0 for name in self.names]

    def from_vector(self, vector: Iterable[float | int | bool]) -> list[str]:
        return [name for name, v in zip(self.names, vector) if v]

    def decisions(self, probs: np.ndarray, thresholds) -> list[list[str]]:
        """The label set of each row of ``probs``."""
        return [self.from_vector(row) for row in decide(np.atleast_2d(probs), thresholds)]


DEFAULT = LabelSet()


def primary_label(labels: Iterable[str], label_set: LabelSet = DEFAULT) -> str:
    """The first label of ``labels`` in the primary order (default: :data:`PRIMARY_ORDER`), else ``"none"``."""
    return label_set.primary(labels)


def check_labels(labels: object, where: str = "", label_set: LabelSet = DEFAULT) -> list[str]:
    """Validate a label list against ``label_set``; return it in canonical order."""
    return label_set.check(labels, where)


def to_vector(labels: Iterable[str], label_set: LabelSet = DEFAULT) -> list[float]:
    return label_set.vector(labels)


def from_vector(vector: Iterable[float | int | bool], label_set: LabelSet = DEFAULT) -> list[str]:
    return label_set.from_vector(vector)
