"""Transfer to text unlike the training data: leave one group of source styles out.

For each group of source styles, a system is trained on the train split without those styles
(model selection and thresholds on the dev split without them) and tested on every sentence of
the held-out styles, from all three splits. The mean over groups says how well a recipe
carries to unseen sources; the worst group says how badly it can fail. This, not the
in-distribution test split, decides which recipe is the default (issue 11).

``diplostance transfer`` is a thin wrapper over :func:`run_transfer`. Each fold's result is
saved as soon as it is known (``evaluate/transfer.json``), so an interrupted run continues where it
stopped, and a fold is recomputed only when its recipe, its data or the groups change.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import corpus, metrics
from .labels import LABELS, to_vector

#: Held-out groups: the 22 source styles in six groups of similar voice, each 10-25% of the corpus.
STYLE_GROUPS: dict[str, tuple[str, ...]] = {
    "asia": ("chinese_state_media", "vietnamese_media", "asian_media"),
    "russia_middle_east": ("russian_ministry", "russian_media", "middle_east_agency"),
    "africa": ("maghreb_agency", "west_african_outlet", "central_african_outlet", "african_union"),
    "europe_americas": ("french_presidency", "french_ministry", "belgian_government", "swiss_government",
                        "canadian_government", "latin_american", "other"),
    "multilateral": ("un", "eu", "joint_statement"),
    "letters_wires": ("head_of_state_letter", "wire_agency"),
}
BASELINE = "baseline"


@dataclass
class FoldResult:
    system: str
    group: str
    train: int
    dev: int
    test: int
    macro_f1: float
    micro_f1: float
    per_label_f1: dict[str, float]
    seconds: float
    key: str
    data: str = ""
    #: what trained the fold's model (``metrics.train_device``; the CPU for the baseline): the same
    #: recipe trains to slightly different weights on another kind of hardware
    device: str = ""


def _rows(data_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for split in corpus.SPLITS:
        path = data_dir / "sentences" / f"{split}.jsonl"
        rows = [row for _, row in corpus.read_jsonl(path)]
        for row in rows:
            if "style" not in row:
                raise corpus.CorpusError(f"{path}: sentence {row.get('id')!r} has no 'style'; the transfer measure "
                                         "groups sentences by source style")
        out[split] = rows
    return out


def fold_data(data_dir: str | Path, styles: tuple[str, ...], out_dir: str | Path) -> dict[str, int]:
    """Write ``train/dev/test.jsonl`` of one fold into ``out_dir``; return their sizes."""
    rows = _rows(Path(data_dir))
    held = set(styles)
    parts = {"train": [r for r in rows["train"] if r["style"] not in held],
             "dev": [r for r in rows["dev"] if r["style"] not in held],
             "test": [r for s in corpus.SPLITS for r in rows[s] if r["style"] in held]}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        with open(out_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return {name: len(part) for name, part in parts.items()}


def _key(system: str, recipe_text: str, styles: tuple[str, ...], data_fp: str) -> str:
    digest = hashlib.sha256()
    digest.update(system.encode())
    digest.update(recipe_text.encode())
    digest.update(",".join(styles).encode())
    digest.update(data_fp.encode())
    return digest.hexdigest()[:16]


def _fold_baseline(fold: Path) -> dict:
    from .baseline import TfidfBaseline

    test = corpus.load_examples(fold / "test.jsonl")
    base = TfidfBaseline().fit(corpus.load_examples(fold / "train.jsonl"), corpus.load_examples(fold / "dev.jsonl"))
    y = np.array([to_vector(e.labels) for e in test], dtype=int)
    return metrics.multilabel_report(y, metrics.decide(base.predict_proba([e.text for e in test]), base.thresholds))


def _fold_recipe(recipe: str, overrides: list[str], fold: Path, model_dir: Path) -> tuple[dict, str]:
    """-> the test report of the recipe trained on ``fold``, and what trained it."""
    from .config import load_config
    from .train import train

    config = load_config(recipe, [*overrides, f"data.train={fold / 'train.jsonl'}",
                                  f"data.dev={fold / 'dev.jsonl'}", f"data.test={fold / 'test.jsonl'}"])
    result = train(config, output=model_dir, force=True, quiet=True)
    return result.metrics["test"], result.metrics["train_device"]


def run_transfer(recipes: list[str], groups: dict[str, tuple[str, ...]] | None = None, data_dir: str | Path = "data",
                 out_dir: str | Path = "evaluate", baseline: bool = True, overrides: list[str] | None = None,
                 keep_models: bool = False, log: Callable[[str], None] = print) -> list[FoldResult]:
    """Leave-one-group-out results for the baseline and every recipe; writes ``transfer.md``,
    ``transfer.png`` and ``transfer.json`` into ``out_dir``."""
    groups = groups or STYLE_GROUPS
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = out_dir / "transfer.json"
    saved = {r["key"]: r for r in json.loads(store.read_text(encoding="utf-8"))} if store.exists() else {}
    systems = ([(BASELINE, "")] if baseline else []) + [(Path(r).stem, r) for r in recipes]
    results: list[FoldResult] = []
    work = Path("models") / "transfer"
    data_fp = corpus.fingerprint(sorted((data_dir / "sentences").glob("*.jsonl")))
    for system, recipe in systems:
        recipe_text = Path(recipe).read_text(encoding="utf-8") + "\n".join(overrides or []) if recipe else ""
        for group, styles in groups.items():
            key = _key(system, recipe_text, styles, data_fp)
            if key in saved:
                results.append(FoldResult(**saved[key]))
                log(f"{system} / {group}: macro-F1 {saved[key]['macro_f1']:.3f} (saved)")
                continue
            fold = work / "data" / group
            sizes = fold_data(data_dir, styles, fold)
            if not sizes["test"]:
                log(f"{system} / {group}: no sentence of styles {styles}; skipped")
                continue
            started = time.time()
            log(f"{system} / {group}: training on {sizes['train']} sentences, testing on {sizes['test']} ...")
            if system == BASELINE:
                from .hardware import cpu_name

                report, device = _fold_baseline(fold), cpu_name()
            else:
                report, device = _fold_recipe(recipe, overrides or [], fold, work / system / group)
            if system != BASELINE and not keep_models:
                shutil.rmtree(work / system / group, ignore_errors=True)
            result = FoldResult(system, group, sizes["train"], sizes["dev"], sizes["test"],
                                round(report["macro_f1"], 4), round(report["micro_f1"], 4),
                                {l: round(report["per_label"][l]["f1"], 4) for l in LABELS},
                                round(time.time() - started, 1), key, data_fp, device)
            results.append(result)
            saved[key] = asdict(result)
            store.write_text(json.dumps(list(saved.values()), indent=1), encoding="utf-8")  # after every fold
            log(f"{system} / {group}: macro-F1 {result.macro_f1:.3f} in {result.seconds:.0f} s")
    shutil.rmtree(work / "data", ignore_errors=True)
    # The report shows every fold measured on this data, also by earlier runs (e.g. the
    # baseline on all groups, a slow recipe on some): the latest result per system and group.
    shown = {(r["system"], r["group"]): FoldResult(**r) for r in saved.values() if r.get("data") == data_fp}
    shown.update({(r.system, r.group): r for r in results})
    write_report(list(shown.values()), {**STYLE_GROUPS, **groups}, out_dir)
    return results


def summary(results: list[FoldResult]) -> dict[str, dict[str, float | str]]:
    """Per system: mean macro-F1 over groups, the worst group and its score."""
    out: dict[str, dict[str, float | str]] = {}
    for system in dict.fromkeys(r.system for r in results):
        mine = [r for r in results if r.system == system]
        worst = min(mine, key=lambda r: r.macro_f1)
        out[system] = {"mean": round(float(np.mean([r.macro_f1 for r in mine])), 4), "worst": worst.macro_f1,
                       "worst_group": worst.group, "folds": len(mine)}
    return out


def write_report(results: list[FoldResult], groups: dict[str, tuple[str, ...]], out_dir: str | Path) -> Path:
    """``transfer.md`` (table per system and group) and ``transfer.png`` (the same, drawn)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    systems = list(dict.fromkeys(r.system for r in results))
    names = [g for g in groups if any(r.group == g for r in results)]
    table = {(r.system, r.group): r for r in results}
    summ = summary(results)
    lines = ["# Transfer: leave one group of source styles out", "",
             "Each system is trained without the sentences of one group of source styles (thresholds and model "
             "selection on the dev split without them too) and tested on all the sentences of that group. "
             "Macro-F1 over the four labels; `diplostance transfer` makes this page.", "",
             "| system | " + " | ".join(names) + " | mean (groups) | worst | mean on the groups all systems have |",
             "|---" * (len(names) + 4) + "|"]
    shared = [g for g in names if all((s, g) in table for s in systems)]
    for s in systems:
        cells = [f"{table[s, g].macro_f1:.3f}" if (s, g) in table else "–" for g in names]
        common = f"{np.mean([table[s, g].macro_f1 for g in shared]):.3f}" if shared else "–"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | **{summ[s]['mean']:.3f}** ({summ[s]['folds']}) | "
                     f"{summ[s]['worst']:.3f} ({summ[s]['worst_group']}) | {common} |")
    if len(shared) < len(names):
        lines += ["", f"Systems were not all measured on every group (\"–\"): compare them on the shared groups "
                      f"({', '.join(shared) or 'none'}), last column."]
    devices = {}
    for r in results:
        devices.setdefault(r.device or "not recorded", []).append(r.system)
    lines += ["", "Trained: " + "; ".join(f"{', '.join(dict.fromkeys(s))} on {d}" for d, s in devices.items())
              + ". The same recipe trains to slightly different weights on another kind of hardware."]
    lines += ["", "Held-out sentences per group: " + ", ".join(
        f"{g} {next(r.test for r in results if r.group == g)}" for g in names) + ".", "",
        "| group | styles |", "|---|---|"] + [f"| {g} | {', '.join(groups[g])} |" for g in names]
    lines += ["", "Per-label F1 on the held-out groups (mean over groups):", "",
              "| system | " + " | ".join(LABELS) + " | training time per fold (s) |", "|---" * (len(LABELS) + 2) + "|"]
    for s in systems:
        mine = [r for r in results if r.system == s]
        f1 = [np.mean([r.per_label_f1[l] for r in mine]) for l in LABELS]
        lines.append(f"| {s} | " + " | ".join(f"{x:.3f}" for x in f1) + f" | {np.mean([r.seconds for r in mine]):.0f} |")
    lines += ["", "![macro-F1 per held-out group](transfer.png)", ""]
    path = out_dir / "transfer.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    _figure(results, systems, names, out_dir / "transfer.png")
    return path


def _figure(results: list[FoldResult], systems: list[str], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = {(r.system, r.group): r.macro_f1 for r in results}
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2.5, 4))
    for i, s in enumerate(systems):
        xs = np.arange(len(names)) + i * width
        ax.bar(xs, [table.get((s, g), 0) for g in names], width, label=s)
    ax.set_xticks(np.arange(len(names)) + width * (len(systems) - 1) / 2, names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("macro-F1 on the held-out group")
    ax.set_title("Transfer to unseen source styles")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
