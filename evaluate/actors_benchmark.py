"""Scoring speed with and without who-to-whom attribution (issue 26: within 1.5x).

    .venv/bin/python evaluate/actors_benchmark.py MODEL [--docs 40] [--rounds 3]

Scores the first DOCS test documents with ``StanceClassifier.score`` three ways: no attribution
(``--no-actors``), the parse (spaCy's fr_core_news_md) and the heuristic (gazetteer only); the
model is loaded once, the configurations take turns in each round (so a burst of load from other
processes hits all alike) and the median round is reported.  Writes
evaluate/benchmarks/actors.{json,md,png}."""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--docs", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    from diplostance.classifier import StanceClassifier
    from diplostance.documents import Document

    docs = [json.loads(l) for l in (ROOT / "data/documents/test.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [Document(d["id"], d["text"]) for d in docs[:a.docs]]
    clf = StanceClassifier.load(a.model)
    configs = {"without attribution": (False, "auto"), "parse": (True, "parse"), "heuristic": (True, "heuristic")}
    for _, (_, method) in configs.items():  # load spaCy and warm every path once
        clf.attribution, clf._attributor = method, None
        sum(len(r) for r in clf.score(docs[:2], actors=True))
    attributors = {}
    for name, (_, method) in configs.items():
        clf.attribution, clf._attributor = method, None
        attributors[name] = clf.attributor
    times = {name: [] for name in configs}
    sentences = 0
    for k in range(a.rounds):
        order = list(configs)[k % 3:] + list(configs)[:k % 3]
        for name in order:
            actors, _ = configs[name]
            clf._attributor = attributors[name]
            start = time.perf_counter()
            sentences = sum(len(r) for r in clf.score(docs, actors=actors))
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["without attribution"])
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), platform.processor())
    result = {"model": a.model, "documents": len(docs), "sentences": sentences, "rounds": a.rounds, "cpu": model_name,
              "cpus": next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("CPU(s)")), "?"),
              "backend": clf.backend.name, "seconds": {n: round(statistics.median(t), 3) for n, t in times.items()},
              "all_rounds": times,
              "slowdown": {n: round(statistics.median(t) / base, 3) for n, t in times.items()}}
    out = ROOT / "evaluate" / "benchmarks"
    (out / "actors.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    lines = [f"# Scoring speed with who-to-whom attribution", "",
             f"{sentences} sentences of {len(docs)} test documents, model {Path(a.model).name} (backend "
             f"{clf.backend.name}), {model_name}, {result['cpus']} CPUs shared with other work; median of "
             f"{a.rounds} rounds. Target: attribution within 1.5x of scoring without it.", "",
             "| configuration | seconds | sentences/s | vs without |", "|---|---|---|---|"]
    for n in configs:
        s = result["seconds"][n]
        lines.append(f"| {n} | {s:.2f} | {sentences / s:.1f} | {result['slowdown'][n]:.2f}x |")
    (out / "actors.md").write_text("\n".join(lines) + "\n\n![](actors.png)\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(configs)
    ax.barh(names, [sentences / result["seconds"][n] for n in names], color=["#999", "#4a7", "#7ad"])
    for i, n in enumerate(names):
        ax.text(sentences / result["seconds"][n], i, f" {result['slowdown'][n]:.2f}x", va="center")
    ax.set_xlabel("sentences per second (higher is faster)")
    ax.set_title(f"scoring with attribution, {model_name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "actors.png", dpi=100)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
