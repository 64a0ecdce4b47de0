"""The label set of the task (see data/GUIDELINES.md) and the primary-label rule."""
from __future__ import annotations

from collections.abc import Iterable

#: Label order used everywhere: model outputs, columns, metadata.
LABELS: tuple[str, ...] = ("commitment", "support", "opposition", "greeting")
#: Name used where a single label must be shown and the set is empty.
NONE = "none"
#: Precedence for the primary label (the spec: opposition > commitment > support > greeting).
PRIMARY_ORDER: tuple[str, ...] = ("opposition", "commitment", "support", "greeting")


def primary_label(labels: Iterable[str]) -> str:
    """The first label of ``labels`` in :data:`PRIMARY_ORDER`, else ``"none"``."""
    present = set(labels)
    for name in PRIMARY_ORDER:
        if name in present:
            return name
    return NONE


def check_labels(labels: object, where: str = "") -> list[str]:
    """Validate a label list; return it in canonical order.

    Raises ``ValueError`` saying what was expected and what came.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{prefix}'labels' must be a list of label names, got {labels!r}")
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise ValueError(f"{prefix}unknown label(s) {unknown}; expected a subset of {list(LABELS)} "
                         f"(an empty list means none)")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{prefix}repeated label in {labels!r}")
    return [name for name in LABELS if name in labels]


def to_vector(labels: Iterable[str]) -> list[float]:
    present = set(labels)
    return [1.0 if name in present else 0.0 for name in LABELS]


def from_vector(vector: Iterable[float | int | bool]) -> list[str]:
    return [name for name, v in zip(LABELS, vector) if v]
