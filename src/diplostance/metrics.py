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


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def bootstrap(y_true: np.ndarray, y_pred: np.ndarray, samples: int = 1000, seed: int = 0,
              y_other: np.ndarray | None = None) -> np.ndarray:
    """Per-label F1 (columns) on ``samples`` bootstrap resamples of the sentences (rows); with
    ``y_other`` (another system's decisions on the same sentences), the same resamples for it
    too, stacked as a second block: (2, samples, labels)."""
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(y_true), size=(samples, len(y_true)))
    systems = [y_pred] + ([np.asarray(y_other, dtype=bool)] if y_other is not None else [])
    out = []
    for pred in systems:
        t, p = y_true[index], pred[index]  # (samples, n, labels)
        tp, fp, fn = (t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1)
        out.append(_f1_from_counts(tp, fp, fn))
    return np.stack(out) if y_other is not None else out[0]


def confidence_intervals(y_true: np.ndarray, y_pred: np.ndarray, names, samples: int = 1000, seed: int = 0,
                         level: float = 0.95) -> dict:
    """Bootstrap ``level`` intervals (percentile) of macro-F1 and of each label's F1."""
    f1 = bootstrap(y_true, y_pred, samples, seed)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    ci = {name: [float(np.percentile(f1[:, j], lo)), float(np.percentile(f1[:, j], hi))]
          for j, name in enumerate(names)}
    macro = f1.mean(axis=1)
    ci["macro_f1"] = [float(np.percentile(macro, lo)), float(np.percentile(macro, hi))]
    return {"level": level, "samples": samples, "intervals": ci}


def paired_difference(y_true: np.ndarray, y_a: np.ndarray, y_b: np.ndarray, samples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> dict:
    """Macro-F1 of system a minus system b on the same bootstrap resamples, with its interval;
    ``wins`` is True only when the whole interval is above 0 (a difference smaller than its
    interval is not a win)."""
    both = bootstrap(y_true, y_a, samples, seed, y_other=y_b)
    diff = both[0].mean(axis=1) - both[1].mean(axis=1)
    lo, hi = np.percentile(diff, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return {"difference": float(diff.mean()), "interval": [float(lo), float(hi)], "wins": bool(lo > 0),
            "loses": bool(hi < 0)}


def multilabel_confusion(y_true: np.ndarray, y_pred: np.ndarray, names) -> dict:
    """Per gold label: how many of its sentences got it, how many were missed as none (nothing
    predicted at all), and for each other label, how many missed it but got that label instead."""
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    none = ~y_pred.any(axis=1)
    table = {}
    for j, name in enumerate(names):
        gold = y_true[:, j]
        missed = gold & ~y_pred[:, j]
        table[name] = {"gold": int(gold.sum()), "found": int((gold & y_pred[:, j]).sum()),
                       "missed_as_none": int((missed & none).sum()),
                       "instead": {other: int((missed & y_pred[:, k]).sum()) for k, other in enumerate(names) if k != j}}
    return table


def breakdown(y_true: np.ndarray, y_pred: np.ndarray, groups: list, names, minimum: int = 20) -> dict:
    """Macro-F1 and sentence count per group (a source style, a guideline rule); ``groups`` gives
    each sentence's groups (a list per sentence).  Groups with fewer than ``minimum`` sentences
    are left out (their F1 says little)."""
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    members: dict = {}
    for i, gs in enumerate(groups):
        for g in gs:
            members.setdefault(g, []).append(i)
    out = {}
    for g, rows in sorted(members.items(), key=lambda kv: str(kv[0])):
        if len(rows) < minimum:
            continue
        t, p = y_true[rows], y_pred[rows]
        f1 = _f1_from_counts((t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0))
        out[str(g)] = {"n": len(rows), "macro_f1": float(f1.mean()), "exact_match": float((t == p).all(1).mean())}
    return out
