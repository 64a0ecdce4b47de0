"""Multi-label metrics and per-label threshold tuning (plain numpy and scikit-learn)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from .labels import DEFAULT, NONE, LabelSet
from .labels import decide as _decide


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray, default: float = 0.5) -> list[float]:
    """For each label, the threshold that maximises that label's F1 on (y_true, probs).

    Candidates are the midpoints between consecutive distinct probabilities, so the choice
    does not depend on a grid.  A label with no positive in ``y_true`` keeps ``default``.
    Ties go to the candidate closest to ``default``.
    """
    thresholds = []
    for j in range(y_true.shape[1]):
        truth = y_true[:, j].astype(bool)
        p = probs[:, j].astype(np.float64)
        if truth.sum() == 0:
            thresholds.append(default)
            continue
        order = np.argsort(-p, kind="stable")
        p_sorted, t_sorted = p[order], truth[order]
        tp = np.cumsum(t_sorted)
        k = np.arange(1, len(p) + 1)
        f1 = 2 * tp / (k + truth.sum())
        # only cut where the probability changes (predict positive for the first k)
        valid = np.append(p_sorted[1:] < p_sorted[:-1], True)
        cuts = np.where(valid)[0]
        nxt = np.append(p_sorted[1:], 0.0)
        cand = (p_sorted[cuts] + nxt[cuts]) / 2
        best = f1[cuts].max()
        best_idx = cuts[np.isclose(f1[cuts], best)]
        cand_best = cand[np.isin(cuts, best_idx)]
        thresholds.append(float(cand_best[np.argmin(np.abs(cand_best - default))]))
    return thresholds


def decide(probs: np.ndarray, thresholds: list[float] | np.ndarray) -> np.ndarray:
    """:func:`diplostance.labels.decide` as 0/1 integers, for the metrics."""
    return _decide(probs, np.asarray(thresholds)[None, :]).astype(int)


def primary_indices(y: np.ndarray, label_set: LabelSet = DEFAULT) -> np.ndarray:
    """Index into ``primary_order + ('none',)`` of each row's primary label."""
    order = label_set.primary_order
    out = np.full(len(y), len(order), dtype=int)
    for rank in reversed(range(len(order))):
        col = label_set.names.index(order[rank])
        out[y[:, col].astype(bool)] = rank
    return out


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, label_set: LabelSet = DEFAULT) -> dict:
    """Per-label precision/recall/F1, micro and macro F1, exact match, F1 of none, and the
    confusion matrix of the primary label (rows gold, columns predicted)."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_label = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(label_set.names)
    }
    none_true, none_pred = ~y_true.any(axis=1), ~y_pred.any(axis=1)
    names = list(label_set.primary_order) + [NONE]
    cm = confusion_matrix(primary_indices(y_true, label_set), primary_indices(y_pred, label_set),
                          labels=range(len(names)))
    return {
        "per_label": per_label,
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "exact_match": float((y_true == y_pred).all(axis=1).mean()),
        "none_f1": float(f1_score(none_true, none_pred, zero_division=0)),
        "primary_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "primary_confusion": {"labels": names, "matrix": cm.tolist()},
        "n": int(len(y_true)),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over all (sentence, label) probabilities with equal-width bins; also the bins."""
    t, p = np.asarray(y_true, float).ravel(), np.asarray(probs, float).ravel()
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = idx == b
        if not mask.any():
            continue
        conf, acc = float(p[mask].mean()), float(t[mask].mean())
        ece += mask.mean() * abs(conf - acc)
        table.append({"bin": b, "lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(mask.sum()),
                      "confidence": conf, "accuracy": acc})
    return float(ece), table
