"""Evaluation of a model directory (or the baseline) on a labelled split: metrics, figures,
errors and a Markdown report, written to ``evaluate/<name>/``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics
from .corpus import Example, load_examples
from .labels import DEFAULT, LabelSet


@dataclass
class EvalResult:
    name: str
    split: str
    metrics: dict
    out_dir: Path
    baseline: dict | None = None
    files: list[str] = field(default_factory=list)
    labels: LabelSet = DEFAULT
    #: who to whom against the gold, per method (:func:`attribution_report`), when there is gold
    attribution: dict | None = None

    def summary(self) -> str:
        rows = [("macro F1", "macro_f1"), ("micro F1", "micro_f1"), ("exact match", "exact_match"),
                ("F1 of none", "none_f1")]
        head = f"{self.name} on {self.split} ({self.metrics['n']} sentences)"
        ci = (self.metrics.get("uncertainty") or {}).get("intervals", {}).get("macro_f1")
        if ci:
            head += f"; macro-F1 95% interval {ci[0]:.3f}-{ci[1]:.3f}"
        versus = (self.metrics.get("uncertainty") or {}).get("versus_baseline")
        if versus:
            verdict = "better than" if versus["wins"] else "worse than" if versus["loses"] else "not distinguishable from"
            head += (f"; {verdict} the baseline (macro-F1 {versus['difference']:+.3f}, interval "
                     f"{versus['interval'][0]:+.3f} to {versus['interval'][1]:+.3f})")
        lines = [head]
        for title, key in rows:
            base = f"   baseline {self.baseline[key]:.3f}" if self.baseline else ""
            lines.append(f"  {title:<12} {self.metrics[key]:.3f}{base}")
        for label in self.labels:
            base = f"   baseline {self.baseline['per_label'][label]['f1']:.3f}" if self.baseline else ""
            lines.append(f"  F1 {label:<9} {self.metrics['per_label'][label]['f1']:.3f}{base}")
        if self.attribution:
            lines.append("  who to whom (gold labels; share of stances whose code set equals the gold's):")
            for method, r in self.attribution.items():
                lines.append(f"    {method:<10} actor {r['accuracy']['actor']:.3f}  target {r['accuracy']['target']:.3f}  "
                             f"span F1 actor {r['span_f1']['actor']:.3f} target {r['span_f1']['target']:.3f}")
        return "\n".join(lines)


def _figures(out: Path, name: str, y: np.ndarray, probs: np.ndarray, thresholds, report: dict, ece_bins,
             labels: LabelSet = DEFAULT) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    files = []
    cm = np.array(report["primary_confusion"]["matrix"])
    names = report["primary_confusion"]["labels"]
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted primary label")
    ax.set_ylabel("gold primary label")
    ax.set_title(f"{name}: primary-label confusion")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)
    files.append("confusion_matrix.png")

    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 3.6), sharey=True, squeeze=False)
    axes = axes[0]
    for j, (label, ax) in enumerate(zip(labels.names, axes)):
        if y[:, j].sum():
            p, r, t = precision_recall_curve(y[:, j], probs[:, j])
            ax.plot(r, p)
            k = np.searchsorted(t, thresholds[j]) if len(t) else 0
            k = min(k, len(p) - 1)
            ax.scatter([r[k]], [p[k]], color="red", zorder=3, label=f"threshold {thresholds[j]:.2f}")
            ax.legend(loc="lower left")
        ax.set_title(label)
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("precision")
    fig.suptitle(f"{name}: precision-recall per label")
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    files.append("pr_curves.png")

    ece, bins = ece_bins
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.bar([b["lo"] for b in bins], [b["accuracy"] for b in bins], width=0.1, align="edge", alpha=0.7,
           edgecolor="black", label="observed frequency")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color="red", label="bin mean")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("fraction positive")
    ax.set_title(f"{name}: reliability (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)
    files.append("reliability.png")
    return files


def _uncertainty_md(report: dict, labels: LabelSet) -> list[str]:
    """The intervals, the comparison with the baseline, the breakdowns and the multi-label confusion."""
    u = report.get("uncertainty")
    if not u:
        return []
    ci = u["intervals"]
    lines = ["", f"## Uncertainty ({int(100 * u['level'])}% bootstrap intervals, {u['samples']} resamples of the "
             "sentences)", "", "| | F1 | interval |", "|---|---:|---|",
             f"| macro | {report['macro_f1']:.3f} | {ci['macro_f1'][0]:.3f}-{ci['macro_f1'][1]:.3f} |"]
    lines += [f"| {l} | {report['per_label'][l]['f1']:.3f} | {ci[l][0]:.3f}-{ci[l][1]:.3f} |" for l in labels]
    if u.get("versus_baseline"):
        v = u["versus_baseline"]
        verdict = ("better than the baseline" if v["wins"] else "worse than the baseline" if v["loses"] else
                   "not distinguishable from the baseline (the interval holds 0)")
        lines += ["", f"Against the baseline on the same resamples: macro-F1 {v['difference']:+.3f} "
                      f"({v['interval'][0]:+.3f} to {v['interval'][1]:+.3f}): {verdict}."]
    confusion = u["confusion"]
    lines += ["", "## What each label's misses became", "",
              "| gold label | sentences | found | missed as none | " + " | ".join(f"got {l} instead" for l in labels)
              + " |", "|---" * (4 + len(labels)) + "|"]
    for l in labels:
        c = confusion[l]
        lines.append(f"| {l} | {c['gold']} | {c['found']} | {c['missed_as_none']} | "
                     + " | ".join("" if o == l else str(c["instead"][o]) for o in labels) + " |")
    for title, key in (("source style", "by_style"), ("guideline rule", "by_rule")):
        if u.get(key):
            lines += ["", f"## By {title} (20 sentences or more)", "", f"| {title} | sentences | macro-F1 | exact match |",
                      "|---|---:|---:|---:|"]
            lines += [f"| {g} | {r['n']} | {r['macro_f1']:.3f} | {r['exact_match']:.3f} |" for g, r in u[key].items()]
    return lines


def _report_md(name: str, split: str, report: dict, ece: float, baseline: dict | None, files: list[str],
               thresholds, trained: str | None = None, labels: LabelSet = DEFAULT) -> str:
    cols = ["model"] + (["baseline (TF-IDF + LR)"] if baseline else [])
    lines = [f"# Evaluation of {name} on {split}", "", f"{report['n']} sentences. Thresholds tuned on dev: "
             + ", ".join(f"{l} {t:.3f}" for l, t in zip(labels.names, thresholds)) + "."
             + (f" Model trained {trained}." if trained else ""), "",
             "| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]

    def row(title, get):
        vals = [get(report)] + ([get(baseline)] if baseline else [])
        lines.append(f"| {title} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")

    for label in labels:
        for m in ("precision", "recall", "f1"):
            row(f"{label} {m}", lambda r, l=label, m=m: r["per_label"][l][m])
    for title, key in (("micro F1", "micro_f1"), ("macro F1", "macro_f1"), ("exact match", "exact_match"),
                       ("F1 of none", "none_f1"), ("primary-label accuracy", "primary_accuracy")):
        row(title, lambda r, k=key: r[k])
    lines += ["", f"Expected calibration error (all labels, 10 bins): {ece:.3f}", "",
              "## Primary-label confusion (rows gold, columns predicted)", ""]
    names = report["primary_confusion"]["labels"]
    lines += ["| gold \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for n, r in zip(names, report["primary_confusion"]["matrix"]):
        lines.append(f"| {n} | " + " | ".join(map(str, r)) + " |")
    lines += _uncertainty_md(report, labels)
    lines += [""] + [f"![{f}]({f})" for f in files] + ["", "Misclassified sentences: `errors.jsonl`.", ""]
    return "\n".join(lines)


def write_report(out_dir: str | Path, name: str, split: str, examples: list[Example], probs: np.ndarray,
                 thresholds, baseline: dict | None = None, extra: dict | None = None,
                 labels: LabelSet = DEFAULT) -> EvalResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.array([labels.vector(e.labels) for e in examples], dtype=int)
    pred = metrics.decide(probs, thresholds)
    report = metrics.multilabel_report(y, pred, labels)
    report["uncertainty"] = uncertainty(y, pred, examples, labels, (baseline or {}).get("decisions"))
    if baseline:
        baseline = {k: v for k, v in baseline.items() if k != "decisions"}
    ece, bins = metrics.expected_calibration_error(y, probs)
    files = _figures(out, name, y, probs, thresholds, report, (ece, bins), labels)
    with open(out / "errors.jsonl", "w", encoding="utf-8") as f:
        for e, yt, yp, p in zip(examples, y, pred, probs):
            if (yt != yp).any():
                gold, got = labels.from_vector(yt), labels.from_vector(yp)
                f.write(json.dumps({"id": e.id, "text": e.text, "gold": gold, "predicted": got,
                                    "gold_primary": labels.primary(gold), "predicted_primary": labels.primary(got),
                                    "probabilities": {l: round(float(x), 4) for l, x in zip(labels.names, p)}},
                                   ensure_ascii=False) + "\n")
    payload = {"name": name, "split": split, "thresholds": list(map(float, thresholds)), "metrics": report,
               "ece": ece, "calibration_bins": bins, "baseline": baseline, **(extra or {})}
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(_report_md(name, split, report, ece, baseline, files, thresholds,
                                              (extra or {}).get("model_trained"), labels), encoding="utf-8")
    return EvalResult(name, split, report, out, baseline, files + ["errors.jsonl", "metrics.json", "report.md"],
                      labels)


def uncertainty(y: np.ndarray, pred: np.ndarray, examples: list[Example], labels: LabelSet,
                baseline_decisions=None) -> dict:
    """Bootstrap intervals, the paired comparison with the baseline (when its decisions are
    given), the multi-label confusion, and macro-F1 by source style and by guideline rule."""
    out = metrics.confidence_intervals(y, pred, labels.names)
    if baseline_decisions is not None:
        out["versus_baseline"] = metrics.paired_difference(y, pred, np.asarray(baseline_decisions))
    out["confusion"] = metrics.multilabel_confusion(y, pred, labels.names)
    styles = [[e.style] if e.style else [] for e in examples]
    if any(styles):
        out["by_style"] = metrics.breakdown(y, pred, styles, labels.names)
    rules = [[f"R{r}" for r in e.rules] for e in examples]
    if any(rules):
        out["by_rule"] = metrics.breakdown(y, pred, rules, labels.names)
    return out


def _baseline_report(train_path: str, dev_path: str, examples: list[Example], labels: LabelSet = DEFAULT) -> dict:
    from .baseline import TfidfBaseline

    base = TfidfBaseline(labels=labels).fit(load_examples(train_path, labels=labels),
                                            load_examples(dev_path, labels=labels))
    y = np.array([labels.vector(e.labels) for e in examples], dtype=int)
    probs = base.predict_proba([e.text for e in examples])
    decisions = metrics.decide(probs, base.thresholds)
    return {**metrics.multilabel_report(y, decisions, labels), "decisions": decisions.tolist()}


REPORT_FILES = ("metrics.json", "report.md", "errors.jsonl")


def check_report_folder(out: Path, force: bool) -> None:
    """Refuse to write over an earlier report (the committed ones in ``evaluate/`` among them)
    unless ``force``; checked before anything is computed."""
    from .errors import OutputExistsError

    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: is a file; the report needs a folder (--out DIR)")
    there = [name for name in REPORT_FILES if (out / name).exists()]
    if there and not force:
        raise OutputExistsError(f"{out}: holds a report already ({', '.join(there)}); use --force to replace it, "
                                f"or --out to write this one elsewhere")


def evaluate_model(model_dir: str | Path, split: str = "test", data: str | None = None,
                   out_dir: str | Path | None = None, baseline: bool = True, backend: str = "auto",
                   allow_unguarded: bool = False, device: str = "auto", force: bool = False,
                   progress: bool = False) -> EvalResult:
    """Evaluate a trained model directory; returns the metrics and writes the report (into a
    folder that holds none yet, unless ``force``).  ``backend`` ``auto``: the fastest one that
    passed the model's accuracy guard here (the report names it)."""
    from .classifier import StanceClassifier

    out = Path(out_dir) if out_dir else Path("evaluate") / Path(model_dir).resolve().name
    check_report_folder(out, force)
    clf = StanceClassifier.load(model_dir, backend=backend, allow_unguarded=allow_unguarded, device=device)
    data_cfg = clf.meta.config.get("data", {})
    path = data or data_cfg.get(split)
    if not path:
        raise ValueError(f"no data for split {split!r} in the model's configuration; pass --data FILE")
    examples = load_examples(path, data_cfg.get("text_field", "text"), data_cfg.get("labels_field", "labels"),
                             clf.labels)
    probs, _ = clf.predict_proba([e.text for e in examples], progress=progress)
    base = None
    if baseline and data_cfg.get("train") and Path(data_cfg["train"]).exists():
        base = _baseline_report(data_cfg["train"], data_cfg["dev"], examples, clf.labels)
    name = Path(model_dir).resolve().name
    result = write_report(out, name, data or split, examples, probs, clf.thresholds, base,
                          {"model_path": str(model_dir), "backend": clf.backend.name,
                           "backend_reason": clf.backend_reason,
                           "model_trained": f"{clf.meta.created} on {clf.meta.trained_on}"}, clf.labels)
    if not data:
        result.attribution = attribution_report(Path(path).resolve().parent.parent, split, out)
        if result.attribution:
            result.files += ["attribution.md", "attribution.json"]
    return result


def attribution_report(data_dir: Path, split: str, out: Path) -> dict | None:
    """Who to whom on the split, against the gold of ``data_dir/parties`` (when there is one):
    the method ``score`` uses and the gazetteer baseline; written to attribution.md and .json."""
    from .parties.gold import agreement, evaluate_attribution, gold_files, read_annotation, report_md

    folder = data_dir / "parties"
    if not gold_files(folder) or not (data_dir / "sentences" / f"{split}.jsonl").exists():
        return None
    results = evaluate_attribution(split, folder, data_dir, methods=("auto", "heuristic", "baseline"))
    agree = None
    if (folder / "second.jsonl").exists():
        agree = agreement(read_annotation(gold_files(folder)), read_annotation([folder / "second.jsonl"]))
    (out / "attribution.md").write_text(report_md(results, split, agree), encoding="utf-8")
    (out / "attribution.json").write_text(json.dumps({"split": split, "methods": results, "agreement": agree},
                                                     indent=2), encoding="utf-8")
    return results


def evaluate_baseline(config_path: str | None = "training/offline.toml", split: str = "test",
                      out_dir: str | Path | None = None, force: bool = False) -> EvalResult:
    """Train and evaluate the TF-IDF baseline on the data of a recipe."""
    from .baseline import TfidfBaseline
    from .config import load_config

    out = Path(out_dir) if out_dir else Path("evaluate") / "baseline"
    check_report_folder(out, force)
    cfg = load_config(config_path)
    labels = cfg.label_set
    base = TfidfBaseline(labels=labels).fit(load_examples(cfg.data.train, labels=labels),
                                            load_examples(cfg.data.dev, labels=labels))
    examples = load_examples(getattr(cfg.data, split), labels=labels)
    probs = base.predict_proba([e.text for e in examples])
    return write_report(out, "baseline", split, examples, probs, base.thresholds, labels=labels)
