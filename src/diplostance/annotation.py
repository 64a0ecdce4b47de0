"""Double annotation: agreement between two label files (Cohen's kappa per label) and the list
of disagreements to adjudicate."""
from __future__ import annotations

from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from .corpus import CorpusError, read_jsonl
from .labels import LABELS, check_labels


def read_labels(path: str | Path) -> dict[str, list[str]]:
    """``{id: labels}`` from a JSONL file of ``{"id", "labels"}`` rows (other fields ignored)."""
    out: dict[str, list[str]] = {}
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        if "id" not in row or "labels" not in row:
            raise CorpusError(f"{where}: expected 'id' and 'labels'")
        if row["id"] in out:
            raise CorpusError(f"{where}: duplicate id {row['id']!r}")
        try:
            out[row["id"]] = check_labels(row["labels"])
        except ValueError as exc:
            raise CorpusError(f"{where}: {exc}") from None
    return out


def agreement(first: dict[str, list[str]], second: dict[str, list[str]]) -> dict:
    """Cohen's kappa and raw agreement per label, and exact set agreement, on the shared ids."""
    missing = sorted(set(first) ^ set(second))
    if missing:
        raise CorpusError(f"the two annotations cover different sentences, e.g. {missing[:5]}")
    ids = sorted(first)
    result: dict = {"n": len(ids), "per_label": {}}
    for label in LABELS:
        a = [int(label in first[i]) for i in ids]
        b = [int(label in second[i]) for i in ids]
        result["per_label"][label] = {
            "kappa": float(cohen_kappa_score(a, b)),
            "agreement": sum(x == y for x, y in zip(a, b)) / len(ids),
            "first_positives": sum(a), "second_positives": sum(b),
        }
    result["exact_set_agreement"] = sum(first[i] == second[i] for i in ids) / len(ids)
    result["disagreements"] = [i for i in ids if first[i] != second[i]]
    return result
