"""The model card (README.md) written into every model directory, from a template."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from .labels import LABELS
from .modeling import ModelMeta


def metrics_table(results: dict) -> str:
    splits = [s for s in ("dev", "test") if s in results]
    if not splits:
        return "(no metrics)"
    head = "| metric | " + " | ".join(splits) + " |\n|---" + "|---" * len(splits) + "|\n"
    rows = []
    for label in LABELS:
        rows.append(f"| F1 {label} | " + " | ".join(f"{results[s]['per_label'][label]['f1']:.3f}" for s in splits) + " |")
    for key, title in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("exact_match", "exact match"),
                       ("none_f1", "F1 of none")):
        rows.append(f"| {title} | " + " | ".join(f"{results[s][key]:.3f}" for s in splits) + " |")
    rows.append("| sentences | " + " | ".join(str(results[s]["n"]) for s in splits) + " |")
    return head + "\n".join(rows)


def guard_text(record: dict | None) -> str:
    """The accuracy guard's record (``metrics["guard"]``) as a sentence and a table."""
    entries = (record or {}).get("backends") or {}
    if not entries:
        return "Not measured for this model: `diplostance guard MODEL` checks the fast backends against fp32."
    floor = 100 * record.get("min_agreement", 0.995)
    rows = [f"| {name} | {100 * e['agreement']:.2f}% | {e['max_abs_diff']:.4f} | {e.get('data', '?')} | "
            f"{e.get('cpu', '?')} | {'yes' if e['ok'] else '**no**: refused unless --allow-unguarded'} |"
            for name, e in entries.items()]
    return (f"Label decisions of the faster backends equal to the fp32 forward's; a backend below {floor:.1f}% "
            "is refused for this model.\n\n| backend | decisions equal | largest probability difference | "
            "sentences | CPU | used |\n|---|---:|---:|---|---|---|\n" + "\n".join(rows))


def write_model_card(path: str | Path, meta: ModelMeta) -> Path:
    template = files("diplostance").joinpath("templates/model_card.md").read_text(encoding="utf-8")
    text = template.format(
        name=meta.name or Path(path).name, diplostance_version=meta.versions.get("diplostance", "?"),
        base=meta.config.get("model", {}).get("base", "?"), max_length=meta.max_length,
        train_examples=meta.training_data.get("train_examples", "?"),
        fingerprint=meta.training_data.get("fingerprint", "?")[:23],
        created=meta.created, train_seconds=meta.metrics.get("train_seconds", "?"),
        train_device=meta.trained_on,
        threshold_rows="\n".join(f"| {l} | {t:.3f} |" for l, t in zip(LABELS, meta.thresholds)),
        metrics_table=metrics_table(meta.metrics), guard=guard_text(meta.metrics.get("guard")), path=str(path),
    )
    out = Path(path) / "README.md"
    out.write_text(text, encoding="utf-8")
    return out
